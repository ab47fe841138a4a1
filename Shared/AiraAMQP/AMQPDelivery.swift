/// One message delivered to a consumer. Acknowledge it through the channel it came from;
/// an ack after the channel or connection was re-established is ignored (the broker has
/// already requeued the message).
public struct AMQPDelivery: Sendable {
    public var deliveryTag: UInt64
    public var redelivered: Bool
    public var exchange: String
    public var routingKey: String
    public var consumerTag: String
    public var properties: AMQPProperties
    public var body: [UInt8]
    /// Which incarnation of the channel delivered this; acks for an older one are dropped.
    public var channelEpoch: UInt64

    public init(deliveryTag: UInt64, redelivered: Bool, exchange: String, routingKey: String, consumerTag: String,
                properties: AMQPProperties, body: [UInt8], channelEpoch: UInt64) {
        self.deliveryTag = deliveryTag
        self.redelivered = redelivered
        self.exchange = exchange
        self.routingKey = routingKey
        self.consumerTag = consumerTag
        self.properties = properties
        self.body = body
        self.channelEpoch = channelEpoch
    }
}

/// Queue arguments and flags for `declareQueue`.
public struct AMQPQueueOptions: Sendable, Hashable {
    public var durable: Bool
    public var exclusive: Bool
    public var autoDelete: Bool
    public var arguments: AMQPTable

    public init(durable: Bool = true, exclusive: Bool = false, autoDelete: Bool = false, arguments: AMQPTable = [:]) {
        self.durable = durable
        self.exclusive = exclusive
        self.autoDelete = autoDelete
        self.arguments = arguments
    }
}

/// Counts the broker reports for a queue.
public struct AMQPQueueStatus: Sendable, Hashable {
    public var name: String
    public var messageCount: UInt32
    public var consumerCount: UInt32
}
