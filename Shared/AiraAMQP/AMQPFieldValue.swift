import Foundation

/// A value in an AMQP field table (headers, queue arguments).
public enum AMQPFieldValue: Sendable, Hashable, CustomStringConvertible {
    case string(String)
    case int(Int64)
    case bool(Bool)
    case double(Double)
    case timestamp(UInt64)
    case bytes([UInt8])
    case table([String: AMQPFieldValue])
    case array([AMQPFieldValue])
    case void

    public var stringValue: String? {
        if case .string(let s) = self { return s }
        if case .bytes(let b) = self { return String(decoding: b, as: UTF8.self) }
        return nil
    }

    public var intValue: Int64? {
        switch self {
        case .int(let v): v
        case .timestamp(let v): Int64(clamping: v)
        case .double(let d): Int64(exactly: d.rounded(.towardZero))
        case .string(let s): Int64(s)
        default: nil
        }
    }

    public var description: String {
        switch self {
        case .string(let s): s
        case .int(let v): String(v)
        case .bool(let b): String(b)
        case .double(let d): String(d)
        case .timestamp(let t): "@\(t)"
        case .bytes(let b): "<\(b.count) bytes>"
        case .table(let t): "{" + t.sorted { $0.key < $1.key }.map { "\($0.key): \($0.value)" }.joined(separator: ", ") + "}"
        case .array(let a): "[" + a.map(\.description).joined(separator: ", ") + "]"
        case .void: "null"
        }
    }
}

/// A field table (headers, arguments).
public typealias AMQPTable = [String: AMQPFieldValue]

/// The AMQP basic properties Aira uses.
public struct AMQPProperties: Sendable, Hashable {
    public var contentType: String?
    public var contentEncoding: String?
    public var headers: AMQPTable
    /// 2 = persistent, 1 = transient.
    public var deliveryMode: UInt8?
    public var priority: UInt8?
    public var correlationID: String?
    public var replyTo: String?
    /// Per-message TTL in milliseconds, as AMQP carries it (a decimal string).
    public var expiration: String?
    public var messageID: String?
    /// Seconds since 1970.
    public var timestamp: UInt64?
    public var type: String?
    public var appID: String?

    public init(contentType: String? = nil, contentEncoding: String? = nil, headers: AMQPTable = [:],
                deliveryMode: UInt8? = nil, priority: UInt8? = nil, correlationID: String? = nil,
                replyTo: String? = nil, expiration: String? = nil, messageID: String? = nil,
                timestamp: UInt64? = nil, type: String? = nil, appID: String? = nil) {
        self.contentType = contentType
        self.contentEncoding = contentEncoding
        self.headers = headers
        self.deliveryMode = deliveryMode
        self.priority = priority
        self.correlationID = correlationID
        self.replyTo = replyTo
        self.expiration = expiration
        self.messageID = messageID
        self.timestamp = timestamp
        self.type = type
        self.appID = appID
    }

    public static let persistent: UInt8 = 2
    public static let transient: UInt8 = 1
}
