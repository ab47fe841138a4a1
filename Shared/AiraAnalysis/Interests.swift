import Foundation

/// Splits free text (questions, video titles) into interest terms: lower-cased words of at
/// least three letters, digits-only words and common English stop words left out. Works on
/// UTF-8 bytes: ASCII is folded to lower case, any non-ASCII letter is kept as part of a word.
public enum Tokenizer {
    public static let minimumLength = 3
    public static let maximumLength = 40

    public static func terms(_ text: String, _ visit: (String) -> Void) {
        var word: [UInt8] = []
        word.reserveCapacity(32)
        func flush() {
            defer { word.removeAll(keepingCapacity: true) }
            guard word.count >= Self.minimumLength, word.count <= Self.maximumLength else { return }
            guard word.contains(where: { !($0 >= 0x30 && $0 <= 0x39) }) else { return }
            let term = String(decoding: word, as: UTF8.self)
            guard !Self.stopWords.contains(term) else { return }
            visit(term)
        }
        for byte in text.utf8 {
            switch byte {
            case 0x41...0x5A: word.append(byte + 32)
            case 0x61...0x7A, 0x30...0x39: word.append(byte)
            case 0x80...: word.append(byte)
            case 0x27 where !word.isEmpty: continue // "don't" → "dont"
            default: flush()
            }
        }
        flush()
    }

    /// Term counts of `texts`.
    public static func counts<S: Sequence>(_ texts: S) -> [String: Int] where S.Element == String {
        var counts: [String: Int] = [:]
        for text in texts { Self.terms(text) { counts[$0, default: 0] += 1 } }
        return counts
    }

    public static let stopWords: Set<String> = [
        "the", "and", "for", "are", "but", "not", "you", "all", "any", "can", "had", "her", "was", "one", "our", "out",
        "has", "him", "his", "how", "its", "may", "new", "now", "old", "see", "two", "way", "who", "did", "get", "got",
        "let", "say", "she", "too", "use", "with", "that", "this", "from", "they", "what", "when", "where", "which",
        "will", "would", "there", "their", "about", "could", "should", "into", "than", "then", "them", "these", "those",
        "your", "yours", "have", "were", "been", "being", "does", "doing", "done", "some", "such", "only", "very", "just",
        "also", "more", "most", "much", "many", "over", "under", "again", "here", "why", "whom", "whose", "each", "both",
        "few", "other", "same", "own", "off", "once", "because", "while", "until", "between", "through", "during",
        "before", "after", "above", "below", "upon", "within", "without", "can't", "cant", "dont", "don't", "isnt", "im",
        "ive", "please", "thanks", "thank", "tell", "explain", "make", "give", "need", "want", "like", "know",
    ]
}

/// How many users' texts contain each term, over the population of a run: the "document
/// frequency" that turns a user's term counts into TF-IDF weights.
public struct Vocabulary: Sendable, Equatable {
    /// Users with at least one text.
    public var population: Int
    public var documentFrequency: [String: Int]

    public init(population: Int, documentFrequency: [String: Int]) {
        self.population = population
        self.documentFrequency = documentFrequency
    }

    /// Smoothed inverse document frequency; a term the vocabulary does not hold is one user's
    /// own (frequency 1).
    public func idf(_ term: String) -> Double {
        let df = Double(max(self.documentFrequency[term] ?? 1, 1))
        return log((1 + Double(self.population)) / (1 + df)) + 1
    }

    /// Builds the vocabulary from each user's texts, keeping terms used by at least
    /// `minimumUsers` users (rarer ones count as frequency 1), at most `limit` terms.
    public static func build<S: Sequence>(_ usersTexts: S, minimumUsers: Int = 2, limit: Int = 200_000) -> Vocabulary
    where S.Element == [String] {
        var df: [String: Int] = [:]
        var population = 0
        var seen = Set<String>()
        for texts in usersTexts {
            seen.removeAll(keepingCapacity: true)
            for text in texts { Tokenizer.terms(text) { seen.insert($0) } }
            guard !seen.isEmpty else { continue }
            population += 1
            for term in seen { df[term, default: 0] += 1 }
        }
        var kept = df.filter { $0.value >= minimumUsers }
        if kept.count > limit {
            kept = Dictionary(uniqueKeysWithValues: kept.sorted { $0.value > $1.value || ($0.value == $1.value && $0.key < $1.key) }
                .prefix(limit).map { ($0.key, $0.value) })
        }
        return Vocabulary(population: population, documentFrequency: kept)
    }
}

/// A term a user is interested in, with its TF-IDF weight.
public struct Interest: Sendable, Equatable, Codable {
    public var term: String
    public var weight: Double

    /// The `limit` heaviest terms: sublinear term frequency (1 + ln tf) × idf; ties by term.
    public static func top(_ counts: [String: Int], vocabulary: Vocabulary, limit: Int = 10) -> [Interest] {
        let weighted = counts.map { Interest(term: $0.key, weight: (1 + log(Double($0.value))) * vocabulary.idf($0.key)) }
        return Array(weighted.sorted { $0.weight > $1.weight || ($0.weight == $1.weight && $0.term < $1.term) }.prefix(limit))
    }
}
