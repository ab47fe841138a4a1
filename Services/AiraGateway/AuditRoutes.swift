import AiraContracts
import AiraCore
import AiraMessaging
import AiraPostgres
import Foundation
import Hummingbird

/// `GET /api/admin/audit`: the audit log, newest first, filtered by `userId`, `type`, `from`
/// and `to` (ISO 8601), paged by cursor.
struct AuditRoutes: Sendable {
    let content: ContentContext

    struct EntryView: Encodable, Sendable {
        var id: String
        var type: String
        var userId: String?
        var actorId: String?
        var at: Date
        var ip: String?
        var attributes: [String: String]
    }

    func list(_ request: Request, context: GatewayContext) async throws -> Response {
        let query = request.uri.queryParameters
        let page = try Page(request, parts: 2)
        var sql = """
            SELECT message_id, type, user_id, actor_id, occurred_at, ip, attributes::text AS attributes,
                   (extract(epoch FROM occurred_at) * 1000000)::bigint AS at_us
            FROM audit_log WHERE true
            """
        var binds: [(any PostgresBindable)?] = []
        func add(_ value: any PostgresBindable, _ condition: (String) -> String) {
            binds.append(value)
            sql += " AND " + condition("$\(binds.count)")
        }
        if let raw = query.get("userId") {
            guard let id = UUID(text: raw) else { throw APIError.badRequest("invalid_request", "'userId' must be a user id") }
            add(id) { "user_id = \($0)" }
        }
        if let type = query.get("type") {
            guard !type.isEmpty, type.count <= 100 else { throw APIError.badRequest("invalid_request", "'type' must be 1–100 characters") }
            add(type) { "type = \($0)" }
        }
        for (name, op) in [("from", ">="), ("to", "<")] {
            guard let raw = query.get(name) else { continue }
            guard let date = parseISO8601(raw) else {
                throw APIError.badRequest("invalid_request", "'\(name)' must be an ISO 8601 time, e.g. 2026-11-21T00:00:00Z")
            }
            add(date) { "occurred_at \(op) \($0)" }
        }
        if let (us, id) = try page.after({ Int64($0) }, { $0.isEmpty ? nil : $0 }) {
            binds += [us, id]
            sql += " AND (occurred_at, message_id) < ('epoch'::timestamptz + $\(binds.count - 1) * interval '1 microsecond', $\(binds.count))"
        }
        sql += " ORDER BY occurred_at DESC, message_id DESC LIMIT \(page.limit + 1)"
        // The audit log is written asynchronously anyway: the replica serves it whenever it keeps up.
        let rows = try await self.content.read(PostgresQuery(unsafeSQL: sql, binds: binds), context).0.rows
        let (pageRows, next) = page.slice(rows) {
            [(try? $0.decode("at_us", as: String.self)) ?? "", (try? $0.decode("message_id", as: String.self)) ?? ""]
        }
        let items = try pageRows.map { row in
            EntryView(id: try row.decode("message_id"), type: try row.decode("type"), userId: try row.decodeOptional("user_id"),
                      actorId: try row.decodeOptional("actor_id"), at: try row.decode("occurred_at"), ip: try row.decodeOptional("ip"),
                      attributes: (try? MessageCoding.decode([String: String].self, from: Array((try row.decode("attributes", as: String.self)).utf8))) ?? [:])
        }
        return JSONResponse.make(.ok, PageBody(items: items, nextCursor: next))
    }
}
