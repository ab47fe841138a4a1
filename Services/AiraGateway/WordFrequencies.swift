import AiraCore
import AiraPostgres
import Foundation
import Logging
import Synchronization

/// How common each word of the posts is: the most common elements of `posts.search` and their
/// frequencies, as ANALYZE sampled them (`pg_stats`, statistics target 1000: up to 10,000 words),
/// reloaded every 10 minutes. Search uses it to pick, per query, between reading matches newest
/// first from the RUM index (cost grows with the matches: right for rare words) and walking
/// `posts_newest` testing each post (cost grows with how rare the words are: right for common
/// ones). docs/search.md, "Newest matches".
final class WordFrequencies: Sendable {
    private struct State {
        /// Words, sorted, with their share of posts.
        var words: [(String, Double)] = []
        var loadedAt: ContinuousClock.Instant?
        var loading = false
    }

    private let state = Mutex(State())
    let maxAge: Duration

    init(maxAge: Duration = .seconds(600)) { self.maxAge = maxAge }

    /// The share of posts a query of these words matches at most: the rarest word's share (all
    /// must match); a prefix word counts every known word it starts. A word not among the
    /// common ones is rarer than all of them: 0.
    func share(of words: [(word: String, prefix: Bool)]) -> Double {
        self.state.withLock { state in
            words.map { word, prefix in
                var lo = 0, hi = state.words.count
                while lo < hi {
                    let mid = (lo + hi) / 2
                    if state.words[mid].0 < word { lo = mid + 1 } else { hi = mid }
                }
                var total = 0.0
                var i = lo
                while i < state.words.count, prefix ? state.words[i].0.hasPrefix(word) : state.words[i].0 == word {
                    total += state.words[i].1
                    i += 1
                }
                return min(total, 1)
            }.min() ?? 0
        }
    }

    /// Starts a reload in the background when the figures are missing or older than `maxAge`.
    func refreshIfStale(_ content: ContentContext, logger: Logger) {
        let start = self.state.withLock { state -> Bool in
            guard !state.loading, state.loadedAt.map({ ContinuousClock.now - $0 > self.maxAge }) ?? true else { return false }
            state.loading = true
            return true
        }
        guard start else { return }
        Task {
            var loaded: [(String, Double)]?
            do {
                let row = try await content.reads.read("""
                    SELECT most_common_elems::text AS elems, most_common_elem_freqs::text AS freqs FROM pg_stats
                    WHERE schemaname = current_schema() AND tablename = 'posts' AND attname = 'search'
                    """).result.first
                if let row, let elems = try row.decodeOptional("elems", as: String.self),
                   let freqs = try row.decodeOptional("freqs", as: String.self) {
                    let words = Self.parseArray(elems)
                    let shares = Self.parseArray(freqs).compactMap(Double.init)
                    loaded = zip(words, shares).sorted { $0.0 < $1.0 }
                } else {
                    loaded = [] // not analysed yet: every word counts as rare
                }
            } catch {
                logger.warning("word frequencies not loaded", metadata: [LogKey.error: "\(error)"])
            }
            self.state.withLock { state in
                state.loading = false
                if let loaded {
                    state.words = loaded
                    state.loadedAt = .now
                }
            }
        }
    }

    /// A PostgreSQL array literal's elements (`{a,"b c",d}`), quotes and backslashes undone.
    static func parseArray(_ text: String) -> [String] {
        var out: [String] = []
        var current = ""
        var quoted = false, escaped = false, wasQuoted = false
        for ch in text.dropFirst().dropLast() {
            if escaped { current.append(ch); escaped = false; continue }
            switch ch {
            case "\\" where quoted: escaped = true
            case "\"": quoted.toggle(); wasQuoted = true
            case "," where !quoted:
                out.append(current)
                current = ""
                wasQuoted = false
            default: current.append(ch)
            }
        }
        if !current.isEmpty || wasQuoted || !out.isEmpty { out.append(current) }
        return out
    }
}
