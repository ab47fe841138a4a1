import AiraCore
import AiraLLM
import AiraMessaging
import Foundation

/// The GPT RPC (aira-gateway → aira-gpt-proxy).
public enum GPTRPC {
    public static let queue = QueueSpec(name: "gpt.ask", bindings: ["gpt.ask", "gpt.quota", "gpt.usage", "gpt.usage.list"], kind: .rpc,
                                        maxLength: 10_000)
}

/// Today's question quota of a user, without asking anything (the web app's quota meter).
public struct QuotaRequest: MessageContract {
    public static let messageType = "gpt.quota.v1"
    public static let routingKey = "gpt.quota"
    public var userId: UUID
    /// The user's role (the limit is per role).
    public var role: String
    public init(userId: UUID, role: String) {
        self.userId = userId
        self.role = role
    }
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

public struct AskResponse: Codable, Sendable {
    public var id: String
    public var answer: String
    public var model: String
    public var finishReason: String
    public var cached: Bool
    public var usage: Usage?
    public var quota: QuotaStatus
    public var conversationId: String?
    /// How long the proxy waited for the model, in milliseconds (its own call, or another
    /// caller's in single flight); nil for a cached answer. The gateway reports the rest of the
    /// request's time as Aira's overhead (`X-Aira-Overhead-Ms`).
    public var upstreamMs: Double?

    public init(id: String, answer: String, model: String, finishReason: String, cached: Bool, usage: Usage?, quota: QuotaStatus,
                conversationId: String?, upstreamMs: Double? = nil) {
        self.id = id
        self.answer = answer
        self.model = model
        self.finishReason = finishReason
        self.cached = cached
        self.usage = usage
        self.quota = quota
        self.conversationId = conversationId
        self.upstreamMs = upstreamMs
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
    /// A streamed answer broke off after part of it was sent (the client's stream ends with an
    /// error event; as a status, 502). Never cached.
    public static let upstreamStreamCut = "upstream_stream_cut"
    /// 400.
    public static let invalidInput = "invalid_input"
    /// A token or money budget would be exceeded: 429, `Retry-After` = seconds to its reset;
    /// `details`: `scope`, `period`, `unit`, `limit`, `used`, `requested`, `resetAt`.
    public static let budgetExceeded = "budget_exceeded"
    /// Budgets are configured but their counters (Redis) cannot be reached: 503. Questions the
    /// cache answers are not affected.
    public static let budgetUnavailable = "budget_unavailable"
}

// MARK: - Usage and budgets

/// A user's spending and budgets (`GET /api/users/me/usage`).
public struct UsageRequest: MessageContract {
    public static let messageType = "gpt.usage.v1"
    public static let routingKey = "gpt.usage"
    public var userId: UUID
    /// The user's role (which budgets apply).
    public var role: String
    public init(userId: UUID, role: String) {
        self.userId = userId
        self.role = role
    }
}

/// One budget as it stands: `limit`, `used` and `remaining` in tokens, or in dollars when
/// `unit` is `usd`. `used` includes what questions in flight have reserved.
public struct BudgetStatus: Codable, Sendable, Hashable {
    /// `user`, `user:ROLE`, `role:ROLE` or `global`.
    public var scope: String
    /// `day` or `month` (UTC).
    public var period: String
    /// `tokens` or `usd`.
    public var unit: String
    public var limit: Double
    public var used: Double
    public var remaining: Double
    public var resetAt: Date
    public init(scope: String, period: String, unit: String, limit: Double, used: Double, remaining: Double, resetAt: Date) {
        self.scope = scope
        self.period = period
        self.unit = unit
        self.limit = limit
        self.used = used
        self.remaining = remaining
        self.resetAt = resetAt
    }
}

/// What upstream calls for one model cost (answers from the cache cost nothing and are not in it).
public struct ModelUsage: Codable, Sendable, Hashable {
    public var model: String
    public var requests: Int
    public var promptTokens: Int
    public var completionTokens: Int
    /// Dollars, from the price table when the call was made.
    public var cost: Double
    public init(model: String, requests: Int, promptTokens: Int, completionTokens: Int, cost: Double) {
        self.model = model
        self.requests = requests
        self.promptTokens = promptTokens
        self.completionTokens = completionTokens
        self.cost = cost
    }
}

public struct UsageReport: Codable, Sendable, Hashable {
    /// Every budget that applies to the user (none configured: empty).
    public var budgets: [BudgetStatus]
    /// Today (UTC), per model.
    public var today: [ModelUsage]
    /// This calendar month so far (UTC), per model.
    public var month: [ModelUsage]
    public init(budgets: [BudgetStatus], today: [ModelUsage], month: [ModelUsage]) {
        self.budgets = budgets
        self.today = today
        self.month = month
    }
}

/// Usage per user, model and day, for administrators (`GET /api/admin/usage`).
public struct UsageListRequest: MessageContract {
    public static let messageType = "gpt.usage.list.v1"
    public static let routingKey = "gpt.usage.list"
    /// `yyyy-mm-dd`, UTC, both included; at most 92 days.
    public var from: String
    public var to: String
    /// One user, or everyone who made an upstream call in those days.
    public var userId: UUID?
    /// At most this many rows (1–10,000), the most expensive first within a day.
    public var limit: Int
    public init(from: String, to: String, userId: UUID?, limit: Int) {
        self.from = from
        self.to = to
        self.userId = userId
        self.limit = limit
    }
}

public struct UsageRow: Codable, Sendable, Hashable {
    public var day: String
    /// The user's id, lowercase.
    public var userId: String
    public var model: String
    public var requests: Int
    public var promptTokens: Int
    public var completionTokens: Int
    public var cost: Double
    public init(day: String, userId: String, model: String, requests: Int, promptTokens: Int, completionTokens: Int, cost: Double) {
        self.day = day
        self.userId = userId
        self.model = model
        self.requests = requests
        self.promptTokens = promptTokens
        self.completionTokens = completionTokens
        self.cost = cost
    }
}

public struct UsageList: Codable, Sendable, Hashable {
    /// By day, then by cost (highest first).
    public var rows: [UsageRow]
    /// More rows matched than `limit`.
    public var truncated: Bool
    public init(rows: [UsageRow], truncated: Bool) {
        self.rows = rows
        self.truncated = truncated
    }
}

// MARK: - Fast JSON: every cached question crosses the broker as an AskRequest and comes back
// as an AskResponse (see JSONTree; tests compare both ways with JSONEncoder/JSONDecoder).

extension ClientInfo: FastJSONEncodable, FastJSONDecodable {
    public func appendJSON(to out: inout [UInt8]) throws {
        out.append(UInt8(ascii: "{"))
        JSONText.appendKey("ip", first: true, to: &out)
        JSONText.appendQuoted(self.ip, to: &out)
        if let agent = self.userAgent {
            JSONText.appendKey("userAgent", to: &out)
            JSONText.appendQuoted(agent, to: &out)
        }
        out.append(UInt8(ascii: "}"))
    }

    public init(json: JSONTree) throws {
        let m = try json.members()
        self.init(ip: try m.string("ip"), userAgent: try m.optionalString("userAgent"))
    }
}

extension AskRequest: FastJSONEncodable, FastJSONDecodable {
    public func appendJSON(to out: inout [UInt8]) throws {
        out.append(UInt8(ascii: "{"))
        JSONText.appendKey("userId", first: true, to: &out)
        JSONText.appendQuoted(self.userId.lowercasedString, to: &out)
        JSONText.appendKey("role", to: &out)
        JSONText.appendQuoted(self.role, to: &out)
        if let model = self.model {
            JSONText.appendKey("model", to: &out)
            JSONText.appendQuoted(model, to: &out)
        }
        JSONText.appendKey("messages", to: &out)
        out.append(UInt8(ascii: "["))
        for (i, message) in self.messages.enumerated() {
            if i > 0 { out.append(UInt8(ascii: ",")) }
            try message.appendJSON(to: &out)
        }
        out.append(UInt8(ascii: "]"))
        JSONText.appendKey("parameters", to: &out)
        try self.parameters.appendJSON(to: &out)
        JSONText.appendKey("cache", to: &out)
        JSONText.appendQuoted(self.cache.rawValue, to: &out)
        JSONText.appendKey("stream", to: &out)
        JSONText.append(self.stream, to: &out)
        if let c = self.conversationId {
            JSONText.appendKey("conversationId", to: &out)
            JSONText.appendQuoted(c, to: &out)
        }
        JSONText.appendKey("client", to: &out)
        try self.client.appendJSON(to: &out)
        out.append(UInt8(ascii: "}"))
    }

    public init(json: JSONTree) throws {
        let m = try json.members()
        guard let userId = UUID(text: try m.string("userId")) else { throw JSONTree.Unsupported("userId") }
        guard case .array(let items)? = m["messages"] else { throw JSONTree.Unsupported("messages") }
        guard let cache = CacheMode(rawValue: try m.string("cache")) else { throw JSONTree.Unsupported("cache") }
        self.init(userId: userId, role: try m.string("role"), model: try m.optionalString("model"),
                  messages: try items.map(ChatMessage.init(json:)),
                  parameters: try SamplingParameters(json: .object(try m.object("parameters"))), cache: cache,
                  stream: try m.bool("stream"), conversationId: try m.optionalString("conversationId"),
                  client: try ClientInfo(json: .object(try m.object("client"))))
    }
}

extension AskResponse: FastJSONEncodable, FastJSONDecodable {
    public func appendJSON(to out: inout [UInt8]) throws {
        out.append(UInt8(ascii: "{"))
        JSONText.appendKey("id", first: true, to: &out)
        JSONText.appendQuoted(self.id, to: &out)
        JSONText.appendKey("answer", to: &out)
        JSONText.appendQuoted(self.answer, to: &out)
        JSONText.appendKey("model", to: &out)
        JSONText.appendQuoted(self.model, to: &out)
        JSONText.appendKey("finishReason", to: &out)
        JSONText.appendQuoted(self.finishReason, to: &out)
        JSONText.appendKey("cached", to: &out)
        JSONText.append(self.cached, to: &out)
        if let usage = self.usage {
            JSONText.appendKey("usage", to: &out)
            try usage.appendJSON(to: &out)
        }
        JSONText.appendKey("quota", to: &out)
        try self.quota.appendJSON(to: &out)
        if let c = self.conversationId {
            JSONText.appendKey("conversationId", to: &out)
            JSONText.appendQuoted(c, to: &out)
        }
        if let ms = self.upstreamMs {
            JSONText.appendKey("upstreamMs", to: &out)
            try JSONText.append(ms, to: &out)
        }
        out.append(UInt8(ascii: "}"))
    }

    public init(json: JSONTree) throws {
        let m = try json.members()
        self.init(id: try m.string("id"), answer: try m.string("answer"), model: try m.string("model"),
                  finishReason: try m.string("finishReason"), cached: try m.bool("cached"),
                  usage: try m.optionalObject("usage").map { try Usage(json: .object($0)) },
                  quota: try QuotaStatus(json: .object(try m.object("quota"))), conversationId: try m.optionalString("conversationId"),
                  upstreamMs: try m.optionalDouble("upstreamMs"))
    }
}
