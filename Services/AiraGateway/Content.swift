import AiraContracts
import AiraCore
import AiraMessaging
import AiraServiceKit
import AiraPostgres
import AiraRedis
import Foundation
import Hummingbird
import Logging
import Metrics

/// What the content routes share: the database, the publisher for audit events and jobs, and
/// the small rules every content route follows (ids in paths, paging, who may write).
struct ContentContext: Sendable {
    let database: PostgresClient
    let publisher: MessagePublisher
    let trail: AuditTrail
    /// Where reads go: the replica when there is one and it keeps up, else the primary.
    let reads: PostgresReadRouter
    /// Read-your-writes markers (shared by every gateway instance).
    let redis: RedisClient
    /// After a user's write, how long that user's reads go to the primary
    /// (`AIRA_READ_YOUR_WRITES_WINDOW`; longer than the replica's tolerated lag).
    let freshWindow: Duration
    private static let auditFailures = Counter(label: "aira_gateway_audit_publish_failures_total")
    private static let markerFailures = Counter(label: "aira_gateway_read_your_writes_failures_total")

    init(database: PostgresClient, publisher: MessagePublisher, trail: AuditTrail, reads: PostgresReadRouter? = nil,
         redis: RedisClient, freshWindow: Duration = .seconds(10)) {
        self.database = database
        self.publisher = publisher
        self.trail = trail
        self.reads = reads ?? PostgresReadRouter(primary: database, replica: nil)
        self.redis = redis
        self.freshWindow = freshWindow
    }

    /// Runs a statement on the primary; a database that cannot be reached is a 503, never a 500.
    @discardableResult
    func query(_ query: PostgresQuery, _ context: GatewayContext) async throws -> PostgresResult {
        try await Self.mapUnavailable(context) { try await self.database.query(query) }
    }

    /// Runs a read-only statement where reads go (``PostgresReadRouter``): the replica unless
    /// `primaryOnly` (the caller's own recent write must be visible) or the replica is behind or
    /// down. Counted by target in `aira_gateway_database_reads_total`.
    func read(_ query: PostgresQuery, _ context: GatewayContext, primaryOnly: Bool = false) async throws -> (PostgresResult, ReadTarget) {
        let (result, target) = try await Self.mapUnavailable(context) { try await self.reads.read(query, primaryOnly: primaryOnly) }
        Counter(label: "aira_gateway_database_reads_total", dimensions: [("target", target.rawValue)]).increment()
        return (result, target)
    }

    private static func mapUnavailable<T>(_ context: GatewayContext, _ body: () async throws -> T) async throws -> T {
        do {
            return try await body()
        } catch let error as PostgresError where error.sqlState == nil || error.isRetriable {
            context.logger.warning("database unavailable", metadata: [LogKey.error: "\(error)"])
            throw APIError.unavailable("the content database is not reachable, try again", retryAfter: 2)
        } catch let error as ConnectionPoolError {
            context.logger.warning("database busy", metadata: [LogKey.error: "\(error)"])
            throw APIError.unavailable("the content database is busy, try again", retryAfter: 1)
        }
    }

    static func freshKey(_ user: UUID) -> String { "aira:fresh:\(user.lowercasedString)" }

    /// Whether `user` wrote within the read-your-writes window (their reads then go to the
    /// primary). Without a replica there is nothing to ask. Redis failing counts as no.
    func wroteRecently(_ user: UUID?, _ context: GatewayContext) async -> Bool {
        guard let user, self.reads.replica != nil else { return false }
        do {
            return try await self.redis.exists(Self.freshKey(user))
        } catch {
            Self.markerFailures.increment()
            context.logger.warning("read-your-writes marker unreadable", metadata: [LogKey.error: "\(error)"])
            return false
        }
    }

    /// Marks `user` as having just written: their reads go to the primary for ``freshWindow``.
    func wrote(_ user: UUID, _ context: GatewayContext) async {
        guard self.reads.replica != nil else { return }
        do {
            _ = try await self.redis.set(Self.freshKey(user), "1", expire: self.freshWindow)
        } catch {
            Self.markerFailures.increment()
            context.logger.warning("read-your-writes marker not set", metadata: [LogKey.error: "\(error)"])
        }
    }

    /// The caller as a user who may change content: authenticated and not suspended.
    func activeUser(_ context: GatewayContext) throws -> (id: UUID, admin: Bool) {
        return (try AuthRoutes.userID(try context.user()), context.isAdmin)
    }

    func requireNotSuspended(_ user: UUID, _ context: GatewayContext) async throws {
        let row = try await self.query("SELECT suspended_at IS NOT NULL AS suspended FROM users WHERE id = \(user)", context).first
        guard let row, !(try row.decode("suspended", as: Bool.self)) else {
            throw APIError(status: .forbidden, code: AuthError.accountSuspended, message: "this account is suspended or gone")
        }
    }

    /// Likes `item` of `table` (or takes the like back) for `user`, idempotently: `likes` holds
    /// one row per (item, user) under the column `itemColumn`, and `table.like_count` moves only
    /// when a row was added or removed. Nil when the item does not exist.
    func setLike(_ liked: Bool, item: UUID, user: UUID, table: String, likes: String, itemColumn: String,
                 _ context: GatewayContext) async throws -> (likes: Int, changed: Bool)? {
        let change: PostgresQuery = liked
            ? """
              WITH c AS (INSERT INTO \(identifier: likes) (\(identifier: itemColumn), user_id)
                         SELECT id, \(user) FROM \(identifier: table) WHERE id = \(item) ON CONFLICT DO NOTHING RETURNING 1)
              UPDATE \(identifier: table) SET like_count = like_count + (SELECT count(*) FROM c) WHERE id = \(item)
              RETURNING like_count, (SELECT count(*) FROM c) AS changed
              """
            : """
              WITH c AS (DELETE FROM \(identifier: likes) WHERE \(identifier: itemColumn) = \(item) AND user_id = \(user) RETURNING 1)
              UPDATE \(identifier: table) SET like_count = like_count - (SELECT count(*) FROM c) WHERE id = \(item)
              RETURNING like_count, (SELECT count(*) FROM c) AS changed
              """
        guard let row = try await self.query(change, context).first else { return nil }
        return (try row.decode("like_count"), try row.decode("changed", as: Int.self) > 0)
    }

    /// Publishes an audit event for something that has already happened. The change is committed,
    /// so a broker problem does not fail the request: it is logged and counted
    /// (`aira_gateway_audit_publish_failures_total`).
    func audit(_ type: String, user: UUID?, _ context: GatewayContext, _ attributes: [String: String]) async {
        let event = AuditEvent(type: type, userId: user, ip: context.clientIP, attributes: attributes)
        do {
            try await self.trail.record(event)
        } catch {
            Self.auditFailures.increment()
            context.logger.error("audit event not published", metadata: ["type": "\(type)", LogKey.error: "\(error)"])
        }
    }

    /// The UUID in path parameter `name`; anything else names nothing, so 404.
    static func pathID(_ context: GatewayContext, _ name: String = "id", what: String) throws -> UUID {
        guard let raw = context.parameters.get(name), let id = UUID(text: raw) else { throw APIError.notFound(what) }
        return id
    }
}

extension APIError {
    static func notFound(_ what: String) -> APIError { APIError(status: .notFound, code: "not_found", message: "\(what) not found") }
}

/// Keyset paging: `?limit=` (1–100, default 20) and an opaque `?cursor=` naming the last row
/// seen (its sort key), so pages stay stable while rows are added.
struct Page: Sendable {
    var limit: Int
    /// The sort key parts of the last row of the previous page.
    var after: [String]?

    init(_ request: Request, parts: Int) throws {
        let query = request.uri.queryParameters
        if let raw = query.get("limit") {
            guard let n = Int(raw), (1...100).contains(n) else { throw APIError.badRequest("invalid_request", "'limit' must be 1–100") }
            self.limit = n
        } else {
            self.limit = 20
        }
        if let raw = query.get("cursor") {
            guard let decoded = Self.decode(raw), decoded.count == parts else {
                throw APIError.badRequest("invalid_cursor", "'cursor' is not one this API gave out")
            }
            self.after = decoded
        }
    }

    /// The previous page's last sort key, parsed: nil on the first page, 400 `invalid_cursor` for
    /// a cursor whose parts do not parse (one this API did not give out).
    func after<A, B>(_ first: (String) -> A?, _ second: (String) -> B?) throws -> (A, B)? {
        guard let after = self.after else { return nil }
        guard let a = first(after[0]), let b = second(after[1]) else {
            throw APIError.badRequest("invalid_cursor", "'cursor' is not one this API gave out")
        }
        return (a, b)
    }

    static func encode(_ parts: [String]) -> String {
        Data(parts.joined(separator: "\n").utf8).base64EncodedString()
            .replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_").replacingOccurrences(of: "=", with: "")
    }

    static func decode(_ cursor: String) -> [String]? {
        var b = cursor.replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
        while b.count % 4 != 0 { b += "=" }
        guard b.count <= 1024, let data = Data(base64Encoded: b) else { return nil }
        return String(data: data, encoding: .utf8)?.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
    }

    /// The rows of this page (the query fetched `limit + 1`) and the cursor of the next, if any.
    func slice<Row>(_ rows: [Row], key: (Row) -> [String]) -> (rows: [Row], next: String?) {
        guard rows.count > self.limit else { return (rows, nil) }
        let page = Array(rows.prefix(self.limit))
        return (page, page.last.map { Self.encode(key($0)) })
    }
}

struct PageBody<Item: Encodable & Sendable>: Encodable, Sendable {
    var items: [Item]
    var nextCursor: String?
}
