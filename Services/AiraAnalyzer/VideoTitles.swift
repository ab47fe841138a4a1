import AiraCore
import AiraPostgres
import Foundation
import Synchronization

/// Titles of watched videos, by id, read from `videos` once per process and kept (a run reads
/// the same few videos over and over). Ids arrive as text from the events' attributes: one
/// that is not a UUID, or names no video, has no title. Joining `videos` in the events query
/// instead cost PostgreSQL a third of that query (a guarded cast for every row).
final class VideoTitles: Sendable {
    private let database: PostgresClient
    /// By the id's text as events carry it (parsing UUIDs for every play would cost more than
    /// the lookup itself); nil: no such video.
    private let known = Mutex<[String: String?]>([:])
    private let limit: Int

    init(database: PostgresClient, limit: Int = 200_000) {
        self.database = database
        self.limit = limit
    }

    /// The titles of the videos `ids` name, by the id's text.
    func titles<S: Sequence>(_ ids: S) async throws -> [String: String] where S.Element == String {
        var found: [String: String] = [:]
        let missing = self.known.withLock { known -> Set<String> in
            var missing = Set<String>()
            for id in ids where found[id] == nil {
                if let entry = known[id] {
                    if let title = entry { found[id] = title }
                } else {
                    missing.insert(id)
                }
            }
            return missing
        }
        guard !missing.isEmpty else { return found }
        var fetched: [String: String?] = Dictionary(uniqueKeysWithValues: missing.map { ($0, nil) })
        let parsed = missing.compactMap { text in UUID(text: text).map { ($0, text) } }
        var texts: [UUID: [String]] = [:]
        for (id, text) in parsed { texts[id, default: []].append(text) }
        let ids = Array(texts.keys)
        for chunk in stride(from: 0, to: ids.count, by: 10_000).map({ ids[$0..<min($0 + 10_000, ids.count)] }) {
            let rows = try await self.database.query("""
                SELECT id, title FROM videos WHERE id = ANY(\(PostgresArray(chunk.map(\.lowercasedString)))::uuid[])
                """).rows
            for row in rows {
                guard let id = row.values[0].flatMap(UUID.init(text:)), let title = row.values[1] else { continue }
                for text in texts[id] ?? [] {
                    fetched[text] = title
                    found[text] = title
                }
            }
        }
        self.known.withLock { known in
            if known.count + fetched.count > self.limit { known.removeAll() }
            known.merge(fetched) { $1 }
        }
        return found
    }
}
