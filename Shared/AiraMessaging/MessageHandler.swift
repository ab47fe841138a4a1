import AiraAMQP
import AiraCore
import Logging
import Synchronization

/// Handles one message type from one queue. Throw a ``PermanentError`` when retrying cannot
/// help, a ``TransientError`` (or any other error) when it might. Handlers must be idempotent:
/// a redelivered or replayed message must have the effect of one (use `context.messageID`).
public protocol MessageHandler: Sendable {
    associatedtype Message: MessageContract
    func handle(_ message: Message, context: MessageContext) async throws
}

/// What a handler knows about the message it handles, and how it publishes follow-up messages
/// in the same trace and correlation. For a request of an RPC batch (``RPCBatch``) it describes
/// that one call: its own id, request id and trace.
public struct MessageContext: Sendable {
    public let message: InboundMessage
    public let queue: String
    public let publisher: MessagePublisher
    private let baseLogger: Logger
    let followUps: FollowUps
    /// The id of what is handled: the message's, or `<batch message id>#<index>` for a call of a batch.
    public let messageID: String
    /// The HTTP request behind it (`x-aira-request-id`), when the caller sent one.
    public let requestID: String?
    /// The trace it belongs to (its `traceparent`).
    let trace: String?

    /// A logger carrying the message id, correlation id, queue and request id (built when first asked for).
    public var logger: Logger {
        var l = self.baseLogger
        l[metadataKey: LogKey.messageID] = "\(self.messageID.isEmpty ? "-" : self.messageID)"
        l[metadataKey: LogKey.correlationID] = "\(self.message.correlationID ?? "-")"
        l[metadataKey: LogKey.queue] = "\(self.queue)"
        if let requestID = self.requestID { l[metadataKey: LogKey.requestID] = "\(requestID)" }
        return l
    }
    public var correlationID: String { self.message.correlationID ?? self.messageID }
    /// Failed attempts before this one.
    public var attempts: Int { self.message.attempts }
    /// A new child span of the message's trace, for something this handler publishes.
    public var traceparent: String { TraceParent.child(of: self.trace) }

    init(message: InboundMessage, queue: String, logger: Logger, publisher: MessagePublisher) {
        self.message = message
        self.queue = queue
        self.baseLogger = logger
        self.publisher = publisher
        self.followUps = FollowUps()
        self.messageID = message.messageID ?? ""
        self.requestID = message.requestID
        self.trace = message.traceparent
    }

    /// The context of call `index` of a batch carried by this context's message: its own ids
    /// and trace; follow-up work runs with the batch's, after its replies.
    func call(_ index: Int, requestID: String?, traceparent: String?) -> MessageContext {
        MessageContext(self, messageID: "\(self.messageID)#\(index)", requestID: requestID, trace: traceparent ?? self.trace)
    }

    private init(_ batch: MessageContext, messageID: String, requestID: String?, trace: String?) {
        self.message = batch.message
        self.queue = batch.queue
        self.baseLogger = batch.baseLogger
        self.publisher = batch.publisher
        self.followUps = batch.followUps
        self.messageID = messageID
        self.requestID = requestID
        self.trace = trace
    }

    /// Runs `work` once the handler has finished and (for an RPC) its reply has been sent, before
    /// the message is acknowledged: bookkeeping such as audit events, off the caller's latency
    /// but not lost if the process dies (the message is redelivered).
    public func afterReply(_ work: @escaping @Sendable () async -> Void) {
        self.followUps.add(work)
    }

    /// Publishes a follow-up message carrying this message's correlation id and trace.
    @discardableResult
    public func publish<M: MessageContract>(_ message: M, routingKey: String) async throws -> String {
        try await self.publisher.publish(message, routingKey: routingKey, correlationID: self.correlationID,
                                         traceparent: self.traceparent)
    }
}

/// Work a handler left for after its reply (``MessageContext/afterReply(_:)``).
final class FollowUps: Sendable {
    private let work = Mutex<[@Sendable () async -> Void]>([])
    func add(_ item: @escaping @Sendable () async -> Void) { self.work.withLock { $0.append(item) } }
    /// Drops what an attempt registered (it failed and runs again).
    func reset() { self.work.withLock { $0.removeAll() } }
    /// Runs what was registered, concurrently (a batch of requests registers one per request:
    /// e.g. audit events, which then share a batch of their own instead of waiting in turn).
    func run() async {
        let items = self.work.withLock { w in defer { w.removeAll() }; return w }
        if items.count <= 1 { return await items.first?() ?? () }
        await withTaskGroup(of: Void.self) { group in
            for item in items { group.addTask { await item() } }
        }
    }
}

/// The checks every consumer makes before its handler runs, in order: delivery limit, a
/// known type, a decodable body.
enum Admission<Payload> {
    case accept(Payload)
    case reject(code: String, reason: String, disposition: FailurePlan.Disposition)

    /// `decoder(type)` returns how to decode a message of `type`, or nil when the queue does not
    /// serve that type; `expected` names what it serves, for the dead-letter reason.
    static func check(_ message: InboundMessage, spec: QueueSpec, expected: String,
                      decoder: (String) -> (([UInt8]) throws -> Payload)?) -> Admission {
        if message.deliveryCount >= spec.deliveryLimit {
            return .reject(code: "delivery_limit",
                           reason: "delivered \(message.deliveryCount + 1) times without an acknowledgement: consumers crashed or disconnected while handling it",
                           disposition: .deliveryLimit)
        }
        guard let type = message.type else {
            return .reject(code: "unknown_message_type", reason: "message has no type (expected \(expected))",
                           disposition: .permanent)
        }
        guard let decode = decoder(type) else {
            return .reject(code: "unknown_message_type",
                           reason: "unknown message type '\(type)' for queue \(spec.name) (expected \(expected))",
                           disposition: .permanent)
        }
        do {
            return .accept(try decode(message.body))
        } catch {
            return .reject(code: "decoding_failed", reason: "undecodable \(type): \(MessageCoding.describe(error))",
                           disposition: .permanent)
        }
    }
}

extension Admission where Payload: MessageContract {
    /// For a queue that serves one contract (in any of the message types it accepts).
    static func check(_ message: InboundMessage, spec: QueueSpec) -> Admission {
        let accepted = Payload.acceptedMessageTypes
        return self.check(message, spec: spec, expected: accepted.map { "'\($0)'" }.joined(separator: ", ")) { type in
            accepted.contains(type) ? { try Payload.decode(type: type, from: $0) } : nil
        }
    }
}

extension Logger {
    func with(_ message: InboundMessage, queue: String) -> Logger {
        var l = self
        l[metadataKey: LogKey.messageID] = "\(message.messageID ?? "-")"
        l[metadataKey: LogKey.correlationID] = "\(message.correlationID ?? "-")"
        l[metadataKey: LogKey.queue] = "\(queue)"
        if let requestID = message.requestID { l[metadataKey: LogKey.requestID] = "\(requestID)" }
        return l
    }
}
