import AiraCore
import AiraLLM
import AiraMessaging
import Foundation

/// The GPT RPC (aira-gateway → aira-gpt-proxy).
public enum GPTRPC {
    public static let queue = QueueSpec(name: "gpt.ask", bindings: ["gpt.ask", "gpt.quota"], kind: .rpc, maxLength: 10_000)
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
        out.append(UInt8(ascii: "}"))
    }

    public init(json: JSONTree) throws {
        let m = try json.members()
        self.init(id: try m.string("id"), answer: try m.string("answer"), model: try m.string("model"),
                  finishReason: try m.string("finishReason"), cached: try m.bool("cached"),
                  usage: try m.optionalObject("usage").map { try Usage(json: .object($0)) },
                  quota: try QuotaStatus(json: .object(try m.object("quota"))), conversationId: try m.optionalString("conversationId"))
    }
}
