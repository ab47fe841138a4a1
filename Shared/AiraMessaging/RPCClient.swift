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
    private let pending = Mutex<[String: CheckedContinuation<AMQPDelivery, any Error>]>([:])
    private let calls = Counter(label: "aira_rpc_calls_total", dimensions: [("outcome", "ok")])
    private let failures = Counter(label: "aira_rpc_calls_total", dimensions: [("outcome", "failed")])

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
        return client
    }

    /// Sends `request` to the queue bound to `routingKey` and waits for the typed response.
    public func call<Request: MessageContract, Response: Decodable & Sendable>(
        _ request: Request, routingKey: String, expecting: Response.Type = Response.self, timeout: Duration,
        requestID: String? = nil, traceparent: String? = nil
    ) async throws -> Response {
        let callID = MessageID.random()
        let deadline = Date().addingTimeInterval(timeout.seconds)
        var properties = MessagePublisher.properties(
            type: Request.messageType, messageID: callID, correlationID: callID, traceparent: traceparent,
            headers: [AiraHeader.deadline: .int(Int64(deadline.timeIntervalSince1970 * 1000))], persistent: false)
        if let requestID { properties.headers["x-aira-request-id"] = .string(requestID) }
        properties.replyTo = Self.replyQueue
        properties.expiration = String(max(1, timeout.milliseconds))
        let body = try MessageCoding.encode(request)
        let finalProperties = properties

        let reply: AMQPDelivery
        do {
            reply = try await self.awaitReply(callID: callID, timeout: timeout) {
                self.channel.publish(exchange: AiraExchange.name, routingKey: routingKey, body: body,
                                     properties: finalProperties, mandatory: true) { [weak self] result in
                    if case .failure(let error) = result { self?.resume(callID, with: .failure(RPCCallError.unavailable(error))) }
                }
            }
        } catch {
            self.failures.increment()
            throw error
        }

        if reply.properties.headers[AiraHeader.rpcStatus]?.stringValue == "error" {
            self.failures.increment()
            guard let remote = try? MessageCoding.decode(RPCErrorReply.self, from: reply.body) else {
                throw RPCCallError.invalidReply("undecodable error reply")
            }
            throw RPCCallError.remote(remote)
        }
        do {
            let response = try MessageCoding.decode(Response.self, from: reply.body)
            self.calls.increment()
            return response
        } catch {
            self.failures.increment()
            throw RPCCallError.invalidReply(MessageCoding.describe(error))
        }
    }

    private func awaitReply(callID: String, timeout: Duration, send: @Sendable () -> Void) async throws -> AMQPDelivery {
        let timer = Task { [weak self] in
            try await Task.sleep(for: timeout)
            self?.resume(callID, with: .failure(RPCCallError.timeout(timeout)))
        }
        defer { timer.cancel() }
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (c: CheckedContinuation<AMQPDelivery, any Error>) in
                self.pending.withLock { $0[callID] = c }
                send()
            }
        } onCancel: {
            self.resume(callID, with: .failure(CancellationError()))
        }
    }

    /// Calls in flight (for metrics and tests).
    public var inFlight: Int { self.pending.withLock { $0.count } }

    private func receive(_ delivery: AMQPDelivery) {
        guard let id = delivery.properties.correlationID else { return }
        self.resume(id, with: .success(delivery))
    }

    private func resume(_ id: String, with result: Result<AMQPDelivery, any Error>) {
        let c = self.pending.withLock { $0.removeValue(forKey: id) }
        c?.resume(with: result)
    }
}
