import AiraAnalysis
import AiraCore
import AiraMessaging
import AiraPostgres
import Foundation
import Hummingbird

/// `GET /api/users/me/insights`: the caller's latest insights from the nightly analysis (only
/// ever the caller's own: the user comes from the token, never from the request).
struct InsightsRoutes: Sendable {
    let content: ContentContext

    struct DayCount: Encodable, Sendable {
        var day: String
        var events: Int
    }

    struct InsightsView: Encodable, Sendable {
        var userId: String
        /// The analysed day; the window is the 28 days ending with it.
        var day: String
        var windowStart: String
        var computedAt: Date
        var events: Int
        var activeDays: Int
        var countsByType: [String: Int]
        var countsByDay: [DayCount]
        var interests: [Interest]
        /// Probability of being active the day after `day` (null when the run had too little
        /// data to fit its model).
        var returnLikelihood: Double?
        /// How well the run's model predicted its held-out users.
        var model: LogisticModel.FitQuality?
    }

    func mine(_ request: Request, context: GatewayContext) async throws -> Response {
        let user = try AuthRoutes.userID(try context.user())
        guard let row = try await self.content.query("""
            SELECT r.day::text AS day, r.computed_at, r.events, r.active_days, r.counts_by_type::text AS by_type,
                   r.counts_by_day::text AS by_day, r.interests::text AS interests, r.return_likelihood, ru.model::text AS model
            FROM analysis_results r LEFT JOIN analysis_runs ru ON ru.day = r.day
            WHERE r.user_id = \(user) ORDER BY r.day DESC LIMIT 1
            """, context).first else {
            throw APIError(status: .notFound, code: "no_insights",
                           message: "no insights yet: they are computed each night for users active the day before")
        }
        let dayText: String = try row.decode("day")
        guard let day = Day(dayText) else { throw PostgresError.decoding(column: "day", value: dayText, expected: "a date") }
        let first = day - (ActivityEvents.windowDays - 1)
        func json<T: Decodable>(_ column: String, _ type: T.Type) throws -> T {
            try MessageCoding.decode(T.self, from: Array(try row.decode(column, as: String.self).utf8))
        }
        let perDay = try json("by_day", [Int].self)
        let model = try row.decodeOptional("model", as: String.self).flatMap { try? MessageCoding.decode(LogisticModel.self, from: Array($0.utf8)) }
        let view = InsightsView(
            userId: user.lowercasedString, day: day.description, windowStart: first.description, computedAt: try row.decode("computed_at"),
            events: try row.decode("events"), activeDays: try row.decode("active_days"), countsByType: try json("by_type", [String: Int].self),
            countsByDay: perDay.enumerated().map { DayCount(day: (first + $0.offset).description, events: $0.element) },
            interests: try json("interests", [Interest].self), returnLikelihood: try row.decodeOptional("return_likelihood"),
            model: model?.fit)
        return JSONResponse.make(.ok, view)
    }
}
