import AiraCore
import Synchronization

/// Where a read ran.
public enum ReadTarget: String, Sendable {
    case primary, replica
}

/// Reads that may go to a streaming replica (`AIRA_DATABASE_READ_URL`), with the primary as the
/// fallback. The replica is used while it is reachable and at most `maxLag` behind, as measured
/// by ``check()`` (call ``watch(every:)`` from a service); a read that fails on the replica runs
/// again on the primary, so a replica going away costs latency, never an error. Without a
/// replica every read goes to the primary.
///
/// Write positions are WAL locations (LSNs, as integers): ``primaryLSN()`` after a write, and
/// ``replayedLSN`` (the replica's replay position at the last check) tell whether the replica
/// has the write yet.
public final class PostgresReadRouter: Sendable {
    public let primary: PostgresClient
    public let replica: PostgresClient?
    public let maxLag: Duration

    public struct ReplicaStatus: Sendable, Equatable {
        /// Reads go to the replica.
        public var usable: Bool
        /// Seconds behind the primary at the last check (0 when caught up); nil while unknown.
        public var lagSeconds: Double?
        /// The replica's replay position at the last check: it holds every write up to here.
        public var replayedLSN: UInt64
        /// Why it is not used, when it is not.
        public var reason: String?
    }

    private let state: Mutex<ReplicaStatus>

    public init(primary: PostgresClient, replica: PostgresClient?, maxLag: Duration = .seconds(2)) {
        self.primary = primary
        self.replica = replica
        self.maxLag = maxLag
        // Unknown until the first check: the primary serves until then.
        self.state = Mutex(ReplicaStatus(usable: false, lagSeconds: nil, replayedLSN: 0,
                                         reason: replica == nil ? "no replica configured" : "not checked yet"))
    }

    public var status: ReplicaStatus { self.state.withLock { $0 } }

    /// The replica's replay position at the last check (0 without a replica).
    public var replayedLSN: UInt64 { self.state.withLock { $0.replayedLSN } }

    /// Runs a read: on the replica when it is usable and `primaryOnly` is false, else (or when the
    /// replica fails) on the primary.
    public func read(_ query: PostgresQuery, primaryOnly: Bool = false, prepared: Bool = false) async throws
        -> (result: PostgresResult, target: ReadTarget) {
        if !primaryOnly, let replica = self.replica, self.state.withLock({ $0.usable }) {
            do {
                return (try await replica.query(query, prepared: prepared), .replica)
            } catch let error as PostgresError where !error.isClientMistake {
                // Unreachable, timed out, or cancelled by recovery: the primary answers instead,
                // and the replica waits for the next good check.
                self.state.withLock {
                    $0.usable = false
                    $0.reason = "read failed: \(error)"
                }
            } catch is ConnectionPoolError {
                // Its pool is exhausted: the primary takes this one.
            }
        }
        return (try await self.primary.query(query, prepared: prepared), .primary)
    }

    /// The primary's current WAL position (after a write committed: a position holding it).
    public func primaryLSN() async throws -> UInt64 {
        let row = try await self.primary.query("SELECT pg_current_wal_lsn()::text AS lsn").first
        return try Self.lsn(row?.decode("lsn", as: String.self) ?? "")
    }

    /// Measures the replica once: reachable, replaying, and how far behind. Returns the status.
    @discardableResult
    public func check() async -> ReplicaStatus {
        guard let replica = self.replica else { return self.status }
        var next = ReplicaStatus(usable: false, lagSeconds: nil, replayedLSN: self.replayedLSN, reason: nil)
        do {
            // The primary's position first: if the replica has replayed past it, it is caught up.
            let target = try await self.primaryLSN()
            guard let row = try await replica.query("""
                SELECT pg_is_in_recovery() AS standby, coalesce(pg_last_wal_replay_lsn()::text, '0/0') AS replayed,
                       extract(epoch FROM now() - pg_last_xact_replay_timestamp())::float8 AS behind
                """).first else { throw PostgresError.connectionLost("no row") }
            let replayed = try Self.lsn(try row.decode("replayed"))
            next.replayedLSN = replayed
            if !(try row.decode("standby", as: Bool.self)) {
                next.reason = "the read URL is not a standby"
                next.lagSeconds = 0
                next.usable = true
            } else if replayed >= target {
                next.lagSeconds = 0
                next.usable = true
            } else {
                let behind = try row.decodeOptional("behind", as: Double.self) ?? .infinity
                next.lagSeconds = max(0, behind)
                next.usable = behind <= self.maxLag.seconds
                if !next.usable { next.reason = "replica lag \(String(format: "%.1f", behind)) s > \(self.maxLag.seconds) s" }
            }
        } catch {
            next.reason = "unreachable: \(error)"
        }
        let result = next
        self.state.withLock { $0 = result }
        return result
    }

    /// Checks the replica every `interval` until the task is cancelled, calling `report` after each.
    public func watch(every interval: Duration, report: @Sendable (ReplicaStatus) -> Void = { _ in }) async {
        guard self.replica != nil else { return }
        while !Task.isCancelled {
            report(await self.check())
            try? await Task.sleep(for: interval)
        }
    }

    /// `16/B374D848` → the 64-bit position.
    public static func lsn(_ text: String) throws -> UInt64 {
        let parts = text.split(separator: "/")
        guard parts.count == 2, let hi = UInt64(parts[0], radix: 16), let lo = UInt64(parts[1], radix: 16) else {
            throw PostgresError.decoding(column: "lsn", value: text, expected: "a WAL position like 0/16B3748")
        }
        return hi << 32 | lo
    }

    public func shutdown() async {
        await self.replica?.shutdown()
    }
}

extension PostgresError {
    /// The statement itself is wrong (syntax, data, constraint): another server would refuse it too.
    public var isClientMistake: Bool {
        guard let state = self.sqlState else { return false }
        return state.hasPrefix("22") || state.hasPrefix("23") || state.hasPrefix("42")
    }
}
