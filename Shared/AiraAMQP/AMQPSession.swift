import AiraCore
import CRabbitMQ
import Foundation
import Logging

/// Method numbers from amqp_framing.h (macros with casts do not import into Swift).
enum Method {
    static let connectionClose: amqp_method_number_t = 0x000A_0032
    static let connectionCloseOK: amqp_method_number_t = 0x000A_0033
    static let connectionBlocked: amqp_method_number_t = 0x000A_003C
    static let connectionUnblocked: amqp_method_number_t = 0x000A_003D
    static let channelClose: amqp_method_number_t = 0x0014_0028
    static let channelCloseOK: amqp_method_number_t = 0x0014_0029
    static let basicCancel: amqp_method_number_t = 0x003C_001E
    static let basicReturn: amqp_method_number_t = 0x003C_0032
    static let basicDeliver: amqp_method_number_t = 0x003C_003C
    static let basicAck: amqp_method_number_t = 0x003C_0050
    static let basicNack: amqp_method_number_t = 0x003C_0078
}

typealias PublishCompletion = @Sendable (Result<Void, AMQPError>) -> Void

/// What to re-do on a channel after it is opened again (reconnect or channel error).
enum RecoveryOp {
    case confirmSelect
    case qos(UInt16)
    case declareExchange(name: String, type: String, durable: Bool, arguments: AMQPTable)
    case declareQueue(name: String, options: AMQPQueueOptions)
    case bind(queue: String, exchange: String, routingKey: String, arguments: AMQPTable)
    case consume(tag: String)
}

/// Where a consumer's deliveries go: an async stream, or a callback run on the connection's
/// thread (which must return at once; RPC replies use it to resume callers without a hop).
enum DeliverySink: Sendable {
    case stream(AsyncStream<AMQPDelivery>.Continuation)
    /// `deliver` for each message; `ended` once, when the consumer stops (cancelled by either
    /// side, channel closed, connection closed for good).
    case callback(deliver: @Sendable (AMQPDelivery) -> Void, ended: @Sendable () -> Void)

    func deliver(_ delivery: AMQPDelivery) {
        switch self {
        case .stream(let c): c.yield(delivery)
        case .callback(let f, _): f(delivery)
        }
    }

    func finish() {
        switch self {
        case .stream(let c): c.finish()
        case .callback(_, let ended): ended()
        }
    }
}

struct ConsumerRegistration {
    var queue: String
    var noAck: Bool
    var exclusive: Bool
    var arguments: AMQPTable
    var sink: DeliverySink
}

struct PendingPublish {
    var messageID: String?
    var returned: AMQPError?
    var completion: PublishCompletion
}

final class ChannelState {
    let id: UInt16
    var isOpen = false
    var epoch: UInt64 = 0
    var confirmMode = false
    var confirms = ConfirmTracker()
    var consumers: [String: ConsumerRegistration] = [:]
    var recovery: [RecoveryOp] = []
    var acks = AckTracker()

    init(id: UInt16) { self.id = id }

    func record(_ op: RecoveryOp) {
        switch op {
        case .qos:
            self.recovery.removeAll { if case .qos = $0 { true } else { false } }
        case .confirmSelect:
            if self.recovery.contains(where: { if case .confirmSelect = $0 { true } else { false } }) { return }
        case .declareQueue(let name, _):
            self.recovery.removeAll { if case .declareQueue(name, _) = $0 { true } else { false } }
        default: break
        }
        self.recovery.append(op)
    }
}

/// The thread-owned side of an ``AMQPConnection``: the rabbitmq-c connection, its channels and
/// every blocking call on them. Only the connection's own thread touches an instance.
final class AMQPSession {
    let configuration: AMQPConfiguration
    let logger: Logger
    let mailbox: Mailbox<AMQPConnection.Job>
    let status: ConnectionStatusBox

    var state: amqp_connection_state_t?
    var channels: [UInt16: ChannelState] = [:]
    var closing = false
    var reconnectAttempt = 0
    var nextReconnect = ContinuousClock.now
    /// The node of ``AMQPConfiguration/nodes`` to try first: a random one at start (a fleet
    /// spreads over the cluster), the next one after a lost connection.
    var nodeIndex: Int
    var heartbeatSeconds: Int32 = 0
    var channelsWithAcks: Set<UInt16> = []
    /// Reused by every publish (reset each time): no malloc per string on the hot path.
    let publishArena = CArena()

    init(configuration: AMQPConfiguration, logger: Logger, mailbox: Mailbox<AMQPConnection.Job>, status: ConnectionStatusBox) {
        self.configuration = configuration
        self.logger = logger
        self.mailbox = mailbox
        self.status = status
        self.nodeIndex = Int.random(in: 0..<max(1, configuration.nodes.count))
    }

    var isConnected: Bool { self.state != nil }

    /// The socket while its output is held back (TCP_CORK) for a batch of jobs.
    private var corkedSocket: Int32?

    /// Sends what the batch has written so far. A job that waits for the broker's answer
    /// (declare, cancel, ...) must call it first: a corked request would sit in the kernel for
    /// up to 200 ms before Linux sends it anyway, stalling the whole connection.
    func uncork() {
        if let fd = self.corkedSocket {
            setCork(fd, false)
            self.corkedSocket = nil
        }
    }

    // MARK: - The thread's loop

    func run() {
        while true {
            let jobs = self.mailbox.drain()
            // Several jobs at once (a burst of publishes or acks): hold the socket's output
            // until all are written, so they leave in a few packets instead of one each.
            self.corkedSocket = jobs.count > 1 ? self.state.map { amqp_get_sockfd($0) } : nil
            if let fd = self.corkedSocket { setCork(fd, true) }
            for job in jobs { job(self) }
            self.flushAcks()
            if self.state != nil { self.uncork() }
            self.corkedSocket = nil
            if self.closing { break }

            if let state = self.state {
                guard self.pumpFrames() else { continue }
                if !jobs.isEmpty || amqp_data_in_buffer(state) != 0 || amqp_frames_enqueued(state) != 0 { continue }
                let halfHeartbeat = self.heartbeatSeconds > 0 ? self.heartbeatSeconds * 500 : 1000
                _ = self.mailbox.wait(for: amqp_get_sockfd(state), timeoutMilliseconds: halfHeartbeat)
            } else {
                let now = ContinuousClock.now
                if now >= self.nextReconnect {
                    self.connect()
                } else {
                    let ms = Int32(clamping: (self.nextReconnect - now).milliseconds + 1)
                    _ = self.mailbox.wait(timeoutMilliseconds: ms)
                }
            }
        }
        self.shutdown()
    }

    private func shutdown() {
        self.flushAcks()
        if let state = self.state {
            _ = amqp_connection_close(state, 200)
            amqp_destroy_connection(state)
            self.state = nil
        }
        for channel in self.channels.values {
            self.failPending(channel, with: .closed)
            for consumer in channel.consumers.values { consumer.sink.finish() }
            channel.consumers = [:]
        }
        self.status.update(connected: false, closed: true)
        for job in self.mailbox.close() { job(self) }
    }

    // MARK: - Connecting

    /// Connects to the first node that answers, trying each once from ``nodeIndex`` on; backs
    /// off only when none did.
    func connect() {
        let nodes = self.configuration.nodes
        var failures: [String] = []
        for step in 0..<nodes.count {
            let index = (self.nodeIndex + step) % nodes.count
            switch self.open(nodes[index]) {
            case .success(let state):
                self.nodeIndex = index
                return self.established(state, node: nodes[index])
            case .failure(let failure):
                failures.append("\(nodes[index]): \(failure.why)")
            }
        }
        self.scheduleReconnect(after: failures.joined(separator: "; "))
    }

    private struct ConnectFailure: Error { let why: String }

    /// A logged-in connection to `node`, or why not.
    private func open(_ node: AMQPConfiguration.Node) -> Result<amqp_connection_state_t, ConnectFailure> {
        let config = self.configuration
        guard let state = amqp_new_connection() else { return .failure(ConnectFailure(why: "out of memory")) }
        guard let socket = amqp_tcp_socket_new(state) else {
            amqp_destroy_connection(state)
            return .failure(ConnectFailure(why: "cannot create socket"))
        }
        var connectTimeout = timeval(tv_sec: config.connectTimeout.timeval.seconds, tv_usec: config.connectTimeout.timeval.microseconds)
        let rc = amqp_socket_open_noblock(socket, node.host, Int32(node.port), &connectTimeout)
        guard rc == AMQP_STATUS_OK.rawValue else {
            amqp_destroy_connection(state)
            return .failure(ConnectFailure(why: errorText(rc)))
        }
        setNoDelay(amqp_get_sockfd(state))
        var handshake = timeval(tv_sec: config.connectTimeout.timeval.seconds, tv_usec: config.connectTimeout.timeval.microseconds)
        amqp_set_handshake_timeout(state, &handshake)
        var rpcTimeout = timeval(tv_sec: config.rpcTimeout.timeval.seconds, tv_usec: config.rpcTimeout.timeval.microseconds)
        amqp_set_rpc_timeout(state, &rpcTimeout)

        let arena = CArena()
        defer { withExtendedLifetime(arena) {} }
        // Capabilities: without consumer_cancel_notify the broker cancels a consumer silently
        // (e.g. its queue was deleted) and the consumer would wait forever; connection.blocked
        // lets us log resource alarms.
        var properties = arena.table([
            "connection_name": .string(config.connectionName),
            "product": .string("aira"),
            "capabilities": .table(["consumer_cancel_notify": .bool(true), "connection.blocked": .bool(true),
                                    "publisher_confirms": .bool(true), "basic.nack": .bool(true),
                                    "exchange_exchange_bindings": .bool(true)]),
        ])
        let reply = aira_amqp_login_plain_properties(
            state, config.vhost, 0, 131_072, Int32(config.heartbeat.seconds.rounded()), &properties,
            config.user, config.password)
        guard reply.reply_type == AMQP_RESPONSE_NORMAL else {
            let why = describe(reply)
            amqp_destroy_connection(state)
            return .failure(ConnectFailure(why: "login failed: \(why)"))
        }
        return .success(state)
    }

    /// Takes `state` as the connection and restores every channel on it.
    private func established(_ state: amqp_connection_state_t, node: AMQPConfiguration.Node) {
        self.state = state
        self.heartbeatSeconds = amqp_get_heartbeat(state)

        // Re-open every channel and redo its topology, qos, confirm mode and consumers.
        for channel in self.channels.values.sorted(by: { $0.id < $1.id }) {
            do {
                try self.openAndRecover(channel)
            } catch {
                self.disconnect(.connectionLost("recovering channel \(channel.id): \(error)"))
                return
            }
        }
        self.reconnectAttempt = 0
        self.status.connected(to: node)
        self.status.update(connected: true, closed: false)
        self.logger.info("connected to broker", metadata: ["node": "\(node)", "nodes": "\(self.configuration.nodes.count)",
                                                           "channels": "\(self.channels.count)"])
    }

    private func scheduleReconnect(after why: String) {
        let backoff = Backoff(initial: self.configuration.reconnectBackoff, maximum: self.configuration.reconnectBackoffMax)
        let delay = backoff.delay(attempt: self.reconnectAttempt)
        self.reconnectAttempt += 1
        self.nextReconnect = .now + delay
        self.status.update(connected: false, closed: false, lastError: why)
        let level: Logger.Level = self.reconnectAttempt <= 1 || self.reconnectAttempt % 20 == 0 ? .warning : .debug
        self.logger.log(level: level, "broker unavailable, retrying",
                        metadata: [LogKey.error: "\(why)", "retry_in_ms": "\(delay.milliseconds)", "attempt": "\(self.reconnectAttempt)"])
    }

    /// Drops the connection after an error: in-flight publishes fail (their outcome is unknown),
    /// unacked deliveries will be redelivered by the broker, and a reconnect is scheduled.
    func disconnect(_ error: AMQPError) {
        guard let state = self.state else { return }
        self.state = nil
        amqp_destroy_connection(state)
        for channel in self.channels.values {
            channel.isOpen = false
            self.failPending(channel, with: .connectionLost(error.description))
        }
        self.logger.warning("broker connection lost", metadata: [LogKey.error: "\(error)",
                                                                 "node": "\(self.configuration.nodes[self.nodeIndex])"])
        // The next attempt starts at the next node: the one just lost may be the one that died.
        self.nodeIndex = (self.nodeIndex + 1) % self.configuration.nodes.count
        self.scheduleReconnect(after: error.description)
    }

    func openAndRecover(_ channel: ChannelState) throws {
        guard let state = self.state else { throw AMQPError.notConnected }
        amqp_channel_open(state, channel.id)
        try self.check(amqp_get_rpc_reply(state), channel: channel.id, reopen: false)
        channel.isOpen = true
        channel.epoch &+= 1
        channel.acks = AckTracker()
        channel.confirmMode = false
        channel.confirms = ConfirmTracker()
        for op in channel.recovery { try self.apply(op, on: channel, reopen: false) }
    }

    func apply(_ op: RecoveryOp, on channel: ChannelState, reopen: Bool = true) throws {
        guard let state = self.state else { throw AMQPError.notConnected }
        let arena = CArena()
        defer { withExtendedLifetime(arena) {} }
        let id = channel.id
        switch op {
        case .confirmSelect:
            amqp_confirm_select(state, id)
            try self.check(amqp_get_rpc_reply(state), channel: id, reopen: reopen)
            channel.confirmMode = true
        case .qos(let prefetch):
            amqp_basic_qos(state, id, 0, prefetch, 0)
            try self.check(amqp_get_rpc_reply(state), channel: id, reopen: reopen)
        case .declareExchange(let name, let type, let durable, let arguments):
            amqp_exchange_declare(state, id, arena.bytes(name), arena.bytes(type), 0, durable ? 1 : 0, 0, 0,
                                  arena.table(arguments))
            try self.check(amqp_get_rpc_reply(state), channel: id, reopen: reopen)
        case .declareQueue(let name, let o):
            amqp_queue_declare(state, id, arena.bytes(name), 0, o.durable ? 1 : 0, o.exclusive ? 1 : 0,
                               o.autoDelete ? 1 : 0, arena.table(o.arguments))
            try self.check(amqp_get_rpc_reply(state), channel: id, reopen: reopen)
        case .bind(let queue, let exchange, let key, let arguments):
            amqp_queue_bind(state, id, arena.bytes(queue), arena.bytes(exchange), arena.bytes(key), arena.table(arguments))
            try self.check(amqp_get_rpc_reply(state), channel: id, reopen: reopen)
        case .consume(let tag):
            guard let c = channel.consumers[tag] else { return }
            amqp_basic_consume(state, id, arena.bytes(c.queue), arena.bytes(tag), 0, c.noAck ? 1 : 0,
                               c.exclusive ? 1 : 0, arena.table(c.arguments))
            try self.check(amqp_get_rpc_reply(state), channel: id, reopen: reopen)
        }
    }

    /// Turns a synchronous reply into success or a thrown error, handling the broker's side
    /// effects: a channel error closes the channel (we answer close-ok and open it again with its
    /// recovery ops), a connection error or an I/O failure drops the connection.
    func check(_ reply: amqp_rpc_reply_t, channel: UInt16, reopen: Bool = true) throws {
        switch reply.reply_type {
        case AMQP_RESPONSE_NORMAL:
            return
        case AMQP_RESPONSE_SERVER_EXCEPTION:
            if reply.reply.id == Method.channelClose, let decoded = reply.reply.decoded {
                let close = decoded.assumingMemoryBound(to: amqp_channel_close_t.self).pointee
                let error = AMQPError.channelClosed(code: Int(close.reply_code), text: close.reply_text.string)
                self.channelClosedByBroker(channel, error: error, reopen: reopen)
                throw error
            }
            if reply.reply.id == Method.connectionClose, let decoded = reply.reply.decoded {
                let close = decoded.assumingMemoryBound(to: amqp_connection_close_t.self).pointee
                let error = AMQPError.connectionClosed(code: Int(close.reply_code), text: close.reply_text.string)
                self.connectionClosedByBroker(error)
                throw error
            }
            let error = AMQPError.library(code: -1, "unexpected server reply \(reply.reply.id)")
            self.disconnect(error)
            throw error
        case AMQP_RESPONSE_LIBRARY_EXCEPTION:
            let error = AMQPError.connectionLost(errorText(reply.library_error))
            self.disconnect(error)
            throw error
        default:
            let error = AMQPError.library(code: -1, "missing reply")
            self.disconnect(error)
            throw error
        }
    }

    func channelClosedByBroker(_ id: UInt16, error: AMQPError, reopen: Bool = true) {
        guard let state = self.state, let channel = self.channels[id] else { return }
        var ok = amqp_channel_close_ok_t()
        _ = amqp_send_method(state, id, Method.channelCloseOK, &ok)
        channel.isOpen = false
        self.failPending(channel, with: error)
        self.logger.warning("channel closed by broker", metadata: ["channel": "\(id)", LogKey.error: "\(error)"])
        guard reopen else { return }
        do {
            try self.openAndRecover(channel)
        } catch {
            self.logger.error("could not reopen channel", metadata: ["channel": "\(id)", LogKey.error: "\(error)"])
            if self.state != nil { self.disconnect(.connectionLost("channel \(id) could not be reopened")) }
        }
    }

    func connectionClosedByBroker(_ error: AMQPError) {
        if let state = self.state {
            var ok = amqp_connection_close_ok_t()
            _ = amqp_send_method(state, 0, Method.connectionCloseOK, &ok)
        }
        self.disconnect(error)
    }

    func failPending(_ channel: ChannelState, with error: AMQPError) {
        for p in channel.confirms.takeAll() { p.completion(.failure(error)) }
    }

    // MARK: - Incoming frames

    /// Reads and handles every frame that is already available. Returns false if the
    /// connection was dropped meanwhile.
    func pumpFrames() -> Bool {
        while let state = self.state {
            amqp_maybe_release_buffers(state)
            var frame = amqp_frame_t()
            var zero = timeval(tv_sec: 0, tv_usec: 0)
            let rc = amqp_simple_wait_frame_noblock(state, &frame, &zero)
            if rc == AMQP_STATUS_TIMEOUT.rawValue { return true }
            guard rc == AMQP_STATUS_OK.rawValue else {
                self.disconnect(.connectionLost(errorText(rc)))
                return false
            }
            guard frame.frame_type == UInt8(AMQP_FRAME_METHOD) else { continue }
            self.handleMethod(frame.payload.method, channel: frame.channel)
        }
        return false
    }

    private func handleMethod(_ method: amqp_method_t, channel id: UInt16) {
        switch method.id {
        case Method.basicDeliver:
            let d = method.decoded.assumingMemoryBound(to: amqp_basic_deliver_t.self).pointee
            let tag = d.consumer_tag.string, deliveryTag = d.delivery_tag, redelivered = d.redelivered != 0
            let exchange = d.exchange.string, routingKey = d.routing_key.string
            guard let (properties, body) = self.readContent(channel: id) else { return }
            guard let channel = self.channels[id] else { return }
            let delivery = AMQPDelivery(deliveryTag: deliveryTag, redelivered: redelivered, exchange: exchange,
                                        routingKey: routingKey, consumerTag: tag, properties: properties, body: body,
                                        channelEpoch: channel.epoch)
            if let consumer = channel.consumers[tag] {
                if !consumer.noAck { channel.acks.delivered(deliveryTag) }
                consumer.sink.deliver(delivery)
            } else if let state = self.state {
                // Consumer already cancelled: hand the message back at once.
                _ = amqp_basic_reject(state, id, deliveryTag, 1)
            }
        case Method.basicAck:
            let a = method.decoded.assumingMemoryBound(to: amqp_basic_ack_t.self).pointee
            self.confirm(channel: id, tag: a.delivery_tag, multiple: a.multiple != 0, ok: true)
        case Method.basicNack:
            let n = method.decoded.assumingMemoryBound(to: amqp_basic_nack_t.self).pointee
            self.confirm(channel: id, tag: n.delivery_tag, multiple: n.multiple != 0, ok: false)
        case Method.basicReturn:
            let r = method.decoded.assumingMemoryBound(to: amqp_basic_return_t.self).pointee
            let error = AMQPError.unroutable(exchange: r.exchange.string, routingKey: r.routing_key.string,
                                             replyText: "\(r.reply_code) \(r.reply_text.string)")
            guard let (properties, _) = self.readContent(channel: id) else { return }
            if let channel = self.channels[id], let messageID = properties.messageID {
                channel.confirms.markReturned(messageID: messageID, error)
            }
        case Method.channelClose:
            let c = method.decoded.assumingMemoryBound(to: amqp_channel_close_t.self).pointee
            self.channelClosedByBroker(id, error: .channelClosed(code: Int(c.reply_code), text: c.reply_text.string))
        case Method.connectionClose:
            let c = method.decoded.assumingMemoryBound(to: amqp_connection_close_t.self).pointee
            self.connectionClosedByBroker(.connectionClosed(code: Int(c.reply_code), text: c.reply_text.string))
        case Method.basicCancel:
            // The broker cancelled a consumer (its queue was deleted): end that stream.
            let c = method.decoded.assumingMemoryBound(to: amqp_basic_cancel_t.self).pointee
            let tag = c.consumer_tag.string
            if let channel = self.channels[id], let consumer = channel.consumers.removeValue(forKey: tag) {
                channel.recovery.removeAll { if case .consume(tag) = $0 { true } else { false } }
                consumer.sink.finish()
                self.logger.warning("consumer cancelled by broker", metadata: [LogKey.queue: "\(consumer.queue)"])
            }
        case Method.connectionBlocked:
            self.logger.warning("broker blocked publishing (resource alarm)")
        case Method.connectionUnblocked:
            self.logger.info("broker unblocked publishing")
        default:
            break
        }
    }

    /// Reads the content header and body that follow a deliver or return.
    private func readContent(channel: UInt16) -> (AMQPProperties, [UInt8])? {
        guard let state = self.state else { return nil }
        var message = amqp_message_t()
        let reply = amqp_read_message(state, channel, &message, 0)
        guard reply.reply_type == AMQP_RESPONSE_NORMAL else {
            self.disconnect(.connectionLost("reading message: \(describe(reply))"))
            return nil
        }
        defer { amqp_destroy_message(&message) }
        return (swiftProperties(message.properties), message.body.array)
    }

    private func confirm(channel id: UInt16, tag: UInt64, multiple: Bool, ok: Bool) {
        guard let channel = self.channels[id] else { return }
        func complete(_ p: PendingPublish) {
            if !ok { p.completion(.failure(.publishRejected)) }
            else if let returned = p.returned { p.completion(.failure(returned)) }
            else { p.completion(.success(())) }
        }
        if multiple {
            for p in channel.confirms.take(upTo: tag) { complete(p) }
        } else if let p = channel.confirms.take(tag) {
            complete(p)
        }
    }

    // MARK: - Publishing and acknowledging

    func publish(channel id: UInt16, exchange: String, routingKey: String, body: [UInt8],
                 properties: AMQPProperties, mandatory: Bool, completion: @escaping PublishCompletion) {
        guard let state = self.state, let channel = self.channels[id], channel.isOpen else {
            return completion(.failure(.notConnected))
        }
        var properties = properties
        if mandatory && properties.messageID == nil { properties.messageID = UUID().lowercasedString }
        let arena = self.publishArena
        arena.reset()
        var props = arena.properties(properties)
        let rc = body.withUnsafeBytes { raw in
            amqp_basic_publish(state, id, arena.bytes(exchange), arena.bytes(routingKey), mandatory ? 1 : 0, 0, &props,
                               amqp_bytes_t(len: raw.count, bytes: UnsafeMutableRawPointer(mutating: raw.baseAddress)))
        }
        guard rc == AMQP_STATUS_OK.rawValue else {
            let error = AMQPError.connectionLost("publish: \(errorText(rc))")
            completion(.failure(error))
            self.disconnect(error)
            return
        }
        guard channel.confirmMode else { return completion(.success(())) }
        _ = channel.confirms.add(PendingPublish(messageID: mandatory ? properties.messageID : nil, returned: nil,
                                                completion: completion))
    }

    func acknowledge(channel id: UInt16, epoch: UInt64, deliveryTag: UInt64, kind: AckKind) {
        guard let state = self.state, let channel = self.channels[id], channel.isOpen, channel.epoch == epoch else {
            return // stale: the broker requeued the message when the channel went away
        }
        let rc: Int32
        switch kind {
        case .ack(false):
            // Collected and sent by flushAcks() after this batch of jobs.
            channel.acks.requestAck(deliveryTag)
            self.channelsWithAcks.insert(id)
            return
        case .ack(true): rc = amqp_basic_ack(state, id, deliveryTag, 1)
        case .nack(let requeue, let multiple): rc = amqp_basic_nack(state, id, deliveryTag, multiple ? 1 : 0, requeue ? 1 : 0)
        case .reject(let requeue): rc = amqp_basic_reject(state, id, deliveryTag, requeue ? 1 : 0)
        }
        if case .ack(true) = kind { channel.acks.settledUpTo(deliveryTag) } else { channel.acks.settledOne(deliveryTag) }
        if rc != AMQP_STATUS_OK.rawValue { self.disconnect(.connectionLost("ack: \(errorText(rc))")) }
    }

    /// Sends the acks requested since the last flush: the run of them at the front of the
    /// unacked deliveries as one `multiple` ack, the others one by one (never held back).
    func flushAcks() {
        guard !self.channelsWithAcks.isEmpty else { return }
        defer { self.channelsWithAcks.removeAll(keepingCapacity: true) }
        for id in self.channelsWithAcks {
            guard let state = self.state, let channel = self.channels[id], channel.isOpen else { continue }
            let plan = channel.acks.flush()
            var rc = AMQP_STATUS_OK.rawValue
            if let upTo = plan.multipleUpTo {
                rc = amqp_basic_ack(state, id, upTo, 1)
            }
            for tag in plan.single where rc == AMQP_STATUS_OK.rawValue {
                rc = amqp_basic_ack(state, id, tag, 0)
            }
            if rc != AMQP_STATUS_OK.rawValue { self.disconnect(.connectionLost("ack: \(errorText(rc))")) }
        }
    }
}

enum AckKind: Sendable {
    case ack(multiple: Bool)
    case nack(requeue: Bool, multiple: Bool)
    case reject(requeue: Bool)
}

/// TCP_NODELAY: a lone small frame (an RPC request, a reply, an ack) leaves at once instead
/// of waiting for the previous segment's acknowledgement (Nagle). Batches are coalesced by TCP_CORK.
func setNoDelay(_ fd: Int32) {
    var one: Int32 = 1
    _ = setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
}

/// TCP_CORK on or off (Linux): while on, the kernel sends only full segments.
func setCork(_ fd: Int32, _ on: Bool) {
    #if os(Linux)
    var value: Int32 = on ? 1 : 0
    _ = setsockopt(fd, Int32(IPPROTO_TCP), TCP_CORK, &value, socklen_t(MemoryLayout<Int32>.size))
    #endif
}

func errorText(_ code: Int32) -> String {
    guard let p = amqp_error_string2(code) else { return "error \(code)" }
    return String(cString: p)
}

func describe(_ reply: amqp_rpc_reply_t) -> String {
    switch reply.reply_type {
    case AMQP_RESPONSE_LIBRARY_EXCEPTION: return errorText(reply.library_error)
    case AMQP_RESPONSE_SERVER_EXCEPTION:
        if reply.reply.id == Method.connectionClose, let d = reply.reply.decoded {
            let c = d.assumingMemoryBound(to: amqp_connection_close_t.self).pointee
            return "\(c.reply_code) \(c.reply_text.string)"
        }
        if reply.reply.id == Method.channelClose, let d = reply.reply.decoded {
            let c = d.assumingMemoryBound(to: amqp_channel_close_t.self).pointee
            return "\(c.reply_code) \(c.reply_text.string)"
        }
        return "server exception \(reply.reply.id)"
    default: return "no reply"
    }
}
