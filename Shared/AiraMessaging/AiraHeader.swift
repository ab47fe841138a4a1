import AiraCore

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
    /// The id of the HTTP request that caused an RPC (the gateway's `X-Request-Id`); servers
    /// put it on their log lines about the call.
    public static let requestID = "x-aira-request-id"
    /// Batched RPC: what each call of the batch carries, in request order — an array of tables,
    /// each with the call's own `x-aira-request-id` and `traceparent` when it has them.
    public static let batchCalls = "x-aira-batch-calls"
    /// W3C trace context.
    public static let traceparent = "traceparent"
    /// Set by quorum queues: how often the message was returned to the queue unacknowledged.
    public static let deliveryCount = "x-delivery-count"
    /// Set by the broker when it dead-letters a message: where and why, newest first.
    public static let death = "x-death"

    /// Headers the broker adds when dead-lettering; dropped when Aira republishes a message.
    static let brokerDeathHeaders: Set<String> = ["x-death", "x-first-death-exchange", "x-first-death-queue",
                                                   "x-first-death-reason", "x-delivery-count",
                                                   "x-last-death-exchange", "x-last-death-queue", "x-last-death-reason"]
}

/// W3C trace context (`00-<trace id>-<parent id>-<flags>`).
public enum TraceParent {
    public static func random() -> String {
        var out: [UInt8] = Array("00-".utf8)
        out.reserveCapacity(55)
        Hex.append(FastRandom.next() | 1, to: &out) // never the all-zero trace id
        Hex.append(FastRandom.next(), to: &out)
        out.append(45)
        Hex.append(FastRandom.next(), to: &out)
        out += Array("-01".utf8)
        return String(decoding: out, as: UTF8.self)
    }

    /// A child of `parent` (same trace, new span id), or a new trace if `parent` is not valid.
    public static func child(of parent: String?) -> String {
        guard let parent, isValid(parent) else { return random() }
        var out = Array(parent.utf8.prefix(36)) // "00-" + 32 hex + "-"
        Hex.append(FastRandom.next(), to: &out)
        out += parent.utf8.suffix(3) // "-" + flags
        return String(decoding: out, as: UTF8.self)
    }

    public static func isValid(_ value: String) -> Bool {
        let u = Array(value.utf8)
        guard u.count == 55, u[2] == 45, u[35] == 45, u[52] == 45 else { return false }
        func isHex(_ c: UInt8) -> Bool { (c >= 48 && c <= 57) || (c >= 97 && c <= 102) || (c >= 65 && c <= 70) }
        for (i, c) in u.enumerated() where i != 2 && i != 35 && i != 52 {
            guard isHex(c) else { return false }
        }
        return u[3..<35].contains { $0 != 48 }
    }
}
