/// What can go wrong talking to the broker. Callers mostly need `isRetriable`: true means the
/// same call may succeed later (broker down or busy); false means the call itself is wrong.
public enum AMQPError: Error, Sendable, CustomStringConvertible {
    /// Not connected right now (broker down, reconnecting). Retriable.
    case notConnected
    /// The connection dropped while the call was in flight; the publish may or may not have
    /// reached the broker. Retriable.
    case connectionLost(String)
    /// The broker negatively acknowledged a publish (e.g. queue full with `reject-publish`).
    case publishRejected
    /// `mandatory` publish that no queue was bound to receive.
    case unroutable(exchange: String, routingKey: String, replyText: String)
    /// The broker closed the channel because of this call (code and text from the broker).
    case channelClosed(code: Int, text: String)
    /// The broker closed the connection (code and text from the broker).
    case connectionClosed(code: Int, text: String)
    /// Could not connect or log in.
    case connectFailed(String)
    /// rabbitmq-c reported an error.
    case library(code: Int32, String)
    case invalidURL(String)
    /// The connection was closed by its owner.
    case closed
    case timeout

    public var isRetriable: Bool {
        switch self {
        case .notConnected, .connectionLost, .publishRejected, .connectFailed, .timeout, .library: true
        case .connectionClosed(let code, _): code == 320 || code == 505 || code == 541 // forced, unexpected frame, internal error
        case .unroutable, .channelClosed, .invalidURL, .closed: false
        }
    }

    /// The broker reply code for channel errors (404 not found, 406 precondition failed, ...).
    public var replyCode: Int? {
        switch self {
        case .channelClosed(let code, _), .connectionClosed(let code, _): code
        default: nil
        }
    }

    public var description: String {
        switch self {
        case .notConnected: "not connected to the broker"
        case .connectionLost(let why): "connection to the broker lost: \(why)"
        case .publishRejected: "the broker rejected the message (nack)"
        case .unroutable(let ex, let key, let text): "message unroutable: exchange '\(ex)' routing key '\(key)' (\(text))"
        case .channelClosed(let code, let text): "channel closed by broker: \(code) \(text)"
        case .connectionClosed(let code, let text): "connection closed by broker: \(code) \(text)"
        case .connectFailed(let why): "cannot connect to the broker: \(why)"
        case .library(let code, let text): "rabbitmq-c error \(code): \(text)"
        case .invalidURL(let url): "invalid AMQP URL '\(url)' (expected amqp://user:pass@host:port/vhost)"
        case .closed: "connection closed"
        case .timeout: "broker call timed out"
        }
    }
}
