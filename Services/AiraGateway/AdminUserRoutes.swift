import AiraCore
import AiraPostgres
import Foundation
import Hummingbird

/// `GET /api/admin/users?q=&limit=&cursor=`: admins find users by email (a case-insensitive
/// part of it) or by id, newest first; suspending and reinstating go through aira-auth
/// (``AuthRoutes/setSuspended(_:)``).
struct AdminUserRoutes: Sendable {
    let content: ContentContext

    struct UserRow: Encodable, Sendable {
        var id: String
        var email: String
        var role: String
        var emailVerified: Bool
        var suspended: Bool
        var suspendedAt: Date?
        var createdAt: Date
    }

    func search(_ request: Request, context: GatewayContext) async throws -> Response {
        let page = try Page(request, parts: 2)
        var sql = """
            SELECT id, email, role, email_verified_at IS NOT NULL AS verified, suspended_at, created_at,
                   (extract(epoch FROM created_at) * 1000000)::bigint AS created_us
            FROM users WHERE true
            """
        var binds: [(any PostgresBindable)?] = []
        if let q = request.uri.queryParameters.get("q")?.trimmingCharacters(in: .whitespaces), !q.isEmpty {
            guard q.count <= 200 else { throw APIError.badRequest("invalid_request", "'q' must be at most 200 characters") }
            if let id = UUID(text: q) {
                binds.append(id)
                sql += " AND id = $1"
            } else {
                // A literal part of the address: LIKE's wildcards in it match themselves.
                let escaped = q.lowercased().replacingOccurrences(of: "\\", with: "\\\\")
                    .replacingOccurrences(of: "%", with: "\\%").replacingOccurrences(of: "_", with: "\\_")
                binds.append("%\(escaped)%")
                sql += " AND lower(email) LIKE $1"
            }
        }
        if let (us, id) = try page.after({ Int64($0) }, { UUID(text: $0) }) {
            binds += [us, id]
            sql += " AND (created_at, id) < ('epoch'::timestamptz + $\(binds.count - 1) * interval '1 microsecond', $\(binds.count))"
        }
        sql += " ORDER BY created_at DESC, id DESC LIMIT \(page.limit + 1)"
        let rows = try await self.content.query(PostgresQuery(unsafeSQL: sql, binds: binds), context).rows
        let (pageRows, next) = page.slice(rows) {
            [(try? $0.decode("created_us", as: String.self)) ?? "", (try? $0.decode("id", as: String.self)) ?? ""]
        }
        let items = try pageRows.map { row in
            let suspendedAt: Date? = try row.decodeOptional("suspended_at")
            return UserRow(id: try row.decode("id"), email: try row.decode("email"), role: try row.decode("role"),
                           emailVerified: try row.decode("verified"), suspended: suspendedAt != nil, suspendedAt: suspendedAt,
                           createdAt: try row.decode("created_at"))
        }
        return JSONResponse.make(.ok, PageBody(items: items, nextCursor: next))
    }
}
