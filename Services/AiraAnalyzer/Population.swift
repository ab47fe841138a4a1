import AiraAnalysis
import AiraCore
import AiraPostgres
import Foundation
import Logging

/// What a run learns from the whole population before any user is analysed: the
/// return-likelihood model and the vocabulary of interests. Both read the audit log — of a
/// sample of the users when there are many: about `sampleUsers` of them, chosen by a hash of
/// the id (the same users every run). Eight coefficients and the relative frequency of words
/// are estimated well from tens of thousands of users; reading every user's month would make
/// preparing cost as much as analysing.
struct Population: Sendable {
    let database: PostgresClient
    let titles: VideoTitles
    let sampleUsers: Int

    /// The SQL condition that keeps the sample (a share of 1024 hash buckets), or `true`.
    func sampleCondition() async throws -> String {
        // The planner's row estimate of `users` (instant); a count when there is none yet.
        var accounts = try await self.database.query("SELECT reltuples::bigint AS n FROM pg_class WHERE oid = 'users'::regclass")
            .first?.decode("n", as: Int.self) ?? -1
        if accounts <= 0 { accounts = try await self.database.query("SELECT count(*) AS n FROM users").first?.decode("n") ?? 0 }
        guard accounts > self.sampleUsers else { return "true" }
        let buckets = max(1, Int((Double(self.sampleUsers) / Double(accounts) * 1024).rounded(.up)))
        return "(hashtext(user_id::text) & 1023) < \(buckets)"
    }

    /// Fits the model: for every user active in D-28…D, features from D-28…D-1 and the label
    /// "active on D". Nil (with the reason logged) when the data cannot support a fit.
    func fitModel(day: Day, timezone: String, sample: String, logger: Logger) async throws -> LogisticModel? {
        let first = day - ActivityEvents.windowDays
        let rows = try await self.database.query("""
            SELECT user_id::text, string_agg(off::text || ':' || n::text || ':' || q::text || ':' || p::text, ',') AS days
            FROM (
                SELECT user_id, (occurred_at AT TIME ZONE \(timezone))::date - \(first.description)::date AS off, count(*) AS n,
                       count(*) FILTER (WHERE type = \(ActivityEvents.question)) AS q,
                       count(*) FILTER (WHERE type = \(ActivityEvents.play)) AS p
                FROM audit_log
                WHERE user_id IS NOT NULL AND type <> ALL(\(PostgresArray(ActivityEvents.passive))::text[]) AND \(unsafeRaw: sample)
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
            guard let idText = row.values[0], let id = UUID(text: idText), let daysText = row.values[1] else { continue }
            var days = [DailyActivity](repeating: DailyActivity(), count: window + 1)
            // "off:n:q:p,off:n:q:p,…", read byte by byte (a String per number cost more than the fit).
            var fields = (0, 0, 0, 0), index = 0, value = 0
            func close() {
                switch index {
                case 0: fields.0 = value
                case 1: fields.1 = value
                case 2: fields.2 = value
                default: fields.3 = value
                }
                value = 0
            }
            for byte in daysText.utf8 {
                switch byte {
                case UInt8(ascii: "0")...UInt8(ascii: "9"): value = value * 10 + Int(byte - UInt8(ascii: "0"))
                case UInt8(ascii: ":"): close(); index += 1
                default: // ","
                    close()
                    if index == 3, (0...window).contains(fields.0) { days[fields.0] = DailyActivity(events: fields.1, questions: fields.2, plays: fields.3) }
                    index = 0
                }
            }
            close()
            if index == 3, (0...window).contains(fields.0) { days[fields.0] = DailyActivity(events: fields.1, questions: fields.2, plays: fields.3) }
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
    func vocabulary(day: Day, timezone: String, sample: String) async throws -> Vocabulary {
        let first = day - (ActivityEvents.windowDays - 1)
        // Per user: their distinct questions, and the ids of the videos they played (titles apart).
        let rows = try await self.database.query("""
            SELECT string_agg(DISTINCT attributes->>'question', E'\\n') FILTER (WHERE type = \(ActivityEvents.question)) AS questions,
                   string_agg(DISTINCT attributes->>'videoId', ',') FILTER (WHERE type = \(ActivityEvents.play)) AS videos
            FROM audit_log
            WHERE user_id IS NOT NULL AND type IN (\(ActivityEvents.question), \(ActivityEvents.play)) AND \(unsafeRaw: sample)
              AND occurred_at >= (\(first.description)::date::timestamp AT TIME ZONE \(timezone))
              AND occurred_at < (\((day + 1).description)::date::timestamp AT TIME ZONE \(timezone))
            GROUP BY user_id
            """).rows
        let videos = rows.map { row in
            row.values[1].map { $0.utf8.split(separator: UInt8(ascii: ",")).map { String(decoding: $0, as: UTF8.self) } } ?? []
        }
        let titles = try await self.titles.titles(videos.joined())
        return Vocabulary.build(zip(rows, videos).lazy.map { row, ids in
            (row.values[0].map { [$0] } ?? []) + ids.compactMap { titles[$0] }
        })
    }
}
