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
        var out: [UInt8] = []
        Self.append(text, to: &out)
        return String(decoding: out, as: UTF8.self)
    }

    /// Appends the normalised form of `text` to `out` (UTF-8): the cache key builds its hashed
    /// text this way without a String per message.
    static func append(_ text: String, to out: inout [UInt8]) {
        guard text.utf8.allSatisfy({ $0 < 0x80 }) else {
            return out.append(contentsOf: Self.normalizeScalars(text).utf8)
        }
        // ASCII: NFKC is the identity, case folding is lower-casing, and White_Space is TAB...CR
        // and the space (a test compares this with the general path on every ASCII character).
        let start = out.count
        out.reserveCapacity(start + text.utf8.count)
        var pendingSpace = false
        for var byte in text.utf8 {
            if byte == 0x20 || (byte >= 0x09 && byte <= 0x0D) {
                pendingSpace = out.count > start
                continue
            }
            if pendingSpace { out.append(0x20); pendingSpace = false }
            if byte >= 0x41 && byte <= 0x5A { byte += 0x20 }
            out.append(byte)
        }
        while out.count > start, let last = out.last, last == 0x20 || Self.trailingASCII.contains(last) {
            out.removeLast()
        }
    }

    /// The general path, scalar by scalar (any text; `normalize` uses it for non-ASCII).
    package static func normalizeScalars(_ text: String) -> String {
        var scalars = String.UnicodeScalarView()
        var pendingSpace = false
        for scalar in Self.fold(text).unicodeScalars {
            if scalar.properties.isWhitespace || scalar == "\u{200B}" {
                pendingSpace = !scalars.isEmpty
                continue
            }
            if pendingSpace { scalars.append(" "); pendingSpace = false }
            scalars.append(scalar)
        }
        while let last = scalars.last, trailing.contains(last) || last == " " {
            scalars.removeLast()
        }
        return String(scalars)
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
    static let trailingASCII: [UInt8] = Array(".,!?;:".utf8)
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
        var canonical: [UInt8] = []
        canonical.reserveCapacity(128 + messages.reduce(0) { $0 + $1.content.utf8.count + 16 })
        canonical.append(contentsOf: "v1\u{1F}".utf8)
        func field(_ name: String, _ value: String?) {
            canonical.append(contentsOf: name.utf8)
            canonical.append(UInt8(ascii: "="))
            canonical.append(contentsOf: (value ?? "-").utf8)
            canonical.append(0x1F)
        }
        field("temperature", parameters.temperature.map { Self.number($0) })
        field("top_p", parameters.topP.map { Self.number($0) })
        field("max_tokens", parameters.maxTokens.map(String.init))
        field("stop", parameters.stop.map { $0.joined(separator: "\u{1E}") })
        field("seed", parameters.seed.map(String.init))
        field("presence_penalty", parameters.presencePenalty.map { Self.number($0) })
        field("frequency_penalty", parameters.frequencyPenalty.map { Self.number($0) })
        for message in messages {
            canonical.append(contentsOf: message.role.lowercased().utf8)
            canonical.append(0x1D)
            if message.role == "system" {
                // The system prompt is instructions, not a question: only its whitespace is normalised.
                canonical.append(contentsOf: message.content.split(whereSeparator: \.isWhitespace).joined(separator: " ").utf8)
            } else {
                PromptNormalizer.append(message.content, to: &canonical)
            }
            canonical.append(0x1E)
        }
        self.digest = SHA256.hash(data: canonical).hexString
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
