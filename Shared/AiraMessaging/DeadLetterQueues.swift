import AiraAMQP
import AiraCore
import Foundation
import Logging

/// Operator actions on dead-letter queues over plain AMQP (no broker plugin): inspect, replay,
/// purge. Every action that looks at messages scans the DLQ once: matching messages are acted
/// on, the others are held unacknowledged and returned at the end in their original order (a
/// quorum queue puts returned messages back first, in the order they are returned).
///
/// Replay publishes each message back to its queue and waits for the broker's confirm before
/// acking it from the DLQ: a crash in the middle can duplicate a message, never lose one.
public struct DeadLetterQueues: Sendable {
    public let connection: AMQPConnection
    public let logger: Logger

    public init(connection: AMQPConnection, logger: Logger) {
        self.connection = connection
        self.logger = logger
    }

    /// `Q.dlq` for `Q` or `Q.dlq`.
    public static func deadLetterQueue(for name: String) -> String { name.hasSuffix(".dlq") ? name : "\(name).dlq" }
    /// `Q` for `Q.dlq` or `Q`.
    public static func workQueue(for name: String) -> String { name.hasSuffix(".dlq") ? String(name.dropLast(4)) : name }

    public struct Status: Sendable, Codable {
        public var queue: String
        public var depth: UInt32
        /// Age of the oldest dead letter (by its last failure), if any.
        public var oldestAgeSeconds: Double?
    }

    /// Depth and the oldest message's age of each DLQ (a DLQ that does not exist is skipped).
    public func status(of queues: [String]) async throws -> [Status] {
        var result: [Status] = []
        for name in queues {
            let dlq = Self.deadLetterQueue(for: name)
            guard let depth = try await self.depth(dlq) else { continue }
            var age: Double?
            if depth > 0 {
                let first = try await self.scan(dlq, limit: 1) { _ in .keep }.seen.first
                if let at = first?.lastFailedAt ?? first?.delivery.properties.timestamp.map({ Date(timeIntervalSince1970: Double($0)) }) {
                    age = Date().timeIntervalSince(at)
                }
            }
            result.append(Status(queue: dlq, depth: depth, oldestAgeSeconds: age))
        }
        return result
    }

    /// Messages in a DLQ that match, up to `limit`; nothing is removed.
    public func show(_ queue: String, filter: DeadLetterFilter, limit: Int) async throws -> [DeadLetter] {
        var shown: [DeadLetter] = []
        _ = try await self.scan(Self.deadLetterQueue(for: queue)) { letter in
            if shown.count < limit, filter.matches(letter) { shown.append(letter) }
            return .keep
        }
        return shown
    }

    /// The messages of exactly `queue` (any queue, not only DLQs), in order, up to `limit`;
    /// nothing is removed.
    public func peek(queue: String, limit: Int = .max) async throws -> [DeadLetter] {
        try await self.scan(queue, limit: limit) { _ in .keep }.seen
    }

    public struct ReplayReport: Sendable, Codable {
        public var queue: String
        public var target: String
        public var scanned: Int
        public var matched: Int
        public var moved: [String]
        public var dryRun: Bool
        /// True when the scan could not see every message (more than 65,535 non-matching ones
        /// held at once, or another consumer took some): run it again for the rest.
        public var incomplete: Bool
    }

    /// Moves matching dead letters back to their work queue (via the default exchange, so only
    /// that queue receives them), attempts reset, `x-aira-replayed-at` set. At most `limit`,
    /// at most `ratePerSecond`. With `dryRun`, reports what it would move and moves nothing.
    public func replay(_ queue: String, filter: DeadLetterFilter, limit: Int = .max, ratePerSecond: Double? = nil,
                       dryRun: Bool = false, onMoved: @escaping @Sendable (DeadLetter) -> Void = { _ in }) async throws -> ReplayReport {
        let dlq = Self.deadLetterQueue(for: queue)
        let target = Self.workQueue(for: queue)
        guard try await self.depth(target) != nil else {
            throw AMQPError.channelClosed(code: 404, text: "work queue '\(target)' does not exist; nothing to replay into")
        }
        let publisher = try await MessagePublisher.open(on: self.connection)
        let pacer = Pacer(ratePerSecond: ratePerSecond)
        var matched = 0
        var moved: [String] = []
        let scanned: Result<ScanResult, any Error>
        do {
            scanned = .success(try await self.scan(dlq) { letter in
            guard filter.matches(letter) else { return .keep }
            matched += 1
            guard moved.count < limit else { return .keep }
            if dryRun {
                moved.append(letter.messageID)
                return .keep
            }
            await pacer.wait()
            try await publisher.publishRaw(exchange: "", routingKey: target, body: letter.body,
                                           properties: Self.replayProperties(letter))
            moved.append(letter.messageID)
            onMoved(letter)
            return .remove
            })
        } catch {
            scanned = .failure(error)
        }
        await publisher.channel.close()
        let result = try scanned.get()
        return ReplayReport(queue: dlq, target: target, scanned: result.seen.count, matched: matched, moved: moved,
                            dryRun: dryRun, incomplete: result.incomplete)
    }

    /// Removes dead letters: all of them, or those whose ids are given. Returns how many.
    public func purge(_ queue: String, ids: Set<String> = []) async throws -> Int {
        let dlq = Self.deadLetterQueue(for: queue)
        if ids.isEmpty {
            let channel = try await self.connection.openChannel()
            let purged = await Result(catching: { try await channel.purgeQueue(dlq) })
            await channel.close()
            return Int(try purged.get())
        }
        var removed = 0
        _ = try await self.scan(dlq) { letter in
            guard ids.contains(letter.messageID) else { return .keep }
            removed += 1
            return .remove
        }
        return removed
    }

    /// The properties a replayed message gets: the original envelope, failure history cleared,
    /// attempts 0, `x-aira-replayed-at` now.
    static func replayProperties(_ letter: DeadLetter, now: Date = Date()) -> AMQPProperties {
        var p = letter.delivery.properties
        for h in [AiraHeader.error, AiraHeader.errorType, AiraHeader.disposition, AiraHeader.firstFailedAt,
                  AiraHeader.lastFailedAt, AiraHeader.queue] {
            p.headers[h] = nil
        }
        for h in AiraHeader.brokerDeathHeaders { p.headers[h] = nil }
        p.headers[AiraHeader.attempts] = .int(0)
        p.headers[AiraHeader.replayedAt] = .string(iso8601(now))
        p.headers[AiraHeader.originalRoutingKey] = letter.originalRoutingKey.map { .string($0) }
        p.deliveryMode = AMQPProperties.persistent
        p.expiration = nil
        return p
    }

    // MARK: - Scanning

    enum Decision { case keep, remove }

    struct ScanResult {
        var seen: [DeadLetter]
        /// Messages that were in the queue when the scan began.
        var total = 0
        /// Fewer seen than were there: more than 65,535 kept, or another consumer took some.
        var incomplete: Bool { self.seen.count < self.total }
    }

    /// Goes once through the messages that were in `queue` when the scan began (or `limit` of
    /// them): `decide` says for each whether to remove it (ack) or keep it. Kept messages are
    /// returned, in their original order, when the scan ends — also if `decide` throws.
    func scan(_ queue: String, limit: Int = .max, _ decide: (DeadLetter) async throws -> Decision) async throws -> ScanResult {
        guard let depth = try await self.depth(queue) else {
            throw AMQPError.channelClosed(code: 404, text: "queue '\(queue)' does not exist")
        }
        let total = min(Int(depth), limit)
        var result = ScanResult(seen: [], total: total)
        guard total > 0 else { return result }
        let channel = try await self.connection.openChannel()
        // Kept messages are held unacknowledged until the scan ends (a returned message goes
        // back to the head and would be seen again), so the prefetch must cover them. Quorum
        // queues cap "unlimited" (0) at 2,000; an explicit prefetch is honoured up to 65,535.
        try await channel.setPrefetch(UInt16.max)
        let consumer = try await channel.consume(queue: queue)
        var kept: [AMQPDelivery] = []
        func returnKept() {
            for d in kept { channel.nack(d, requeue: true) }
            kept = []
        }
        do {
            var iterator = consumer.deliveries.makeAsyncIterator()
            while result.seen.count < total {
                // A message that never comes (another consumer took it) ends the scan.
                guard let delivery = await nextWithin(&iterator, .seconds(2)) else { break }
                let letter = DeadLetter(delivery)
                result.seen.append(letter)
                switch try await decide(letter) {
                case .keep: kept.append(delivery)
                case .remove: channel.ack(delivery)
                }
            }
        } catch {
            returnKept()
            await channel.close()
            throw error
        }
        try await channel.cancel(consumerTag: consumer.tag)
        // Deliveries that arrived after the scan's count go back too (after the kept ones).
        var iterator = consumer.deliveries.makeAsyncIterator()
        while let extra = await iterator.next() { kept.append(extra) }
        returnKept()
        await channel.close()
        return result
    }

    /// The message count of an existing queue, nil if it does not exist.
    func depth(_ queue: String) async throws -> UInt32? {
        let channel = try await self.connection.openChannel()
        let status = await Result(catching: { try await channel.inspectQueue(queue) })
        await channel.close()
        switch status {
        case .success(let s): return s.messageCount
        case .failure(let error as AMQPError) where error.replyCode == 404: return nil
        case .failure(let error): throw error
        }
    }
}

/// Spaces out actions to at most `ratePerSecond`.
actor Pacer {
    private let interval: Duration?
    private var next = ContinuousClock.now

    init(ratePerSecond: Double?) {
        self.interval = ratePerSecond.flatMap { $0 > 0 ? .nanoseconds(Int64(1e9 / $0)) : nil }
    }

    func wait() async {
        guard let interval else { return }
        let now = ContinuousClock.now
        if self.next > now { try? await Task.sleep(until: self.next, clock: .continuous) }
        self.next = max(self.next, now) + interval
    }
}

/// The next element, or nil if none arrives within `timeout`.
private func nextWithin(_ iterator: inout AsyncStream<AMQPDelivery>.Iterator, _ timeout: Duration) async -> AMQPDelivery? {
    let box = IteratorBox(iterator)
    let result = await withTaskGroup(of: AMQPDelivery?.self) { group in
        group.addTask { await box.next() }
        group.addTask { try? await Task.sleep(for: timeout); return nil }
        let first = await group.next() ?? nil
        group.cancelAll()
        return first
    }
    iterator = box.iterator
    return result
}

private final class IteratorBox: @unchecked Sendable {
    var iterator: AsyncStream<AMQPDelivery>.Iterator
    init(_ iterator: AsyncStream<AMQPDelivery>.Iterator) { self.iterator = iterator }
    func next() async -> AMQPDelivery? { await self.iterator.next() }
}

extension Result where Failure == any Error {
    /// Runs `body`, keeping its outcome (so cleanup can be awaited before rethrowing).
    init(catching body: () async throws -> Success) async {
        do { self = .success(try await body()) } catch { self = .failure(error) }
    }
}
