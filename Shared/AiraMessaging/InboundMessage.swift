import AiraAMQP
import Foundation

/// A delivery seen through Aira's envelope: ids, type, attempts and deadline from its properties
/// and headers.
public struct InboundMessage: Sendable {
    public let delivery: AMQPDelivery

    public init(_ delivery: AMQPDelivery) { self.delivery = delivery }

    public var properties: AMQPProperties { self.delivery.properties }
    public var headers: AMQPTable { self.delivery.properties.headers }
    public var messageID: String? { self.properties.messageID }
    public var type: String? { self.properties.type }
    public var correlationID: String? { self.properties.correlationID }
    public var traceparent: String? { self.headers[AiraHeader.traceparent]?.stringValue }
    /// The HTTP request behind an RPC (`x-aira-request-id`).
    public var requestID: String? { self.headers[AiraHeader.requestID]?.stringValue }
    public var body: [UInt8] { self.delivery.body }
    public var routingKey: String { self.delivery.routingKey }

    /// Failed attempts before this delivery (from `x-aira-attempts`).
    public var attempts: Int { Int(self.headers[AiraHeader.attempts]?.intValue ?? 0) }

    /// Times the broker returned this message unacknowledged (quorum `x-delivery-count`).
    public var deliveryCount: Int { Int(self.headers[AiraHeader.deliveryCount]?.intValue ?? 0) }

    /// The routing key the message was first published with, across retries.
    public var originalRoutingKey: String {
        self.headers[AiraHeader.originalRoutingKey]?.stringValue ?? self.delivery.routingKey
    }

    /// RPC: when the caller stops waiting.
    public var deadline: Date? {
        guard let ms = self.headers[AiraHeader.deadline]?.intValue else { return nil }
        return Date(timeIntervalSince1970: Double(ms) / 1000)
    }

    public var publishedAt: Date? {
        self.properties.timestamp.map { Date(timeIntervalSince1970: Double($0)) }
    }
}
