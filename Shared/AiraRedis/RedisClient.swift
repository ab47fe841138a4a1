import AiraCore
import Foundation
import Logging
import ServiceLifecycle
import Synchronization

/// A Redis client: a pool of connections, each owned by its own thread (hiredis is blocking).
/// Commands of concurrent callers are pipelined together (``AutoPipeline``): at most
/// ``RedisConfiguration/pipelines`` round trips are under way at once, and what arrives
/// meanwhile goes in the next one.
///
/// Failures are fast and clear: connection refused or a command timeout throws a
/// ``RedisError`` with `isRetriable == true`; callers decide how to degrade.
public final class RedisClient: Sendable {
    public let configuration: RedisConfiguration
    private let pool: ConnectionPool<RedisConnection>
    private let scripts = Mutex<[String: String]>([:])

    /// Every command goes through it: concurrent callers share round trips (``AutoPipeline``).
    private let autoPipeline: AutoPipeline

    public init(configuration: RedisConfiguration) {
        self.configuration = configuration
        let pool = ConnectionPool<RedisConnection>(maxConnections: configuration.poolSize, leaseTimeout: configuration.leaseTimeout) {
            try await RedisConnection.connect(configuration)
        }
        self.pool = pool
        self.autoPipeline = AutoPipeline(flushers: configuration.pipelines) { commands in
            try await pool.withConnection { try await $0.pipeline(commands) }
        }
    }

    // MARK: Raw commands

    /// Sends one command. A server error is thrown as `RedisError.server`.
    @discardableResult
    public func send(_ args: [String]) async throws -> RedisValue {
        try await self.send(bytes: args.map { Array($0.utf8) })
    }

    @discardableResult
    public func send(_ args: String...) async throws -> RedisValue { try await self.send(args) }

    public func send(bytes args: [[UInt8]]) async throws -> RedisValue {
        let reply = try await self.autoPipeline.submit([args])[0]
        if case .error(let e) = reply { throw RedisError.server(e) }
        return reply
    }

    /// Sends all commands in one round trip; replies in order (server errors as `.error` values).
    public func pipeline(_ commands: [[String]]) async throws -> [RedisValue] {
        let encoded = commands.map { $0.map { Array($0.utf8) } }
        return try await self.autoPipeline.submit(encoded)
    }

    // MARK: Strings and counters

    public func get(_ key: String) async throws -> String? { try await self.send("GET", key).string }

    public func getBytes(_ key: String) async throws -> [UInt8]? {
        if case .bulk(let b) = try await self.send("GET", key) { return b }
        return nil
    }

    public enum SetCondition: Sendable { case always, ifNotExists, ifExists }

    /// SET with optional expiry (`EX`/`PX`) and condition (`NX`/`XX`). Returns whether it was set.
    @discardableResult
    public func set(_ key: String, _ value: String, expire: Duration? = nil, condition: SetCondition = .always) async throws -> Bool {
        try await self.set(key, bytes: Array(value.utf8), expire: expire, condition: condition)
    }

    @discardableResult
    public func set(_ key: String, bytes value: [UInt8], expire: Duration? = nil, condition: SetCondition = .always) async throws -> Bool {
        var args: [[UInt8]] = [Array("SET".utf8), Array(key.utf8), value]
        if let expire {
            let ms = expire.milliseconds
            args += ms % 1000 == 0 ? [Array("EX".utf8), Array(String(ms / 1000).utf8)] : [Array("PX".utf8), Array(String(max(ms, 1)).utf8)]
        }
        switch condition {
        case .always: break
        case .ifNotExists: args.append(Array("NX".utf8))
        case .ifExists: args.append(Array("XX".utf8))
        }
        return !(try await self.send(bytes: args)).isNull
    }

    public func incr(_ key: String, by amount: Int64 = 1) async throws -> Int64 {
        try self.integer(await self.send("INCRBY", key, String(amount)))
    }

    /// Sets a time to live; false if the key does not exist.
    @discardableResult
    public func expire(_ key: String, after duration: Duration) async throws -> Bool {
        try self.integer(await self.send("PEXPIRE", key, String(max(duration.milliseconds, 1)))) == 1
    }

    /// Remaining time to live, nil if the key has none or does not exist.
    public func ttl(_ key: String) async throws -> Duration? {
        let ms = try self.integer(await self.send("PTTL", key))
        return ms >= 0 ? .milliseconds(ms) : nil
    }

    @discardableResult
    public func del(_ keys: String...) async throws -> Int64 { try self.integer(await self.send(["DEL"] + keys)) }

    public func exists(_ key: String) async throws -> Bool { try self.integer(await self.send("EXISTS", key)) == 1 }

    // MARK: Sets and hashes

    @discardableResult
    public func sadd(_ key: String, _ members: [String]) async throws -> Int64 {
        try self.integer(await self.send(["SADD", key] + members))
    }

    @discardableResult
    public func srem(_ key: String, _ members: [String]) async throws -> Int64 {
        try self.integer(await self.send(["SREM", key] + members))
    }

    public func smembers(_ key: String) async throws -> Set<String> {
        Set(try await self.send("SMEMBERS", key).array?.compactMap(\.string) ?? [])
    }

    public func sismember(_ key: String, _ member: String) async throws -> Bool {
        try self.integer(await self.send("SISMEMBER", key, member)) == 1
    }

    public func scard(_ key: String) async throws -> Int64 { try self.integer(await self.send("SCARD", key)) }

    @discardableResult
    public func hset(_ key: String, _ fields: [String: String]) async throws -> Int64 {
        try self.integer(await self.send(["HSET", key] + fields.flatMap { [$0.key, $0.value] }))
    }

    public func hget(_ key: String, _ field: String) async throws -> String? { try await self.send("HGET", key, field).string }

    public func hgetall(_ key: String) async throws -> [String: String] {
        let items = try await self.send("HGETALL", key).array ?? []
        var result: [String: String] = [:]
        var i = 0
        while i + 1 < items.count {
            if let k = items[i].string, let v = items[i + 1].string { result[k] = v }
            i += 2
        }
        return result
    }

    public func hincrby(_ key: String, _ field: String, by amount: Int64 = 1) async throws -> Int64 {
        try self.integer(await self.send("HINCRBY", key, field, String(amount)))
    }

    // MARK: Scripts

    /// Runs a Lua script atomically: EVALSHA with the cached hash, loading it on first use and
    /// again if the server forgot it (`NOSCRIPT`, e.g. after a restart).
    public func eval(_ script: RedisScript, keys: [String], args: [String]) async throws -> RedisValue {
        let tail = [String(keys.count)] + keys + args
        if let sha = self.scripts.withLock({ $0[script.source] }) {
            do {
                return try await self.send(["EVALSHA", sha] + tail)
            } catch RedisError.server(let e) where e.hasPrefix("NOSCRIPT") {
                // fall through and load it again
            }
        }
        guard let sha = try await self.send("SCRIPT", "LOAD", script.source).string else {
            throw RedisError.unexpectedReply("SCRIPT LOAD returned no hash")
        }
        self.scripts.withLock { $0[script.source] = sha }
        return try await self.send(["EVALSHA", sha] + tail)
    }

    // MARK: Health

    /// True if Redis answers PING now (readiness).
    public func ping() async -> Bool {
        (try? await self.send("PING"))?.string == "PONG"
    }

    public func shutdown() async { await self.pool.shutdown() }

    private func integer(_ value: RedisValue) throws -> Int64 {
        guard case .integer(let i) = value else { throw RedisError.unexpectedReply("expected an integer, got \(value)") }
        return i
    }
}

/// A Lua script run with ``RedisClient/eval(_:keys:args:)``.
public struct RedisScript: Sendable, Hashable {
    public let source: String
    public init(_ source: String) { self.source = source }
}

extension RedisClient: Service {
    /// Holds the pool while its service group runs; when the group shuts down (gracefully or
    /// cancelled) it closes every connection. A client is listed before the services that use it,
    /// so it stops after them. Connections open on first use: a client never run opened nothing.
    public func run() async throws {
        try? await gracefulShutdown()
        await self.shutdown()
    }
}
