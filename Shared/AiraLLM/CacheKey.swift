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

extension PromptNormalizer {
    /// The canonical form of a user's question, which the cache key hashes: the normalised form
    /// (NFKC, case folded, one space per run, trimmed), then only changes that never change
    /// what is asked (docs/gpt.md, "Prompt normalisation"):
    ///
    /// - quotation marks, apostrophes and dashes of every kind become `"`, `'` and `-`; a pair of
    ///   quotes around the whole question goes;
    /// - a run of `?`/`!` becomes one mark (`?` if it has one), dots two or more become `...`,
    ///   tildes one — except right after a digit (`5!` is a number);
    /// - no space before `, ! ? ; :`, and none between Hangul and a Latin letter or digit
    ///   (`GPT 란` = `GPT란`, `3 일` = `3일`); spaces between Hangul words stay (`아버지가 방에` ≠
    ///   `아버지 가방에`), and so do spaces between digits (`1 2` ≠ `12`);
    /// - filler: a leading greeting followed by `,` or `!` (`hey,`, `hello!`, `안녕하세요,`), a leading
    ///   `um`, `please`, `can/could you (please) tell me`, `tell me`, `I wonder`, `혹시`, `저기요`,
    ///   `근데`…; a trailing `please`, `thanks`, `thank you`, `알려줘`, `알려주세요`, `궁금해요`…;
    ///   `좀` anywhere as a word of its own; `please` after `can/could/would you`;
    /// - trailing punctuation (`. , ! ? ; : ~`), unless it follows a digit.
    ///
    /// Negations (`not`, `n't`, `안`, `못`, `없`) and digits are never touched, so questions that
    /// differ in either never share an answer (PromptCanonicalTests). A question that is only
    /// filler keeps its normalised form.
    public static func canonical(_ text: String) -> String {
        var scalars: [Unicode.Scalar] = []
        scalars.reserveCapacity(text.utf8.count)
        var pendingSpace = false
        for scalar in Self.fold(text).unicodeScalars {
            if scalar.properties.isWhitespace || scalar == "\u{200B}" {
                pendingSpace = !scalars.isEmpty
                continue
            }
            if pendingSpace { scalars.append(" "); pendingSpace = false }
            scalars.append(Self.plainPunctuation[scalar] ?? scalar)
        }
        scalars = Self.respace(Self.collapseMarks(scalars), script: false)
        var words = scalars.split(separator: " ").map { String(String.UnicodeScalarView($0)) }
        Self.dropFiller(&words)
        // After the filler: `혹시 GPT란` must lose `혹시` before its space to `GPT` goes.
        var out = Self.respace(Array(words.joined(separator: " ").unicodeScalars), script: true)
        Self.trimEnds(&out)
        if out.count >= 2, let first = out.first, first == "\"" || first == "'", out.last == first,
           !out.dropFirst().dropLast().contains(first) {
            out.removeFirst()
            out.removeLast()
            Self.trimEnds(&out)
        }
        guard !out.isEmpty else { return Self.normalize(text) }
        return String(String.UnicodeScalarView(out))
    }

    /// Appends the canonical form of `text` (UTF-8) to `out`. ASCII that no rule can change —
    /// most questions — takes the byte path of ``append(_:to:)`` and nothing else: the full
    /// ``canonical(_:)`` was over a quarter of the proxy's CPU on cache hits.
    package static func appendCanonical(_ text: String, to out: inout [UInt8]) {
        let start = out.count
        if text.utf8.allSatisfy({ $0 < 0x80 }) {
            Self.append(text, to: &out)
            guard Self.mayChange(normalized: out[start...], original: text) else { return }
            out.removeSubrange(start...)
        }
        out.append(contentsOf: Self.canonical(text).utf8)
    }

    static let leadingFirstWords: Set<String> = ["hey", "hi", "hello", "um", "umm", "uh", "please", "can", "could", "i", "quick", "tell"]
    static let trailingLastWords: Set<String> = ["please", "thanks", "thx", "you"]

    /// Whether ``canonical(_:)`` could differ from the normalised form of ASCII `original`
    /// (`normalized`). Errs towards yes; a test compares both paths on random text.
    static func mayChange(normalized s: ArraySlice<UInt8>, original: String) -> Bool {
        guard let first = s.first, let last = s.last else { return false }
        if first == UInt8(ascii: "\"") || first == UInt8(ascii: "'") || first == UInt8(ascii: ",") || first == UInt8(ascii: ";")
            || first == UInt8(ascii: ":") { return true }
        var previous: UInt8 = 0
        for b in s {
            switch b {
            case UInt8(ascii: "~"): return true
            case UInt8(ascii: "?"), UInt8(ascii: "!"), UInt8(ascii: "."):
                if previous == b || previous == UInt8(ascii: " ") { return true }
                if b != UInt8(ascii: "."), previous == UInt8(ascii: "?") || previous == UInt8(ascii: "!") { return true }
            case UInt8(ascii: ","), UInt8(ascii: ";"), UInt8(ascii: ":"):
                if previous == UInt8(ascii: " ") { return true }
            default: break
            }
            previous = b
        }
        // `5!` loses its `!` in the normalised form, not in the canonical one.
        if last >= 0x30, last <= 0x39 {
            for b in original.utf8.reversed() {
                if b == UInt8(ascii: "!") { return true }
                guard b == 0x20 || (b >= 0x09 && b <= 0x0D) || Self.trailingASCII.contains(b) else { break }
            }
        }
        let bytes = Array(s)
        func word(_ range: ArraySlice<UInt8>) -> String {
            var w = range
            while let c = w.last, c == UInt8(ascii: ",") || c == UInt8(ascii: "!") || c == UInt8(ascii: "~") || c == UInt8(ascii: ":") { w.removeLast() }
            return String(decoding: w, as: UTF8.self)
        }
        let firstEnd = bytes.firstIndex(of: 0x20) ?? bytes.count
        if Self.leadingFirstWords.contains(word(bytes[..<firstEnd])) { return true }
        let lastStart = (bytes.lastIndex(of: 0x20).map { $0 + 1 }) ?? 0
        if Self.trailingLastWords.contains(word(bytes[lastStart...])) { return true }
        // `please` after `can/could/would you` (any `please` will do here).
        let please = Array("please".utf8)
        if bytes.count >= please.count {
            for i in 0...(bytes.count - please.count) where bytes[i] == please[0] && Array(bytes[i..<(i + please.count)]) == please { return true }
        }
        return false
    }

    static let plainPunctuation: [Unicode.Scalar: Unicode.Scalar] = {
        var map: [Unicode.Scalar: Unicode.Scalar] = [:]
        for s in ["\u{2018}", "\u{2019}", "\u{201A}", "\u{201B}", "\u{2032}"] { map[Unicode.Scalar(s)!] = "'" }
        for s in ["\u{201C}", "\u{201D}", "\u{201E}", "\u{201F}", "\u{2033}", "\u{300C}", "\u{300D}", "\u{300E}", "\u{300F}"] {
            map[Unicode.Scalar(s)!] = "\""
        }
        for s in ["\u{2010}", "\u{2011}", "\u{2012}", "\u{2013}", "\u{2014}", "\u{2015}", "\u{2212}"] { map[Unicode.Scalar(s)!] = "-" }
        map["\u{301C}"] = "~"
        return map
    }()

    /// `??!` → `?`, `!!` → `!`, `....` → `...`, `~~` → `~`; not right after a digit.
    static func collapseMarks(_ scalars: [Unicode.Scalar]) -> [Unicode.Scalar] {
        var out: [Unicode.Scalar] = []
        out.reserveCapacity(scalars.count)
        var i = 0
        while i < scalars.count {
            let s = scalars[i]
            let afterDigit = out.last.map { $0.properties.numericType != nil } ?? false
            guard !afterDigit, s == "?" || s == "!" || s == "." || s == "~" else {
                out.append(s)
                i += 1
                continue
            }
            var j = i
            let family: Set<Unicode.Scalar> = s == "." ? ["."] : (s == "~" ? ["~"] : ["?", "!"])
            while j < scalars.count, family.contains(scalars[j]) { j += 1 }
            let run = scalars[i..<j]
            if s == "." {
                out.append(contentsOf: run.count >= 2 ? ["." , ".", "."] : ["."])
            } else if s == "~" {
                out.append("~")
            } else {
                out.append(run.contains("?") ? "?" : "!")
            }
            i = j
        }
        return out
    }

    /// Drops a space before `, ! ? ; :`, or (`script`) a space between Hangul and a Latin
    /// letter or digit.
    static func respace(_ scalars: [Unicode.Scalar], script: Bool) -> [Unicode.Scalar] {
        var out: [Unicode.Scalar] = []
        out.reserveCapacity(scalars.count)
        for (i, s) in scalars.enumerated() {
            if s == " ", let before = out.last, i + 1 < scalars.count {
                let after = scalars[i + 1]
                if script {
                    if (Self.isHangul(before) && Self.isLatinOrDigit(after)) || (Self.isLatinOrDigit(before) && Self.isHangul(after)) { continue }
                } else if [",", "!", "?", ";", ":"].contains(after) {
                    continue
                }
            }
            out.append(s)
        }
        return out
    }

    static func isHangul(_ s: Unicode.Scalar) -> Bool { (0xAC00...0xD7A3).contains(s.value) || (0x3131...0x318E).contains(s.value) }
    static func isLatinOrDigit(_ s: Unicode.Scalar) -> Bool { s.isASCII && (s.properties.isAlphabetic || s.properties.numericType != nil) }

    static let greetings: Set<String> = ["hey", "hi", "hello", "안녕", "안녕하세요"]
    static let leadingFiller: [[String]] = [
        ["can", "you", "please", "tell", "me"], ["could", "you", "please", "tell", "me"], ["can", "you", "tell", "me"],
        ["could", "you", "tell", "me"], ["i", "was", "wondering"], ["i", "wonder"], ["quick", "question"], ["tell", "me"],
        ["um"], ["umm"], ["uh"], ["please"], ["혹시"], ["저기요"], ["저기"], ["음"], ["근데"], ["그런데"],
    ]
    static let trailingFiller: [[String]] = [
        ["thank", "you"], ["please"], ["thanks"], ["thx"], ["알려줘"], ["알려주세요"], ["알려줄래"], ["알려줄래요"], ["부탁해"],
        ["부탁해요"], ["부탁드려요"], ["궁금해"], ["궁금해요"], ["궁금합니다"],
    ]

    /// Removes the filler words (see ``canonical(_:)``); `words` are the question's, split at spaces.
    static func dropFiller(_ words: inout [String]) {
        // The word without the `, ! ~ :` it ends with (`hey,` → `hey`).
        func bare(_ word: String) -> Substring {
            var end = word.endIndex
            while end > word.startIndex, case let c = word[word.index(before: end)], c == "," || c == "!" || c == "~" || c == ":" {
                end = word.index(before: end)
            }
            return word[..<end]
        }
        words.removeAll { $0 == "좀" }
        var i = 0
        while i + 2 < words.count {
            if ["can", "could", "would"].contains(words[i]), words[i + 1] == "you", words[i + 2] == "please" {
                words.remove(at: i + 2)
            }
            i += 1
        }
        var changed = true
        while changed, !words.isEmpty {
            changed = false
            if let first = words.first, case let b = bare(first), b.endIndex != first.endIndex, Self.greetings.contains(String(b)) {
                words.removeFirst()
                changed = true
                continue
            }
            for phrase in Self.leadingFiller where words.count > phrase.count {
                let head = words.prefix(phrase.count)
                if zip(head.dropLast(), phrase.dropLast()).allSatisfy({ $0 == $1 }), bare(head.last!) == phrase.last! {
                    words.removeFirst(phrase.count)
                    changed = true
                    break
                }
            }
            if changed { continue }
            for phrase in Self.trailingFiller where words.count > phrase.count {
                let tail = words.suffix(phrase.count)
                if zip(tail, phrase).allSatisfy({ bare($0) == $1 }) {
                    words.removeLast(phrase.count)
                    if let last = words.last, last.hasSuffix(",") { words[words.count - 1] = String(last.dropLast()) }
                    changed = true
                    break
                }
            }
        }
    }

    /// Trailing `. , ! ? ; : ~ …` go, but not `!` or `~` right after a digit (`5!`, `5~`); so do
    /// leading `, ; :`.
    static func trimEnds(_ out: inout [Unicode.Scalar]) {
        while let last = out.last {
            if last != " " {
                guard Self.trailing.contains(last) || last == "~" else { break }
                let afterDigit = out.count >= 2 && out[out.count - 2].properties.numericType != nil
                if afterDigit, last == "!" || last == "~" { break }
            }
            out.removeLast()
        }
        while let first = out.first, first == " " || first == "," || first == ";" || first == ":" { out.removeFirst() }
    }
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
        // Still v1: a question whose canonical form is its normalised form (most) keeps its key.
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
            } else if message.role == "user" {
                PromptNormalizer.appendCanonical(message.content, to: &canonical)
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
