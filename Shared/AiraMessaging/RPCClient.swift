import AiraAMQP
import AiraCore
import Foundation
import Metrics
import Synchronization

/// Calls RPC servers over the broker with direct reply-to (`amq.rabbitmq.reply-to`): no reply
/// queue to declare, replies resumed straight from the connection's thread.
///
/// Each call carries its deadline twice: as AMQP `expiration` (the broker drops a request nobody
/// took in time) and as `x-aira-deadline` (a server drops a request whose caller gave up).
public final class RPCClient: Sendable {
    public static let replyQueue = "amq.rabbitmq.reply-to"

    private let channel: AMQPChannel
    /// Who waits for the replies to each correlation id.
    private let waiting = Mutex<[String: Waiting]>([:])
    /// Batched calls, one lane per routing key and request type.
    private let lanes = Mutex<[String: RPCBatchLane]>([:])
    private let succeeded = Counter(label: "aira_rpc_calls_total", dimensions: [("outcome", "ok")])
    private let failed = Counter(label: "aira_rpc_calls_total", dimensions: [("outcome", "failed")])

    /// Gets every reply to one correlation id, and the failure if the connection is lost first.
    typealias ReplyHandler = @Sendable (Result<AMQPDelivery, any Error>) -> Void

    private enum Waiting {
        /// A plain call: its one reply resumes it, and it is done.
        case call(CheckedContinuation<AMQPDelivery, any Error>)
        /// A stream (partial replies, then the final one) or a batch (a reply per part): every
        /// reply goes to the handler until its owner removes it.
        case replies(ReplyHandler)
    }

    private init(channel: AMQPChannel) { self.channel = channel }

    /// Opens the client's channel (confirms on, so a refused request fails fast) and its reply consumer.
    public static func open(on connection: AMQPConnection) async throws -> RPCClient {
        let channel = try await connection.openChannel()
        try await channel.enableConfirms()
        try await channel.declareExchange(AiraExchange.name, type: "topic", durable: true)
        let client = RPCClient(channel: channel)
        _ = try await channel.consume(queue: replyQueue, noAck: true) { [weak client] delivery in
            client?.receive(delivery)
        }
        // Direct replies travel on the connection that sent the request: when it is lost, no call
        // in flight will hear back. They fail now (503 at the gateway) rather than at their timeout.
        connection.onConnectionLost { [weak client] why in client?.failAll(RPCCallError.unavailable(.connectionLost(why))) }
        return client
    }

    /// Sends `request` to the queue bound to `routingKey` and waits for the typed response.
    public func call<Request: MessageContract, Response: Decodable & Sendable>(
        _ request: Request, routingKey: String, expecting: Response.Type = Response.self, timeout: Duration,
        requestID: String? = nil, traceparent: String? = nil
    ) async throws -> Response {
        let callID = MessageID.random()
        let finalProperties = Self.requestProperties(Request.self, callID: callID, timeout: timeout, requestID: requestID,
                                                     traceparent: traceparent)
        let body = try request.encoded()

        let reply: AMQPDelivery
        do {
            reply = try await self.awaitReply(callID: callID, timeout: timeout) {
                self.channel.publish(exchange: AiraExchange.name, routingKey: routingKey, body: body,
                                     properties: finalProperties, mandatory: true) { [weak self] result in
                    if case .failure(let error) = result { self?.resume(callID, with: .failure(RPCCallError.unavailable(error))) }
                }
            }
        } catch {
            self.failed.increment()
            throw error
        }

        if reply.properties.headers[AiraHeader.rpcStatus]?.stringValue == RPCReplyStatus.error {
            self.failed.increment()
            guard let remote = try? MessageCoding.decode(RPCErrorReply.self, from: reply.body) else {
                throw RPCCallError.invalidReply("undecodable error reply")
            }
            throw RPCCallError.remote(remote)
        }
        do {
            let response = try MessageCoding.decode(Response.self, from: reply.body)
            self.succeeded.increment()
            return response
        } catch {
            self.failed.increment()
            throw RPCCallError.invalidReply(MessageCoding.describe(error))
        }
    }

    /// Like ``call(_:routingKey:expecting:timeout:requestID:traceparent:)``, but the request may
    /// share one message and one reply with other calls of its type to the same routing key
    /// (``RPCBatch``); the server must serve the batch type (``RPCRoutes/onBatch(_:_:)``). Calls
    /// of a batch share its deadline: the earliest of theirs. The request id and trace travel
    /// with the call in its batch; cancelling the caller's task ends its wait at once.
    public func call<Request: MessageContract, Response: Decodable & Sendable>(
        _ request: Request, routingKey: String, expecting: Response.Type = Response.self, timeout: Duration,
        batching options: RPCBatch.Options, requestID: String? = nil, traceparent: String? = nil
    ) async throws -> Response {
        let body = try request.encoded()
        let lane = self.lane(Request.self, routingKey: routingKey, options: options)
        let raw: [UInt8]
        do {
            raw = try await lane.submit(body, ids: RPCBatch.CallIDs(requestID: requestID, traceparent: traceparent), timeout: timeout)
        } catch {
            self.failed.increment()
            throw error
        }
        do {
            let response = try MessageCoding.decode(Response.self, from: raw)
            self.succeeded.increment()
            return response
        } catch {
            self.failed.increment()
            throw RPCCallError.invalidReply(MessageCoding.describe(error))
        }
    }

    private func lane<Request: MessageContract>(_ type: Request.Type, routingKey: String, options: RPCBatch.Options) -> RPCBatchLane {
        let name = "\(routingKey) \(Request.messageType)"
        let lane = self.lanes.withLock { lanes -> RPCBatchLane in
            // A lane is never replaced: its batches out hold it only weakly.
            if let lane = lanes[name] { return lane }
            let lane = RPCBatchLane(messageType: RPCBatch.messageType(of: Request.self), routingKey: routingKey, options: options,
                                    channel: self.channel) { [weak self] id, handler in
                self?.waiting.withLock { $0[id] = handler.map { .replies($0) } }
            }
            lanes[name] = lane
            return lane
        }
        lane.adopt(options)
        return lane
    }

    /// A call whose server sends partial replies (``MessageContext/sendPartialReply(_:)``) before
    /// its final response: yields `.partial` for each, then `.done`, then finishes. Fails like
    /// ``call(_:routingKey:expecting:timeout:requestID:traceparent:)``; `timeout` bounds the whole call.
    public func stream<Request: MessageContract, Partial: Decodable & Sendable, Response: Decodable & Sendable>(
        _ request: Request, routingKey: String, partial: Partial.Type, expecting: Response.Type, timeout: Duration,
        requestID: String? = nil, traceparent: String? = nil
    ) -> AsyncThrowingStream<RPCStreamEvent<Partial, Response>, any Error> {
        let (events, continuation) = AsyncThrowingStream<RPCStreamEvent<Partial, Response>, any Error>.makeStream()
        let callID = MessageID.random()
        let body: [UInt8]
        do { body = try request.encoded() } catch {
            continuation.finish(throwing: error)
            return events
        }
        let properties = Self.requestProperties(Request.self, callID: callID, timeout: timeout, requestID: requestID,
                                                traceparent: traceparent)
        let timer = Task {
            try await Task.sleep(for: timeout)
            continuation.finish(throwing: RPCCallError.timeout(timeout))
        }
        continuation.onTermination = { [weak self] _ in
            timer.cancel()
            _ = self?.waiting.withLock { $0.removeValue(forKey: callID) }
        }
        self.waiting.withLock {
            $0[callID] = .replies { [weak self] result in
                let delivery: AMQPDelivery
                switch result {
                case .success(let d): delivery = d
                case .failure(let error):
                    self?.failed.increment()
                    continuation.finish(throwing: error)
                    return
                }
                let status = delivery.properties.headers[AiraHeader.rpcStatus]?.stringValue
                do {
                    switch status {
                    case RPCReplyStatus.partial:
                        continuation.yield(.partial(try MessageCoding.decode(Partial.self, from: delivery.body)))
                    case RPCReplyStatus.error:
                        throw RPCCallError.remote(try MessageCoding.decode(RPCErrorReply.self, from: delivery.body))
                    default:
                        continuation.yield(.done(try MessageCoding.decode(Response.self, from: delivery.body)))
                        self?.succeeded.increment()
                        continuation.finish()
                    }
                } catch let error as RPCCallError {
                    self?.failed.increment()
                    continuation.finish(throwing: error)
                } catch {
                    self?.failed.increment()
                    continuation.finish(throwing: RPCCallError.invalidReply(MessageCoding.describe(error)))
                }
            }
        }
        self.channel.publish(exchange: AiraExchange.name, routingKey: routingKey, body: body, properties: properties,
                             mandatory: true) { result in
            if case .failure(let error) = result { continuation.finish(throwing: RPCCallError.unavailable(error)) }
        }
        return events
    }

    package static func requestProperties<Request: MessageContract>(_ type: Request.Type, callID: String, timeout: Duration,
                                                            requestID: String?, traceparent: String?) -> AMQPProperties {
        let deadline = Date().addingTimeInterval(timeout.seconds)
        var properties = MessagePublisher.properties(
            type: Request.messageType, messageID: callID, correlationID: callID, traceparent: traceparent,
            headers: [AiraHeader.deadline: .int(Int64(deadline.timeIntervalSince1970 * 1000))], persistent: false)
        if let requestID { properties.headers[AiraHeader.requestID] = .string(requestID) }
        properties.replyTo = Self.replyQueue
        properties.expiration = String(max(1, timeout.milliseconds))
        return properties
    }

    private func awaitReply(callID: String, timeout: Duration, send: @Sendable () -> Void) async throws -> AMQPDelivery {
        let timer = Task { [weak self] in
            try await Task.sleep(for: timeout)
            self?.resume(callID, with: .failure(RPCCallError.timeout(timeout)))
        }
        defer { timer.cancel() }
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (c: CheckedContinuation<AMQPDelivery, any Error>) in
                self.waiting.withLock { $0[callID] = .call(c) }
                send()
            }
        } onCancel: {
            self.resume(callID, with: .failure(CancellationError()))
        }
    }

    /// Calls, streams and batches awaiting replies (for metrics and tests).
    public var inFlight: Int { self.waiting.withLock { $0.count } }

    private func receive(_ delivery: AMQPDelivery) {
        guard let id = delivery.properties.correlationID else { return }
        let waiter = self.waiting.withLock { waiting -> Waiting? in
            guard let waiter = waiting[id] else { return nil }
            if case .call = waiter { waiting[id] = nil }
            return waiter
        }
        switch waiter {
        case .call(let c): c.resume(returning: delivery)
        case .replies(let handler): handler(.success(delivery))
        case nil: break // a call that timed out or was cancelled: nobody waits any more
        }
    }

    /// Fails every call in flight (the connection they were sent on is gone).
    private func failAll(_ error: any Error) {
        let waiters = self.waiting.withLock { waiting in
            defer { waiting = [:] }
            return Array(waiting.values)
        }
        for waiter in waiters {
            switch waiter {
            case .call(let c): c.resume(throwing: error)
            case .replies(let handler): handler(.failure(error))
            }
        }
    }

    /// Ends a plain call's wait (its timeout, cancellation, or a refused publish).
    private func resume(_ id: String, with result: Result<AMQPDelivery, any Error>) {
        let c = self.waiting.withLock { waiting -> CheckedContinuation<AMQPDelivery, any Error>? in
            guard case .call(let c)? = waiting[id] else { return nil }
            waiting[id] = nil
            return c
        }
        c?.resume(with: result)
    }
}
