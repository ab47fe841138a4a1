import AiraAMQP
import AiraCore
import AiraMessaging
import AiraServiceKit
import Foundation
import Logging
import Metrics
import ServiceLifecycle
import Synchronization

/// Knows whether an RPC queue has consumers, by asking the broker every `interval`: with none,
/// calls fail at once with 503 instead of waiting out their deadline.
final class ConsumerPresence: Service, Sendable {
    let connection: AMQPConnection
    let queues: [String]
    let interval: Duration
    let logger: Logger
    /// Queue name → consumer count; absent while unknown (calls then go ahead).
    private let counts = Mutex<[String: UInt32]>([:])
    /// The latest look at a queue nobody consumed (``hasConsumersNow(_:)``).
    private let looks = Mutex<[String: (at: ContinuousClock.Instant, task: Task<Bool, Never>)]>([:])

    init(connection: AMQPConnection, queues: [String], interval: Duration = .seconds(1), logger: Logger) {
        self.connection = connection
        self.queues = queues
        self.interval = interval
        self.logger = logger
    }

    func hasConsumers(_ queue: String) -> Bool { (self.consumers(queue) ?? 1) > 0 }

    /// Whether `queue` has consumers: the last look's answer when it saw some, else the broker's
    /// answer now. A consumer that came up since the last look (a service just started) is not
    /// refused for up to `interval`; while nobody consumes, callers share one look per 100 ms.
    func hasConsumersNow(_ queue: String) async -> Bool {
        if self.hasConsumers(queue) { return true }
        let look = self.looks.withLock { looks -> Task<Bool, Never> in
            if let last = looks[queue], ContinuousClock.now - last.at < .milliseconds(100) { return last.task }
            let task = Task { await self.look(at: queue) }
            looks[queue] = (.now, task)
            return task
        }
        return await look.value
    }

    private func look(at queue: String) async -> Bool {
        guard let channel = try? await self.connection.openChannel() else { return false }
        let status = try? await channel.inspectQueue(queue)
        await channel.close()
        guard let status else { return false }
        self.counts.withLock { $0[queue] = status.consumerCount }
        return status.consumerCount > 0
    }

    /// The queue's consumers at the last look; nil while unknown.
    func consumers(_ queue: String) -> Int? { self.counts.withLock { $0[queue] }.map(Int.init) }

    func run() async throws {
        var channel: AMQPChannel?
        while !Task.isCancelled, !Task.isShuttingDownGracefully {
            for queue in self.queues {
                do {
                    if channel == nil { channel = try await self.connection.openChannel() }
                    let status = try await channel!.inspectQueue(queue)
                    let before = self.counts.withLock { counts in
                        defer { counts[queue] = status.consumerCount }
                        return counts[queue]
                    }
                    if before != status.consumerCount, status.consumerCount == 0 || before == 0 {
                        self.logger.notice("consumers of \(queue): \(status.consumerCount)")
                    }
                } catch {
                    // The queue not existing closes the channel: nobody consumes it yet.
                    let missing = (error as? AMQPError)?.replyCode == 404
                    self.counts.withLock { $0[queue] = missing ? 0 : nil }
                    if let c = channel { await c.close() }
                    channel = nil
                }
            }
            try? await Task.sleep(for: self.interval)
        }
        if let channel { await channel.close() }
    }
}

/// Makes RPC calls on behalf of HTTP requests: sheds load beyond `maxInFlight` with 503,
/// refuses at once when no consumer is there, and maps every failure to an ``APIError``.
struct ServiceCalls: Sendable {
    let client: RPCClient
    let presence: ConsumerPresence
    let inFlight: InFlightLimit

    struct Target: Sendable {
        var queue: String
        var routingKey: String
        var timeout: Duration
        /// Plain calls may share messages (``RPCBatch``); streams never do.
        var batching: RPCBatch.Options? = nil
        /// Calls whose capacity is small and slow (bcrypt) are admitted by a learned limit.
        var adaptive: AdaptiveLimit? = nil
    }

    /// Refuses at once (503) when nobody consumes the target queue or this gateway is at its
    /// in-flight bound; otherwise takes an in-flight slot the caller must give back.
    func admit(_ target: Target) async throws {
        guard await self.presence.hasConsumersNow(target.queue) else {
            throw APIError.unavailable("the \(target.queue) service is not running, try again shortly", retryAfter: 5)
        }
        guard self.inFlight.enter() else { throw APIError.unavailable("too many requests in progress, try again", retryAfter: 1) }
    }

    func call<Request: MessageContract, Response: Decodable & Sendable>(
        _ request: Request, to target: Target, expecting: Response.Type = Response.self, context: GatewayContext
    ) async throws -> Response {
        try await self.admit(target)
        defer { self.inFlight.leave() }
        guard let adaptive = target.adaptive else {
            do {
                return try await self.send(request, to: target, context: context)
            } catch let error as RPCCallError {
                throw Self.answer(error, target: target, context: context)
            }
        }
        guard adaptive.enter() else {
            throw APIError.unavailable("the \(target.queue) service is at capacity, try again shortly", retryAfter: adaptive.retryAfter)
        }
        let started = ContinuousClock.now
        do {
            let response: Response = try await self.send(request, to: target, context: context)
            adaptive.leave(latency: .now - started)
            return response
        } catch let error as RPCCallError {
            // What the call's end says of the service's capacity: any reply (an error reply too)
            // is a measured time, a timeout is overload, and a request that was never taken (the
            // broker refused it) or a reply that could not be read says nothing.
            switch error {
            case .remote: adaptive.leave(latency: .now - started)
            case .timeout: adaptive.leave(latency: .now - started, timedOut: true)
            case .unavailable, .invalidReply: adaptive.leave(latency: nil)
            }
            throw Self.answer(error, target: target, context: context)
        } catch {
            adaptive.leave(latency: nil)
            throw error
        }
    }

    /// The RPC itself; its failures are ``RPCCallError``s (or cancellation).
    private func send<Request: MessageContract, Response: Decodable & Sendable>(
        _ request: Request, to target: Target, context: GatewayContext
    ) async throws -> Response {
        if let batching = target.batching {
            return try await self.client.call(request, routingKey: target.routingKey, expecting: Response.self,
                                              timeout: target.timeout, batching: batching, requestID: context.requestID,
                                              traceparent: context.traceparent)
        }
        return try await self.client.call(request, routingKey: target.routingKey, expecting: Response.self,
                                          timeout: target.timeout, requestID: context.requestID, traceparent: context.traceparent)
    }

    /// The HTTP answer to a failed call; failures other than a typed reply are logged.
    private static func answer(_ error: RPCCallError, target: Target, context: GatewayContext) -> APIError {
        if case .remote = error {} else {
            context.logger.warning("rpc call failed", metadata: [LogKey.routingKey: "\(target.routingKey)", LogKey.error: "\(error)"])
        }
        return APIError.from(error)
    }
}

extension ServiceCalls {
    /// A streaming call. The first event is awaited here, so that a call that fails at once
    /// (quota, bad input, nobody consuming) is an ordinary error response; later failures come
    /// out of the returned stream.
    func stream<Request: MessageContract, Partial: Decodable & Sendable, Response: Decodable & Sendable>(
        _ request: Request, to target: Target, partial: Partial.Type, expecting: Response.Type, context: GatewayContext
    ) async throws -> (first: RPCStreamEvent<Partial, Response>, rest: StreamEvents<Partial, Response>) {
        try await self.admit(target)
        let events = StreamEvents(self.client.stream(request, routingKey: target.routingKey, partial: Partial.self, expecting: Response.self,
                                                     timeout: target.timeout, requestID: context.requestID,
                                                     traceparent: context.traceparent),
                                  inFlight: self.inFlight)
        guard let first = try await events.next() else {
            throw APIError(status: .badGateway, code: "bad_gateway", message: "the service ended the answer without a reply")
        }
        return (first, events)
    }
}

/// The remaining events of a streaming call, with errors already mapped to ``APIError``;
/// releases the in-flight slot when it ends.
final class StreamEvents<Partial: Sendable, Response: Sendable>: @unchecked Sendable {
    private var iterator: AsyncThrowingStream<RPCStreamEvent<Partial, Response>, any Error>.AsyncIterator
    private let inFlight: InFlightLimit
    private var released = false

    init(_ stream: AsyncThrowingStream<RPCStreamEvent<Partial, Response>, any Error>, inFlight: InFlightLimit) {
        self.iterator = stream.makeAsyncIterator()
        self.inFlight = inFlight
    }

    /// Called from one task at a time.
    func next() async throws -> RPCStreamEvent<Partial, Response>? {
        do {
            let event = try await self.iterator.next()
            if event == nil { self.release() }
            return event
        } catch let error as RPCCallError {
            self.release()
            throw APIError.from(error)
        } catch {
            self.release()
            throw error
        }
    }

    private func release() {
        guard !self.released else { return }
        self.released = true
        self.inFlight.leave()
    }

    deinit { if !self.released { self.inFlight.leave() } }
}

/// A bound on concurrent calls from this gateway (`AIRA_MAX_IN_FLIGHT`).
final class InFlightLimit: Sendable {
    let limit: Int
    private let current = Atomic<Int>(0)
    private let gauge = Gauge(label: "aira_gateway_rpc_in_flight")
    private let shed = Counter(label: "aira_gateway_rpc_shed_total")

    init(limit: Int) { self.limit = limit }

    func enter() -> Bool {
        let now = self.current.add(1, ordering: .relaxed).newValue
        guard now <= self.limit else {
            self.current.subtract(1, ordering: .relaxed)
            self.shed.increment()
            return false
        }
        self.gauge.record(now)
        return true
    }

    func leave() { self.gauge.record(self.current.subtract(1, ordering: .relaxed).newValue) }
}
