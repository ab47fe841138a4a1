import AiraAMQP
import AiraAnalysis
import AiraContracts
import AiraCore
import AiraMessaging
import AiraPostgres
import Foundation
import Hummingbird
import Logging

/// The operator console's API (ADMIN role), over the same engines `aira-admin` uses:
/// `/api/admin/queues` (``QueueOverview`` from the management API), `/api/admin/dlq/*`
/// (``DeadLetterQueues``: list, groups by error, replay, purge) and `/api/admin/analysis/runs`
/// (``AnalysisRuns``). Every change writes an audit event with the operator as actor.
struct OperatorRoutes: Sendable {
    let content: ContentContext
    let connection: AMQPConnection
    /// RabbitMQ's management API (`AIRA_RABBITMQ_MANAGEMENT_URL`), for unacknowledged counts and rates.
    let management: ManagementAPI?
    let vhost: String
    let bodyLimit: Int
    /// The fastest replay an operator may ask for (`AIRA_DLQ_REPLAY_MAX_RATE`), and the rate
    /// used when they name none: a replay never floods a consumer that just recovered.
    let maxReplayRate: Double
    let defaultReplayRate: Double
    let analysisTimezone: String
    private var engine: DeadLetterQueues { DeadLetterQueues(connection: self.connection, logger: self.logger) }
    let logger: Logger

    init(content: ContentContext, connection: AMQPConnection, management: ManagementAPI?, vhost: String, bodyLimit: Int,
         maxReplayRate: Double, defaultReplayRate: Double, analysisTimezone: String, logger: Logger) {
        self.content = content
        self.connection = connection
        self.management = management
        self.vhost = vhost
        self.bodyLimit = bodyLimit
        self.maxReplayRate = maxReplayRate
        self.defaultReplayRate = min(defaultReplayRate, maxReplayRate)
        self.analysisTimezone = analysisTimezone
        self.logger = logger
    }

    // MARK: - Queues

    /// `GET /api/admin/queues`: every consumer queue of the topology.
    func queues(_ request: Request, context: GatewayContext) async throws -> Response {
        let names = AiraTopology.consumerQueues().map(\.name)
        guard let management = self.management else {
            throw APIError.unavailable("queue statistics need RabbitMQ's management API: set AIRA_RABBITMQ_MANAGEMENT_URL", retryAfter: 30)
        }
        let infos = try await backend("RabbitMQ's management API is not reachable, try again", retryAfter: 5, context) {
            try await management.queues(vhost: self.vhost)
        }
        struct Body: Encodable { var at: Date; var items: [QueueOverview] }
        return JSONResponse.make(.ok, Body(at: Date(), items: QueueOverview.rows(from: infos, only: names)))
    }

    // MARK: - Dead letters

    /// `GET /api/admin/dlq`: every dead-letter queue of the topology, its depth and oldest message's age.
    func deadLetterQueues(_ request: Request, context: GatewayContext) async throws -> Response {
        let statuses = try await self.broker(context) {
            try await self.engine.status(of: AiraTopology.consumerQueues().map(\.name))
        }
        return JSONResponse.make(.ok, PageBody(items: statuses, nextCursor: nil))
    }

    /// `GET /api/admin/dlq/{queue}?type=&error=&since=&limit=`: the dead letters (with headers
    /// and body) and their groups by error. Nothing is removed.
    func deadLetters(_ request: Request, context: GatewayContext) async throws -> Response {
        let queue = try self.queue(context)
        let query = request.uri.queryParameters
        var limit = 200
        if let raw = query.get("limit") {
            guard let n = Int(raw), (1...2000).contains(n) else { throw APIError.badRequest("invalid_request", "'limit' must be 1–2000") }
            limit = n
        }
        let filter = try Self.filter(type: query.get("type"), error: query.get("error"), since: query.get("since"), ids: [])
        let letters = try await self.broker(context) { try await self.engine.show(queue.name, filter: filter, limit: limit) }
        struct Body: Encodable {
            var queue: String
            var deadLetterQueue: String
            var items: [DeadLetterView]
            var groups: [DeadLetterGroup]
        }
        return JSONResponse.make(.ok, Body(queue: queue.name, deadLetterQueue: queue.deadLetterQueue,
                                           items: letters.map { DeadLetterView($0, includeBody: true, bodyLimit: 16 * 1024) },
                                           groups: DeadLetterGroup.groups(letters)))
    }

    struct ReplayBody: Decodable {
        var all: Bool?
        var ids: [String]?
        var type: String?
        var error: String?
        var since: String?
        var dryRun: Bool?
        var limit: Int?
        var rate: Double?
    }

    /// `POST /api/admin/dlq/{queue}/replay`: moves matching dead letters back to their queue,
    /// each confirmed before it leaves the DLQ, at most `rate` per second.
    func replay(_ request: Request, context: GatewayContext) async throws -> Response {
        let queue = try self.queue(context)
        let admin = try self.content.activeUser(context).id
        let body = try await JSONBody.decode(ReplayBody.self, from: request, limit: self.bodyLimit)
        let filter = try Self.filter(type: body.type, error: body.error, since: body.since, ids: body.ids ?? [])
        let all = body.all ?? false
        if !all && filter.isEmpty {
            throw APIError.badRequest("invalid_request", "say what to replay: 'all': true, or 'ids', 'type', 'error' or 'since'")
        }
        if all && !filter.isEmpty { throw APIError.badRequest("invalid_request", "'all' cannot be combined with a filter") }
        if let limit = body.limit, !(1...1_000_000).contains(limit) {
            throw APIError.badRequest("invalid_request", "'limit' must be 1–1000000")
        }
        let rate = body.rate ?? self.defaultReplayRate
        guard rate > 0, rate <= self.maxReplayRate else {
            throw APIError.badRequest("invalid_request", "'rate' must be above 0 and at most \(Self.number(self.maxReplayRate)) per second")
        }
        let dryRun = body.dryRun ?? false
        let report = try await self.broker(context) {
            try await self.engine.replay(queue.name, filter: filter, limit: body.limit ?? .max, ratePerSecond: rate, dryRun: dryRun)
        }
        if !dryRun {
            await self.content.audit("dlq.replayed", user: admin, context, [
                "queue": report.queue, "moved": String(report.moved.count), "matched": String(report.matched),
                "filter": Self.describe(filter, all: all), "rate": Self.number(rate),
            ])
        }
        return JSONResponse.make(.ok, report)
    }

    struct PurgeBody: Decodable {
        var all: Bool?
        var ids: [String]?
        var confirm: Bool?
    }

    /// `POST /api/admin/dlq/{queue}/purge` `{ids | all, confirm: true}`: deletes dead letters for good.
    func purge(_ request: Request, context: GatewayContext) async throws -> Response {
        let queue = try self.queue(context)
        let admin = try self.content.activeUser(context).id
        let body = try await JSONBody.decode(PurgeBody.self, from: request, limit: self.bodyLimit)
        let ids = Set(body.ids ?? [])
        let all = body.all ?? false
        guard all != !ids.isEmpty else { throw APIError.badRequest("invalid_request", "say what to purge: 'all': true or 'ids' (not both)") }
        guard body.confirm == true else {
            throw APIError.badRequest("confirmation_required", "purging deletes messages for good: send 'confirm': true")
        }
        let deleted = try await self.broker(context) { try await self.engine.purge(queue.name, ids: ids) }
        await self.content.audit("dlq.purged", user: admin, context, [
            "queue": queue.deadLetterQueue, "deleted": String(deleted), "scope": all ? "all" : "\(ids.count) ids",
        ])
        struct Body: Encodable { var queue: String; var deleted: Int }
        return JSONResponse.make(.ok, Body(queue: queue.deadLetterQueue, deleted: deleted))
    }

    // MARK: - Nightly analysis

    /// `GET /api/admin/analysis/runs?limit=`: the latest runs, newest first.
    func analysisRuns(_ request: Request, context: GatewayContext) async throws -> Response {
        var limit = 14
        if let raw = request.uri.queryParameters.get("limit") {
            guard let n = Int(raw), (1...365).contains(n) else { throw APIError.badRequest("invalid_request", "'limit' must be 1–365") }
            limit = n
        }
        let runs = try await self.database(context) { try await AnalysisRuns(database: self.content.database).list(limit: limit) }
        return JSONResponse.make(.ok, PageBody(items: runs, nextCursor: nil))
    }

    struct RunBody: Decodable { var day: String; var timezone: String? }

    /// `POST /api/admin/analysis/runs` `{day, timezone?}`: (re-)runs a day's analysis; the next
    /// analyzer check picks it up → 202 the requested run.
    func requestRun(_ request: Request, context: GatewayContext) async throws -> Response {
        let admin = try self.content.activeUser(context).id
        let body = try await JSONBody.decode(RunBody.self, from: request, limit: self.bodyLimit)
        guard let day = Day(body.day) else { throw APIError.badRequest("invalid_request", "'day' must be a date, yyyy-MM-dd") }
        let zone = body.timezone ?? self.analysisTimezone
        guard TimeZone(identifier: zone) != nil else { throw APIError.badRequest("invalid_request", "'timezone' is not a known time zone") }
        let run = try await self.database(context) {
            try await AnalysisRuns(database: self.content.database).request(day, timezone: zone, trigger: "console")
        }
        await self.content.audit("analysis.requested", user: admin, context,
                                 ["day": body.day, "generation": String(run.generation), "timezone": zone])
        return JSONResponse.make(.accepted, run)
    }

    // MARK: - Helpers

    /// The consumer queue named in the path (`Q` or `Q.dlq`); anything else is not one of Aira's: 404.
    private func queue(_ context: GatewayContext) throws -> QueueSpec {
        guard let name = context.parameters.get("queue"), let spec = AiraTopology.consumerQueue(named: name) else {
            throw APIError.notFound("queue")
        }
        return spec
    }

    static func filter(type: String?, error: String?, since: String?, ids: [String]) throws -> DeadLetterFilter {
        var at: Date?
        if let since, !since.isEmpty {
            guard let date = parseISO8601(since) else {
                throw APIError.badRequest("invalid_request", "'since' must be an ISO 8601 time, e.g. 2026-12-01T00:00:00Z")
            }
            at = date
        }
        return DeadLetterFilter(ids: Set(ids), type: type.flatMap { $0.isEmpty ? nil : $0 },
                                errorContains: error.flatMap { $0.isEmpty ? nil : $0 }, since: at)
    }

    static func describe(_ filter: DeadLetterFilter, all: Bool) -> String {
        if all { return "all" }
        var parts: [String] = []
        if !filter.ids.isEmpty { parts.append("\(filter.ids.count) ids") }
        if let t = filter.type { parts.append("type=\(t)") }
        if let e = filter.errorContains { parts.append("error~\(e.prefix(100))") }
        if let s = filter.since { parts.append("since=\(iso8601(s))") }
        return parts.joined(separator: " ")
    }

    static func number(_ value: Double) -> String { value == value.rounded() ? String(Int(value)) : String(value) }

    /// A broker or database that cannot be reached is a 503, never a 500.
    private func broker<T>(_ context: GatewayContext, _ body: () async throws -> T) async throws -> T {
        try await backend("the broker is not reachable or refused the operation, try again", context, body)
    }

    private func database<T>(_ context: GatewayContext, _ body: () async throws -> T) async throws -> T {
        try await backend("the database is not reachable, try again", context, body)
    }
}
