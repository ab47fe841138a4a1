import AiraAMQP
import Foundation

/// A typed error an RPC server sends back (`invalid_credentials`, `quota_exceeded`, ...); the
/// gateway maps codes to HTTP statuses. Throw it from an ``RPCHandler`` to answer with it.
public struct RPCErrorReply: Error, Codable, Sendable, Hashable, CustomStringConvertible {
    public var code: String
    public var message: String
    /// Optional structured detail (e.g. a quota's reset time), passed through as strings.
    public var details: [String: String]?

    public init(code: String, message: String, details: [String: String]? = nil) {
        self.code = code
        self.message = message
        self.details = details
    }

    public var description: String { "\(self.code): \(self.message)" }

    /// Codes the runtime itself answers with.
    public static let badRequestCode = "bad_request"
    public static let unavailableCode = "unavailable"
    public static let internalCode = "internal"

    /// What the caller of a request that failed with `error` is told, once no retry is left —
    /// the one mapping for single and batched calls: an ``RPCErrorReply`` as it is; an error
    /// retrying cannot help (a ``PermanentError``) with its code and message; anything else
    /// (transient: a dependency down) as `unavailable`, whose text the caller may show, never
    /// the error's own (it may name servers or hold their text).
    public static func answering(_ error: any Error) -> RPCErrorReply {
        if let reply = error as? RPCErrorReply { return reply }
        guard ErrorClassification.isTransient(error) else {
            return RPCErrorReply(code: ErrorClassification.code(error), message: ErrorClassification.message(error))
        }
        return RPCErrorReply(code: Self.unavailableCode, message: "temporarily unavailable, try again")
    }

    /// The body of an error reply.
    var encoded: [UInt8] {
        (try? MessageCoding.encode(self)) ?? Array(#"{"code":"internal","message":"error not encodable"}"#.utf8)
    }
}

/// Why an RPC call did not produce a response.
public enum RPCCallError: Error, Sendable, CustomStringConvertible {
    /// No reply before the deadline (no consumer, consumers too slow): HTTP 504.
    case timeout(Duration)
    /// The request could not be published (broker down, queue full, no such queue): HTTP 503.
    case unavailable(AMQPError)
    /// The server answered with a typed error.
    case remote(RPCErrorReply)
    /// The reply could not be decoded.
    case invalidReply(String)

    public var description: String {
        switch self {
        case .timeout(let d): "no reply within \(d)"
        case .unavailable(let e): "request not accepted: \(e)"
        case .remote(let r): "remote error \(r)"
        case .invalidReply(let why): "invalid reply: \(why)"
        }
    }
}

/// What a streaming call (``RPCClient/stream(_:routingKey:partial:expecting:timeout:requestID:traceparent:)``) yields.
public enum RPCStreamEvent<Partial: Sendable, Response: Sendable>: Sendable {
    case partial(Partial)
    case done(Response)
}

extension MessageContext {
    /// Sends a partial reply to the caller of a streaming RPC (e.g. a piece of an answer as the
    /// upstream produces it). Partial replies and the final one travel on one channel, in order.
    /// Without a `reply_to` (not an RPC) it does nothing.
    public func sendPartialReply(_ value: some Encodable) throws {
        self.publisher.reply(to: self.message, body: try MessageCoding.encode(value), status: RPCReplyStatus.partial)
    }
}

/// The `x-aira-rpc-status` of a reply.
enum RPCReplyStatus {
    static let ok = "ok"
    static let error = "error"
    static let partial = "partial"
}

extension MessagePublisher {
    /// Publishes a reply (final or partial) to an RPC request's `reply_to`, transient and not
    /// awaited: the caller's reply consumer is the confirmation that matters.
    func reply(to message: InboundMessage, body: [UInt8], status: String) {
        guard let replyTo = message.properties.replyTo else { return }
        let properties = AMQPProperties(contentType: "application/json", headers: [AiraHeader.rpcStatus: .string(status)],
                                        deliveryMode: AMQPProperties.transient, correlationID: message.correlationID)
        self.channel.publish(exchange: "", routingKey: replyTo, body: body, properties: properties, mandatory: false) { _ in }
    }

    /// Publishes the final reply to an RPC request: its response, or its typed error.
    func reply(to message: InboundMessage, _ result: Result<[UInt8], RPCErrorReply>) {
        switch result {
        case .success(let body): self.reply(to: message, body: body, status: RPCReplyStatus.ok)
        case .failure(let error): self.reply(to: message, body: error.encoded, status: RPCReplyStatus.error)
        }
    }
}

/// Serves one request type: returns the response or throws an ``RPCErrorReply`` (answered as
/// is), a ``PermanentError`` (answered with its code), or a transient error (retried in-process
/// while the caller's deadline allows, then answered `unavailable`).
public protocol RPCHandler: Sendable {
    associatedtype Request: MessageContract
    associatedtype Response: Codable & Sendable
    func handle(_ request: Request, context: MessageContext) async throws -> Response
}

/// The request types one RPC queue serves, each with its handler. A queue per group of
/// operations with similar cost (e.g. bcrypt-heavy vs. cheap) keeps cheap calls from waiting
/// behind expensive ones.
///
///     var routes = RPCRoutes()
///     routes.on(LoginRequest.self) { request, context in try await service.login(request) }
public struct RPCRoutes: Sendable {
    /// What running a request gives the server to send.
    enum Reply: Sendable {
        /// The encoded response: the server replies with it.
        case response([UInt8])
        /// Every reply has gone out already (a batch answers in parts as its calls finish).
        case sentInParts
    }

    /// A decoded request, ready to run (and re-run, for in-process retries).
    typealias Call = @Sendable (MessageContext) async throws -> Reply
    typealias Decoder = @Sendable ([UInt8]) throws -> Call

    var decoders: [String: Decoder] = [:]

    public init() {}

    /// A queue serving one ``RPCHandler``.
    public init<Handler: RPCHandler>(_ handler: Handler) {
        self.on(Handler.Request.self) { request, context in try await handler.handle(request, context: context) }
    }

    /// Serves `Request` (by its `messageType`) with `handler`. A later route for the same type replaces the earlier.
    public mutating func on<Request: MessageContract, Response: Encodable & Sendable>(
        _ type: Request.Type, _ handler: @escaping @Sendable (Request, MessageContext) async throws -> Response
    ) {
        self.decoders[Request.messageType] = { body in
            let request = try MessageCoding.decode(Request.self, from: body)
            return { context in .response(try MessageCoding.encode(try await handler(request, context))) }
        }
    }

    /// The served message types, sorted (for errors and logs).
    public var messageTypes: [String] { self.decoders.keys.sorted() }
}
