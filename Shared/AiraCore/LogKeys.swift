/// Log metadata keys used across Aira, in one place so logs are searchable by one name.
public enum LogKey {
    public static let messageID = "message_id"
    public static let correlationID = "correlation_id"
    public static let queue = "queue"
    public static let routingKey = "routing_key"
    public static let attempts = "attempts"
    public static let error = "error"
    public static let errorType = "error_type"
    public static let requestID = "request_id"
}
