import AiraCore
import CRabbitMQ
import Foundation

/// A channel on an ``AMQPConnection``. Cheap to copy; every call goes to the connection's thread.
///
/// What is declared, the prefetch, confirm mode and consumers are remembered and restored
/// after a reconnect or a channel error.
public struct AMQPChannel: Sendable {
    public let id: UInt16
    public let connection: AMQPConnection

    // MARK: Topology

    public func declareExchange(_ name: String, type: String = "topic", durable: Bool = true,
                                arguments: AMQPTable = [:]) async throws {
        try await self.recorded(.declareExchange(name: name, type: type, durable: durable, arguments: arguments))
    }

    public func declareQueue(_ name: String, options: AMQPQueueOptions = AMQPQueueOptions()) async throws {
        try await self.recorded(.declareQueue(name: name, options: options))
    }

    public func bindQueue(_ queue: String, exchange: String, routingKey: String, arguments: AMQPTable = [:]) async throws {
        try await self.recorded(.bind(queue: queue, exchange: exchange, routingKey: routingKey, arguments: arguments))
    }

    /// Counts for an existing queue (passive declare). Throws `channelClosed(404…)` if it does not exist.
    public func inspectQueue(_ name: String) async throws -> AMQPQueueStatus {
        let id = self.id
        return try await self.connection.call { session in
            guard let state = session.state, let channel = session.channels[id], channel.isOpen else { throw AMQPError.notConnected }
            let ok = withArena { arena in
                amqp_queue_declare(state, id, arena.bytes(name), 1, 0, 0, 0, amqp_table_t(num_entries: 0, entries: nil))
            }
            try session.check(amqp_get_rpc_reply(state), channel: id)
            guard let ok else { throw AMQPError.library(code: -1, "no declare-ok") }
            return AMQPQueueStatus(name: name, messageCount: ok.pointee.message_count, consumerCount: ok.pointee.consumer_count)
        }
    }

    /// Deletes a queue (and forgets its declaration and bindings on this channel).
    @discardableResult
    public func deleteQueue(_ name: String) async throws -> UInt32 {
        let id = self.id
        return try await self.connection.call { session in
            guard let state = session.state, let channel = session.channels[id], channel.isOpen else { throw AMQPError.notConnected }
            let ok = withArena { amqp_queue_delete(state, id, $0.bytes(name), 0, 0) }
            try session.check(amqp_get_rpc_reply(state), channel: id)
            channel.recovery.removeAll {
                switch $0 {
                case .declareQueue(name, _), .bind(name, _, _, _): true
                default: false
                }
            }
            return ok?.pointee.message_count ?? 0
        }
    }

    /// Removes every ready message from a queue; returns how many.
    @discardableResult
    public func purgeQueue(_ name: String) async throws -> UInt32 {
        let id = self.id
        return try await self.connection.call { session in
            guard let state = session.state, let channel = session.channels[id], channel.isOpen else { throw AMQPError.notConnected }
            let ok = withArena { amqp_queue_purge(state, id, $0.bytes(name)) }
            try session.check(amqp_get_rpc_reply(state), channel: id)
            return ok?.pointee.message_count ?? 0
        }
    }

    // MARK: Flow

    /// At most `count` unacknowledged deliveries on this channel.
    public func setPrefetch(_ count: UInt16) async throws {
        try await self.recorded(.qos(count))
    }

    /// Publisher confirms: from now on `publish` returns only once the broker has taken the message.
    public func enableConfirms() async throws {
        try await self.recorded(.confirmSelect)
    }

    // MARK: Publishing

    /// Publishes a message. On a channel with confirms enabled this returns when the broker has
    /// confirmed it, and throws if it was nacked, returned as unroutable (`mandatory`), or the
    /// connection dropped before the confirm arrived.
    public func publish(exchange: String, routingKey: String, body: [UInt8], properties: AMQPProperties = AMQPProperties(),
                        mandatory: Bool = false) async throws {
        try await withUnsafeThrowingContinuation { (continuation: UnsafeContinuation<Void, any Error>) in
            self.publish(exchange: exchange, routingKey: routingKey, body: body, properties: properties,
                         mandatory: mandatory) { result in
                continuation.resume(with: result.mapError { $0 as any Error })
            }
        }
    }

    /// Publishes and calls `completion` (on the connection's thread) when the outcome is known.
    package func publish(exchange: String, routingKey: String, body: [UInt8], properties: AMQPProperties,
                         mandatory: Bool, completion: @escaping @Sendable (Result<Void, AMQPError>) -> Void) {
        let id = self.id
        let accepted = self.connection.submit { session in
            session.publish(channel: id, exchange: exchange, routingKey: routingKey, body: body,
                            properties: properties, mandatory: mandatory, completion: completion)
        }
        if !accepted { completion(.failure(.closed)) }
    }

    // MARK: Consuming

    /// Starts a consumer. Deliveries arrive on the returned stream until the consumer is
    /// cancelled or the connection is closed; across reconnects the same stream continues.
    /// The stream's buffer is bounded by the channel's prefetch (unless `noAck`).
    public func consume(queue: String, consumerTag: String? = nil, noAck: Bool = false, exclusive: Bool = false,
                        arguments: AMQPTable = [:]) async throws -> AMQPConsumer {
        let tag = consumerTag ?? "aira-\(UUID().lowercasedString)"
        let (stream, continuation) = AsyncStream.makeStream(of: AMQPDelivery.self, bufferingPolicy: .unbounded)
        let id = self.id
        let connection = self.connection
        continuation.onTermination = { _ in
            _ = connection.submit { session in session.cancelConsumer(channel: id, tag: tag) }
        }
        try await self.startConsumer(tag: tag, queue: queue, noAck: noAck, exclusive: exclusive, arguments: arguments,
                                     sink: .stream(continuation))
        return AMQPConsumer(tag: tag, channel: self, deliveries: stream)
    }

    /// Starts a consumer whose deliveries are handed to `handler` on the connection's thread
    /// (it must not block); `ended` runs once when the consumer stops. Returns the consumer tag.
    package func consume(queue: String, noAck: Bool, handler: @escaping @Sendable (AMQPDelivery) -> Void,
                         ended: @escaping @Sendable () -> Void = {}) async throws -> String {
        let tag = "aira-\(UUID().lowercasedString)"
        try await self.startConsumer(tag: tag, queue: queue, noAck: noAck, exclusive: false, arguments: [:],
                                     sink: .callback(deliver: handler, ended: ended))
        return tag
    }

    private func startConsumer(tag: String, queue: String, noAck: Bool, exclusive: Bool, arguments: AMQPTable,
                               sink: DeliverySink) async throws {
        let id = self.id
        try await self.connection.call { session in
            guard let channel = session.channels[id], channel.isOpen else { throw AMQPError.notConnected }
            channel.consumers[tag] = ConsumerRegistration(queue: queue, noAck: noAck, exclusive: exclusive,
                                                          arguments: arguments, sink: sink)
            do {
                try session.apply(.consume(tag: tag), on: channel)
                channel.record(.consume(tag: tag))
            } catch {
                channel.consumers[tag] = nil
                sink.finish()
                throw error
            }
        }
    }

    /// Asks for a consumer to be cancelled without waiting (usable from synchronous code, e.g.
    /// a graceful-shutdown handler).
    public func requestCancel(consumerTag: String) {
        let id = self.id
        _ = self.connection.submit { session in session.cancelConsumer(channel: id, tag: consumerTag) }
    }

    /// Closes the channel: its consumers end and it is not restored after reconnects.
    public func close() async {
        let id = self.id
        try? await self.connection.call { session in
            session.flushAcks() // acks requested before the close go out first
            guard let channel = session.channels.removeValue(forKey: id) else { return }
            for consumer in channel.consumers.values { consumer.sink.finish() }
            channel.consumers = [:]
            session.failPending(channel, with: .closed)
            if let state = session.state, channel.isOpen {
                _ = amqp_channel_close(state, id, 200)
            }
        }
    }

    /// Stops a consumer: the broker sends no more; its stream ends after what is buffered.
    public func cancel(consumerTag: String) async throws {
        let id = self.id
        try await self.connection.call { session in session.cancelConsumer(channel: id, tag: consumerTag) }
    }

    // MARK: Acknowledging (fire and forget: a lost ack means a redelivery, never a loss)

    public func ack(_ delivery: AMQPDelivery, multiple: Bool = false) {
        self.acknowledge(delivery, .ack(multiple: multiple))
    }

    public func nack(_ delivery: AMQPDelivery, requeue: Bool, multiple: Bool = false) {
        self.acknowledge(delivery, .nack(requeue: requeue, multiple: multiple))
    }

    public func reject(_ delivery: AMQPDelivery, requeue: Bool) {
        self.acknowledge(delivery, .reject(requeue: requeue))
    }

    private func acknowledge(_ delivery: AMQPDelivery, _ kind: AckKind) {
        let id = self.id
        _ = self.connection.submit { session in
            session.acknowledge(channel: id, epoch: delivery.channelEpoch, deliveryTag: delivery.deliveryTag, kind: kind)
        }
    }

    private func recorded(_ op: RecoveryOp) async throws {
        let id = self.id
        try await self.connection.call { session in
            guard session.isConnected, let channel = session.channels[id], channel.isOpen else { throw AMQPError.notConnected }
            try session.apply(op, on: channel)
            channel.record(op)
        }
    }
}

/// A running consumer: its tag and its deliveries.
public struct AMQPConsumer: Sendable {
    public let tag: String
    public let channel: AMQPChannel
    public let deliveries: AsyncStream<AMQPDelivery>
}

extension AMQPSession {
    func cancelConsumer(channel id: UInt16, tag: String) {
        self.flushAcks()
        self.uncork()
        guard let channel = self.channels[id], let consumer = channel.consumers.removeValue(forKey: tag) else { return }
        channel.recovery.removeAll { if case .consume(tag) = $0 { true } else { false } }
        if let state = self.state, channel.isOpen {
            _ = withArena { amqp_basic_cancel(state, id, $0.bytes(tag)) }
            try? self.check(amqp_get_rpc_reply(state), channel: id)
        }
        consumer.sink.finish()
    }
}

