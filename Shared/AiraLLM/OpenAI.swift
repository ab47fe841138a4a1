import Foundation
import AiraCore

/// The OpenAI chat-completions wire format (`/v1/chat/completions`), as far as Aira speaks it:
/// the gateway accepts it from clients, aira-gpt-proxy sends it upstream, aira-mock-llm answers it.
/// Decoding is lenient (unknown fields are ignored; `content` may be a string or text parts).
public struct ChatMessage: Codable, Sendable, Hashable {
    public var role: String
    public var content: String

    public init(role: String, content: String) {
        self.role = role
        self.content = content
    }

    enum CodingKeys: String, CodingKey { case role, content }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        self.role = try c.decode(String.self, forKey: .role)
        if let text = try? c.decode(String.self, forKey: .content) {
            self.content = text
        } else if let parts = try? c.decode([ContentPart].self, forKey: .content) {
            self.content = parts.compactMap(\.text).joined(separator: "\n")
        } else if try c.decodeNil(forKey: .content) {
            self.content = ""
        } else {
            throw DecodingError.dataCorruptedError(forKey: .content, in: c, debugDescription: "content must be a string or text parts")
        }
    }

    struct ContentPart: Decodable {
        var type: String
        var text: String?
    }
}

/// What changes an answer besides the messages; part of the cache key.
public struct SamplingParameters: Codable, Sendable, Hashable {
    public var temperature: Double?
    public var topP: Double?
    public var maxTokens: Int?
    public var stop: [String]?
    public var seed: Int?
    public var presencePenalty: Double?
    public var frequencyPenalty: Double?

    public init(temperature: Double? = nil, topP: Double? = nil, maxTokens: Int? = nil, stop: [String]? = nil, seed: Int? = nil,
                presencePenalty: Double? = nil, frequencyPenalty: Double? = nil) {
        self.temperature = temperature
        self.topP = topP
        self.maxTokens = maxTokens
        self.stop = stop
        self.seed = seed
        self.presencePenalty = presencePenalty
        self.frequencyPenalty = frequencyPenalty
    }
}

public struct ChatCompletionRequest: Codable, Sendable {
    public var model: String?
    public var messages: [ChatMessage]
    public var stream: Bool?
    public var parameters: SamplingParameters

    public init(model: String?, messages: [ChatMessage], stream: Bool? = nil, parameters: SamplingParameters = .init()) {
        self.model = model
        self.messages = messages
        self.stream = stream
        self.parameters = parameters
    }

    enum CodingKeys: String, CodingKey {
        case model, messages, stream, temperature, stop, seed
        case topP = "top_p", maxTokens = "max_tokens", maxCompletionTokens = "max_completion_tokens"
        case presencePenalty = "presence_penalty", frequencyPenalty = "frequency_penalty"
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        self.model = try c.decodeIfPresent(String.self, forKey: .model)
        self.messages = try c.decode([ChatMessage].self, forKey: .messages)
        self.stream = try c.decodeIfPresent(Bool.self, forKey: .stream)
        let stop: [String]?
        if let one = try? c.decodeIfPresent(String.self, forKey: .stop) { stop = [one] } else {
            stop = try c.decodeIfPresent([String].self, forKey: .stop)
        }
        self.parameters = SamplingParameters(
            temperature: try c.decodeIfPresent(Double.self, forKey: .temperature),
            topP: try c.decodeIfPresent(Double.self, forKey: .topP),
            maxTokens: try c.decodeIfPresent(Int.self, forKey: .maxTokens) ?? c.decodeIfPresent(Int.self, forKey: .maxCompletionTokens),
            stop: stop, seed: try c.decodeIfPresent(Int.self, forKey: .seed),
            presencePenalty: try c.decodeIfPresent(Double.self, forKey: .presencePenalty),
            frequencyPenalty: try c.decodeIfPresent(Double.self, forKey: .frequencyPenalty))
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encodeIfPresent(self.model, forKey: .model)
        try c.encode(self.messages, forKey: .messages)
        try c.encodeIfPresent(self.stream, forKey: .stream)
        try c.encodeIfPresent(self.parameters.temperature, forKey: .temperature)
        try c.encodeIfPresent(self.parameters.topP, forKey: .topP)
        try c.encodeIfPresent(self.parameters.maxTokens, forKey: .maxTokens)
        try c.encodeIfPresent(self.parameters.stop, forKey: .stop)
        try c.encodeIfPresent(self.parameters.seed, forKey: .seed)
        try c.encodeIfPresent(self.parameters.presencePenalty, forKey: .presencePenalty)
        try c.encodeIfPresent(self.parameters.frequencyPenalty, forKey: .frequencyPenalty)
    }
}

public struct Usage: Codable, Sendable, Hashable {
    public var promptTokens: Int
    public var completionTokens: Int
    public var totalTokens: Int

    public init(promptTokens: Int, completionTokens: Int) {
        self.promptTokens = promptTokens
        self.completionTokens = completionTokens
        self.totalTokens = promptTokens + completionTokens
    }

    enum CodingKeys: String, CodingKey {
        case promptTokens = "prompt_tokens", completionTokens = "completion_tokens", totalTokens = "total_tokens"
    }
}

public struct ChatCompletion: Codable, Sendable {
    public struct Choice: Codable, Sendable {
        public struct Message: Codable, Sendable {
            public var role: String
            public var content: String?
            public var refusal: String?
            public init(role: String = "assistant", content: String?, refusal: String? = nil) {
                self.role = role
                self.content = content
                self.refusal = refusal
            }
        }
        public var index: Int
        public var message: Message
        public var finishReason: String?
        enum CodingKeys: String, CodingKey { case index, message, finishReason = "finish_reason" }
        public init(index: Int = 0, message: Message, finishReason: String?) {
            self.index = index
            self.message = message
            self.finishReason = finishReason
        }
    }

    public var id: String
    public var object: String
    public var created: Int
    public var model: String
    public var choices: [Choice]
    public var usage: Usage?

    public init(id: String, created: Int, model: String, choices: [Choice], usage: Usage?) {
        self.id = id
        self.object = "chat.completion"
        self.created = created
        self.model = model
        self.choices = choices
        self.usage = usage
    }
}

public struct ChatCompletionChunk: Codable, Sendable {
    public struct Choice: Codable, Sendable {
        public struct Delta: Codable, Sendable {
            public var role: String?
            public var content: String?
            public init(role: String? = nil, content: String? = nil) {
                self.role = role
                self.content = content
            }
        }
        public var index: Int
        public var delta: Delta
        public var finishReason: String?
        enum CodingKeys: String, CodingKey { case index, delta, finishReason = "finish_reason" }
        public init(index: Int = 0, delta: Delta, finishReason: String?) {
            self.index = index
            self.delta = delta
            self.finishReason = finishReason
        }
    }

    public var id: String
    public var object: String
    public var created: Int
    public var model: String
    public var choices: [Choice]
    public var usage: Usage?
    /// Aira's extension on the last chunk of an answer (clients that do not know it ignore it).
    public var aira: AnswerInfo?

    /// What the last chunk of a streamed answer tells beyond OpenAI's format: whether it came
    /// from the cache, the question quota after it, and the conversation it belongs to.
    public struct AnswerInfo: Codable, Sendable, Equatable {
        public var cached: Bool
        public var conversationId: String?
        public var quota: QuotaStatus
        /// Aira's own time on the request, the wait for the model left out (`X-Aira-Overhead-Ms`
        /// of a non-streamed answer; a stream's headers leave before it is known).
        public var overheadMs: Double?
        public init(cached: Bool, conversationId: String?, quota: QuotaStatus, overheadMs: Double? = nil) {
            self.cached = cached
            self.conversationId = conversationId
            self.quota = quota
            self.overheadMs = overheadMs
        }
    }

    public init(id: String, created: Int, model: String, choices: [Choice], usage: Usage? = nil, aira: AnswerInfo? = nil) {
        self.id = id
        self.object = "chat.completion.chunk"
        self.created = created
        self.model = model
        self.choices = choices
        self.usage = usage
        self.aira = aira
    }
}

// MARK: - Fast JSON (the cached-answer path: see JSONTree)

extension ChatMessage: FastJSONEncodable, FastJSONDecodable {
    public func appendJSON(to out: inout [UInt8]) throws {
        out.append(UInt8(ascii: "{"))
        JSONText.appendKey("role", first: true, to: &out)
        JSONText.appendQuoted(self.role, to: &out)
        JSONText.appendKey("content", to: &out)
        JSONText.appendQuoted(self.content, to: &out)
        out.append(UInt8(ascii: "}"))
    }

    /// Content as a string or null; text parts go through JSONDecoder.
    public init(json: JSONTree) throws {
        let m = try json.members()
        self.role = try m.string("role")
        guard let content = try m.optionalString("content") else {
            guard case .null? = m["content"] else { throw JSONTree.Unsupported("content") }
            self.content = ""
            return
        }
        self.content = content
    }
}

extension SamplingParameters: FastJSONEncodable, FastJSONDecodable {
    public func appendJSON(to out: inout [UInt8]) throws {
        out.append(UInt8(ascii: "{"))
        var first = true
        func key(_ k: StaticString) {
            JSONText.appendKey(k, first: first, to: &out)
            first = false
        }
        if let v = self.temperature { key("temperature"); try JSONText.append(v, to: &out) }
        if let v = self.topP { key("topP"); try JSONText.append(v, to: &out) }
        if let v = self.maxTokens { key("maxTokens"); JSONText.append(v, to: &out) }
        if let v = self.stop {
            key("stop")
            out.append(UInt8(ascii: "["))
            for (i, s) in v.enumerated() {
                if i > 0 { out.append(UInt8(ascii: ",")) }
                JSONText.appendQuoted(s, to: &out)
            }
            out.append(UInt8(ascii: "]"))
        }
        if let v = self.seed { key("seed"); JSONText.append(v, to: &out) }
        if let v = self.presencePenalty { key("presencePenalty"); try JSONText.append(v, to: &out) }
        if let v = self.frequencyPenalty { key("frequencyPenalty"); try JSONText.append(v, to: &out) }
        out.append(UInt8(ascii: "}"))
    }

    public init(json: JSONTree) throws {
        let m = try json.members()
        let stop = try m.optionalArray("stop")?.map { item -> String in
            guard case .string(let s) = item else { throw JSONTree.Unsupported("stop") }
            return s
        }
        self.init(temperature: try m.optionalDouble("temperature"), topP: try m.optionalDouble("topP"),
                  maxTokens: try m.optionalInt("maxTokens"), stop: stop, seed: try m.optionalInt("seed"),
                  presencePenalty: try m.optionalDouble("presencePenalty"), frequencyPenalty: try m.optionalDouble("frequencyPenalty"))
    }
}

extension Usage: FastJSONEncodable, FastJSONDecodable {
    public func appendJSON(to out: inout [UInt8]) throws {
        out.append(UInt8(ascii: "{"))
        JSONText.appendKey("prompt_tokens", first: true, to: &out)
        JSONText.append(self.promptTokens, to: &out)
        JSONText.appendKey("completion_tokens", to: &out)
        JSONText.append(self.completionTokens, to: &out)
        JSONText.appendKey("total_tokens", to: &out)
        JSONText.append(self.totalTokens, to: &out)
        out.append(UInt8(ascii: "}"))
    }

    public init(json: JSONTree) throws {
        let m = try json.members()
        self.promptTokens = try m.int("prompt_tokens")
        self.completionTokens = try m.int("completion_tokens")
        self.totalTokens = try m.int("total_tokens")
    }
}
