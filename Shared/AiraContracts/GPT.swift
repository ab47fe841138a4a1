import AiraLLM
import AiraMessaging
import Foundation

/// The GPT RPC (aira-gateway → aira-gpt-proxy).
public enum GPTRPC {
    public static let queue = QueueSpec(name: "gpt.ask", bindings: ["gpt.ask"], kind: .rpc, maxLength: 10_000)
}

/// What a caller wants from the answer cache.
public enum CacheMode: String, Codable, Sendable {
    /// Answer from the cache when it can; cache a fresh answer.
    case use
    /// Neither read nor write the cache: always a fresh, uncached answer.
    case bypass
    /// Do not read the cache; replace the cached answer with a fresh one.
    case refresh
}

public struct AskRequest: MessageContract {
    public static let messageType = "gpt.ask.v1"
    public static let routingKey = "gpt.ask"
    public var userId: UUID
    /// The user's role (quota per role).
    public var role: String
    /// nil: the proxy's configured model.
    public var model: String?
    /// The new messages (for `/api/gpt/qna`, the question); with `conversationId`, the proxy
    /// puts the conversation so far in front of them.
    public var messages: [ChatMessage]
    public var parameters: SamplingParameters
    public var cache: CacheMode
    /// Send the answer as partial replies (`AskChunk`) while the upstream produces it.
    public var stream: Bool
    public var conversationId: String?
    public var client: ClientInfo

    public init(userId: UUID, role: String, model: String?, messages: [ChatMessage], parameters: SamplingParameters = .init(),
                cache: CacheMode = .use, stream: Bool = false, conversationId: String? = nil, client: ClientInfo) {
        self.userId = userId
        self.role = role
        self.model = model
        self.messages = messages
        self.parameters = parameters
        self.cache = cache
        self.stream = stream
        self.conversationId = conversationId
        self.client = client
    }
}

/// A piece of a streamed answer.
public struct AskChunk: Codable, Sendable {
    public var delta: String
    public init(delta: String) { self.delta = delta }
}

public struct QuotaStatus: Codable, Sendable, Hashable {
    /// Questions counted today (cache hits are free).
    public var used: Int
    public var limit: Int
    /// When the count starts again (midnight UTC).
    public var resetAt: Date
    public init(used: Int, limit: Int, resetAt: Date) {
        self.used = used
        self.limit = limit
        self.resetAt = resetAt
    }
}

public struct AskResponse: Codable, Sendable {
    public var id: String
    public var answer: String
    public var model: String
    public var finishReason: String
    public var cached: Bool
    public var usage: Usage?
    public var quota: QuotaStatus
    public var conversationId: String?

    public init(id: String, answer: String, model: String, finishReason: String, cached: Bool, usage: Usage?, quota: QuotaStatus,
                conversationId: String?) {
        self.id = id
        self.answer = answer
        self.model = model
        self.finishReason = finishReason
        self.cached = cached
        self.usage = usage
        self.quota = quota
        self.conversationId = conversationId
    }
}

/// aira-gpt-proxy's typed errors; the gateway maps each to an HTTP status (docs/api.md).
public enum GPTError {
    /// Today's quota is used up: 429, `details.resetAt`, `details.limit`.
    public static let quotaExceeded = "quota_exceeded"
    /// The upstream could not be reached or kept failing: 503.
    public static let upstreamUnavailable = "upstream_unavailable"
    /// The upstream did not answer in time: 504.
    public static let upstreamTimeout = "upstream_timeout"
    /// The upstream refused the request as invalid (e.g. unknown model, too long): 400.
    public static let upstreamRejected = "upstream_rejected"
    /// The upstream answered something unreadable: 502.
    public static let upstreamBadResponse = "upstream_bad_response"
    /// 400.
    public static let invalidInput = "invalid_input"
}
