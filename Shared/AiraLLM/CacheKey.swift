import AiraCore
import Crypto
import Foundation

/// How questions are normalised before they are hashed into a cache key, so that trivially
/// different spellings of one question share an answer while different questions never do.
public enum PromptNormalizer {
    /// Unicode NFKC (full-width letters, ligatures, compatibility forms fold to their plain
    /// form), case folded, every run of whitespace one space, trimmed, and trailing
    /// punctuation (`. , ! ? ; : …` and their full-width forms) removed. Punctuation inside the
    /// text, digits, and words are kept: "turn on" and "turn off" stay different.
    public static func normalize(_ text: String) -> String {
        let folded = Self.fold(text)
        var out = ""
        out.reserveCapacity(folded.utf8.count)
        var pendingSpace = false
        for scalar in folded.unicodeScalars {
            if scalar.properties.isWhitespace || scalar == "\u{200B}" {
                pendingSpace = !out.isEmpty
                continue
            }
            if pendingSpace { out.unicodeScalars.append(" "); pendingSpace = false }
            out.unicodeScalars.append(scalar)
        }
        while let last = out.unicodeScalars.last, trailing.contains(last) || last == " " {
            out.unicodeScalars.removeLast()
        }
        return out
    }

    /// NFKC, then case folding. ASCII is already NFKC, and its case folding is lower-casing: no
    /// Foundation (NSString on Linux) for the common case, which was a tenth of the proxy's CPU
    /// on cache hits.
    public static func fold(_ text: String) -> String {
        guard text.utf8.allSatisfy({ $0 < 0x80 }) else {
            return text.precomposedStringWithCompatibilityMapping.folding(options: [.caseInsensitive], locale: nil)
        }
        return String(decoding: text.utf8.map { $0 >= 65 && $0 <= 90 ? $0 + 32 : $0 }, as: UTF8.self)
    }

    static let trailing: Set<Unicode.Scalar> = [".", ",", "!", "?", ";", ":", "…", "。", "！", "？", "、", "¿", "¡"]
}

/// The Redis key of a cached answer: `gpt:cache:{model}:{version}:{sha256}`, where the hash
/// covers the whole conversation (every message's role and normalised content, in order) and
/// every parameter that changes the answer. `version` is bumped to drop every cached answer
/// at once (prompt template change, bad answers cached).
public struct CacheKey: Sendable, Hashable, CustomStringConvertible {
    public let model: String
    public let version: String
    public let digest: String

    public init(model: String, version: String, messages: [ChatMessage], parameters: SamplingParameters) {
        self.model = model
        self.version = version
        var canonical = "v1\u{1F}"
        func field(_ name: String, _ value: String?) {
            canonical += name + "=" + (value ?? "-") + "\u{1F}"
        }
        field("temperature", parameters.temperature.map { Self.number($0) })
        field("top_p", parameters.topP.map { Self.number($0) })
        field("max_tokens", parameters.maxTokens.map(String.init))
        field("stop", parameters.stop.map { $0.joined(separator: "\u{1E}") })
        field("seed", parameters.seed.map(String.init))
        field("presence_penalty", parameters.presencePenalty.map { Self.number($0) })
        field("frequency_penalty", parameters.frequencyPenalty.map { Self.number($0) })
        for message in messages {
            // The system prompt is instructions, not a question: only its whitespace is normalised.
            let content = message.role == "system"
                ? message.content.split(whereSeparator: \.isWhitespace).joined(separator: " ")
                : PromptNormalizer.normalize(message.content)
            canonical += message.role.lowercased() + "\u{1D}" + content + "\u{1E}"
        }
        self.digest = SHA256.hash(data: Data(canonical.utf8)).hexString
    }

    public var description: String { "gpt:cache:\(self.model):\(self.version):\(self.digest)" }

    /// 0.70 and 0.7 are one temperature.
    static func number(_ value: Double) -> String {
        var text = String(format: "%.4f", value)
        while text.hasSuffix("0") { text.removeLast() }
        if text.hasSuffix(".") { text.removeLast() }
        return text
    }
}
