import AiraAMQP
import AiraCore
import Foundation
import Metrics

/// Publishes Aira messages with publisher confirms and `mandatory`: `publish` returns once the
/// broker has the message, and throws if it was refused, unroutable, or the connection dropped
/// before the confirm (the caller decides: retry, or 503).
public struct MessagePublisher: Sendable {
    public let channel: AMQPChannel
    private let published = Counter(label: "aira_published_total", dimensions: [("outcome", "confirmed")])
    private let failed = Counter(label: "aira_published_total", dimensions: [("outcome", "failed")])

    /// Opens a confirm-mode channel on `connection` for publishing.
    public static func open(on connection: AMQPConnection) async throws -> MessagePublisher {
        let channel = try await connection.openChannel()
        try await channel.enableConfirms()
        try await channel.declareExchange(AiraExchange.name, type: "topic", durable: true)
        return MessagePublisher(channel: channel)
    }

    public init(channel: AMQPChannel) { self.channel = channel }

    /// Publishes `message` to the `aira` exchange. Returns its message id.
    @discardableResult
    public func publish<M: MessageContract>(_ message: M, routingKey: String, messageID: String? = nil,
                                            correlationID: String? = nil, traceparent: String? = nil,
                                            headers: AMQPTable = [:]) async throws -> String {
        let id = messageID ?? MessageID.random()
        let properties = Self.properties(type: M.messageType, messageID: id, correlationID: correlationID,
                                         traceparent: traceparent, headers: headers)
        try await self.publishRaw(exchange: AiraExchange.name, routingKey: routingKey,
                                  body: try message.encoded(), properties: properties)
        return id
    }

    /// Publishes bytes as they are (retries, dead letters, replays, RPC replies).
    public func publishRaw(exchange: String, routingKey: String, body: [UInt8], properties: AMQPProperties,
                           mandatory: Bool = true) async throws {
        do {
            try await self.channel.publish(exchange: exchange, routingKey: routingKey, body: body,
                                           properties: properties, mandatory: mandatory)
            self.published.increment()
        } catch {
            self.failed.increment()
            throw error
        }
    }

    /// The envelope properties of a new message.
    public static func properties(type: String, messageID: String, correlationID: String?, traceparent: String?,
                                  headers: AMQPTable = [:], persistent: Bool = true) -> AMQPProperties {
        var h = headers
        h[AiraHeader.traceparent] = .string(traceparent.flatMap { TraceParent.isValid($0) ? $0 : nil } ?? TraceParent.random())
        return AMQPProperties(contentType: "application/json", headers: h,
                              deliveryMode: persistent ? AMQPProperties.persistent : AMQPProperties.transient,
                              correlationID: correlationID ?? messageID, messageID: messageID,
                              timestamp: UInt64(Date().timeIntervalSince1970), type: type, appID: "aira")
    }
}
