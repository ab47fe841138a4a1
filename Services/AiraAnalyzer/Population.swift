import AiraAnalysis
import AiraPostgres
import Foundation
import Logging

/// What a run learns from the whole population before any user is analysed: the
/// return-likelihood model and the vocabulary of interests. Both read the audit log.
struct Population: Sendable {
    let database: PostgresClient

    /// Fits the model: for every user active in D-28…D, features from D-28…D-1 and the label
    /// "active on D". Nil (with the reason logged) when the data cannot support a fit.
    func fitModel(day: Day, timezone: String, logger: Logger) async throws -> LogisticModel? {
        let first = day - ActivityEvents.windowDays
        let rows = try await self.database.query("""
            SELECT user_id::text, string_agg(off::text || ':' || n::text || ':' || q::text || ':' || p::text, ',') AS days
            FROM (
                SELECT user_id, (occurred_at AT TIME ZONE \(timezone))::date - \(first.description)::date AS off, count(*) AS n,
                       count(*) FILTER (WHERE type = \(ActivityEvents.question)) AS q,
                       count(*) FILTER (WHERE type = \(ActivityEvents.play)) AS p
                FROM audit_log
                WHERE user_id IS NOT NULL AND type <> ALL(\(PostgresArray(ActivityEvents.passive))::text[])
                  AND occurred_at >= (\(first.description)::date::timestamp AT TIME ZONE \(timezone))
                  AND occurred_at < (\((day + 1).description)::date::timestamp AT TIME ZONE \(timezone))
                GROUP BY 1, 2
            ) per_day
            GROUP BY user_id
            """).rows
        var samples: [Sample] = []
        samples.reserveCapacity(rows.count)
        let window = ActivityEvents.windowDays
        for row in rows {
            guard let idText = row.values[0], let id = UUID(uuidString: idText), let daysText = row.values[1] else { continue }
            var days = [DailyActivity](repeating: DailyActivity(), count: window + 1)
            for entry in daysText.utf8.split(separator: UInt8(ascii: ",")) {
                let f = entry.split(separator: UInt8(ascii: ":")).map { Int(String(decoding: $0, as: UTF8.self)) ?? 0 }
                guard f.count == 4, (0...window).contains(f[0]) else { continue }
                days[f[0]] = DailyActivity(events: f[1], questions: f[2], plays: f[3])
            }
            samples.append(Sample(features: ReturnFeatures.features(days[0..<window]), label: days[window].isActive,
                                  heldOut: isHeldOut(id)))
        }
        do {
            return try LogisticModel.fit(samples, featureNames: ReturnFeatures.names)
        } catch {
            logger.warning("no return-likelihood model for this run", metadata: ["day": "\(day)", "reason": "\(error)", "samples": "\(samples.count)"])
            return nil
        }
    }

    /// Document frequencies over every user's questions and watched titles in the 28 days ending D.
    func vocabulary(day: Day, timezone: String) async throws -> Vocabulary {
        let first = day - (ActivityEvents.windowDays - 1)
        let rows = try await self.database.query("""
            SELECT string_agg(DISTINCT t.text, E'\\n') AS texts
            FROM (
                SELECT a.user_id, CASE WHEN a.type = \(ActivityEvents.question) THEN a.attributes->>'question' ELSE v.title END AS text
                FROM audit_log a
                LEFT JOIN videos v ON a.type = \(ActivityEvents.play) AND v.id = \(unsafeRaw: Self.videoIDSQL)
                WHERE a.user_id IS NOT NULL AND a.type IN (\(ActivityEvents.question), \(ActivityEvents.play))
                  AND a.occurred_at >= (\(first.description)::date::timestamp AT TIME ZONE \(timezone))
                  AND a.occurred_at < (\((day + 1).description)::date::timestamp AT TIME ZONE \(timezone))
            ) t
            WHERE t.text IS NOT NULL
            GROUP BY t.user_id
            """).rows
        return Vocabulary.build(rows.lazy.map { [$0.values[0] ?? ""] })
    }

    /// The watched video's id from an event's attributes, NULL unless it is a well-formed UUID
    /// (a cast of anything else would fail the whole query).
    static let videoIDSQL = """
        (CASE WHEN a.attributes->>'videoId' ~* '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$'
              THEN (a.attributes->>'videoId')::uuid END)
        """
}
