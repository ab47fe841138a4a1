/// A Redis reply.
public enum RedisValue: Sendable, Hashable {
    case bulk([UInt8])
    case simple(String)
    case integer(Int64)
    case array([RedisValue])
    case null
    case error(String)

    public var string: String? {
        switch self {
        case .bulk(let b): String(decoding: b, as: UTF8.self)
        case .simple(let s): s
        case .integer(let i): String(i)
        default: nil
        }
    }

    public var int: Int64? {
        switch self {
        case .integer(let i): i
        case .bulk, .simple: self.string.flatMap { Int64($0) }
        default: nil
        }
    }

    public var array: [RedisValue]? {
        if case .array(let a) = self { return a }
        return nil
    }

    public var isNull: Bool { self == .null }
}

/// What can go wrong with Redis. `isRetriable` is true where the server may answer later.
public enum RedisError: Error, Sendable, CustomStringConvertible {
    /// Could not connect (refused, unreachable, timed out, auth failed).
    case connectFailed(String)
    /// The connection broke or a command timed out; the connection is discarded.
    case connectionLost(String)
    /// The server answered with an error (`ERR`, `WRONGTYPE`, `NOSCRIPT`...).
    case server(String)
    /// The reply did not have the expected shape.
    case unexpectedReply(String)
    case invalidURL(String)

    public var isRetriable: Bool {
        switch self {
        case .connectFailed, .connectionLost: true
        // A failover under way: the server was demoted, is loading, or has no primary yet.
        case .server(let text): Self.failoverReplies.contains { text.hasPrefix($0) }
        case .unexpectedReply, .invalidURL: false
        }
    }

    static let failoverReplies = ["READONLY", "LOADING", "MASTERDOWN"]

    public var description: String {
        switch self {
        case .connectFailed(let s): "cannot connect to Redis: \(s)"
        case .connectionLost(let s): "Redis connection lost: \(s)"
        case .server(let s): "Redis error: \(s)"
        case .unexpectedReply(let s): "unexpected Redis reply: \(s)"
        case .invalidURL(let s): "invalid Redis URL '\(s)' (expected redis://[:password@]host:port[/db] or redis-sentinel://[:password@]sentinel:26379[,sentinel…][/db]#primary-name)"
        }
    }
}
