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

/// Serves one request type: returns the response or throws an ``RPCErrorReply`` (answered as
/// is), a ``PermanentError`` (answered with its code), or a transient error (retried in-process
/// while the caller's deadline allows, then answered `unavailable`).
public protocol RPCHandler: Sendable {
    associatedtype Request: MessageContract
    associatedtype Response: Codable & Sendable
    func handle(_ request: Request, context: MessageContext) async throws -> Response
}
