/// The headers Aira puts on messages. docs/messaging.md explains each for operators.
public enum AiraHeader {
    /// Failed handling attempts so far (0 on a fresh message).
    public static let attempts = "x-aira-attempts"
    /// Why the last attempt failed (the error's text, at most 1,000 characters).
    public static let error = "x-aira-error"
    /// A stable code for the kind of error (e.g. `decoding_failed`, or the handler's code).
    public static let errorType = "x-aira-error-type"
    /// Why the message is in the DLQ: `permanent`, `retries_exhausted`, `delivery_limit`.
    public static let disposition = "x-aira-disposition"
    public static let firstFailedAt = "x-aira-first-failed-at"
    public static let lastFailedAt = "x-aira-last-failed-at"
    /// The routing key the message was first published with.
    public static let originalRoutingKey = "x-aira-original-routing-key"
    /// The consumer queue whose handler failed.
    public static let queue = "x-aira-queue"
    /// RPC: the caller's deadline, milliseconds since 1970.
    public static let deadline = "x-aira-deadline"
    /// RPC replies: `ok` or `error`.
    public static let rpcStatus = "x-aira-rpc-status"
    /// Set by `aira-admin dlq replay`.
    public static let replayedAt = "x-aira-replayed-at"
    /// W3C trace context.
    public static let traceparent = "traceparent"
    /// Set by quorum queues: how often the message was returned to the queue unacknowledged.
    public static let deliveryCount = "x-delivery-count"

    /// Headers the broker adds when dead-lettering; dropped when Aira republishes a message.
    static let brokerDeathHeaders: Set<String> = ["x-death", "x-first-death-exchange", "x-first-death-queue",
                                                   "x-first-death-reason", "x-delivery-count",
                                                   "x-last-death-exchange", "x-last-death-queue", "x-last-death-reason"]
}

/// W3C trace context (`00-<trace id>-<parent id>-<flags>`).
public enum TraceParent {
    public static func random() -> String {
        "00-\(hex(16))-\(hex(8))-01"
    }

    /// A child of `parent` (same trace, new span id), or a new trace if `parent` is not valid.
    public static func child(of parent: String?) -> String {
        guard let parent, isValid(parent) else { return random() }
        let parts = parent.split(separator: "-")
        return "00-\(parts[1])-\(hex(8))-\(parts[3])"
    }

    public static func isValid(_ value: String) -> Bool {
        let parts = value.split(separator: "-", omittingEmptySubsequences: false)
        guard parts.count == 4, parts[0].count == 2, parts[1].count == 32, parts[2].count == 16, parts[3].count == 2 else { return false }
        return parts.allSatisfy { $0.allSatisfy(\.isHexDigit) } && parts[1] != String(repeating: "0", count: 32)
    }

    private static func hex(_ bytes: Int) -> String {
        var g = SystemRandomNumberGenerator()
        return (0..<bytes).map { _ in
            let b = UInt8.random(in: 0...255, using: &g)
            return String(b, radix: 16).leftPad(2)
        }.joined()
    }
}

extension String {
    fileprivate func leftPad(_ n: Int) -> String { count >= n ? self : String(repeating: "0", count: n - count) + self }
}
