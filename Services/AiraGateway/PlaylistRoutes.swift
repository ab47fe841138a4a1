import AiraContracts
import AiraCore
import AiraMessaging
import AiraPostgres
import Foundation
import Hummingbird

/// `/api/playlists`: the product's access rules. Anyone reads a public playlist; a private one
/// exists only for its owner (and admins): everyone else gets 404, not 403, so its existence
/// does not leak. Only the owner changes a playlist; the owner or an admin (moderation) deletes it.
struct PlaylistRoutes: Sendable {
    let content: ContentContext
    let bodyLimit: Int

    struct CreateBody: Decodable {
        var title: String
        var description: String?
        var `public`: Bool?
    }

    struct UpdateBody: Decodable {
        var title: String?
        var description: String?
        var `public`: Bool?
    }

    struct PlaylistView: Encodable, Sendable {
        var id: String
        var ownerId: String
        var title: String
        var description: String
        var `public`: Bool
        var videoCount: Int
        var createdAt: Date
        var updatedAt: Date
    }

    /// The columns of a ``PlaylistView`` plus the paging key, for `FROM playlists p`.
    private static let columns = """
        p.id, p.owner_id, p.title, p.description, p.is_public, p.created_at, p.updated_at,
        (SELECT count(*) FROM playlist_videos pv WHERE pv.playlist_id = p.id) AS video_count,
        (extract(epoch FROM p.created_at) * 1000000)::bigint AS created_us
        """

    private static func view(_ row: PostgresRow) throws -> PlaylistView {
        PlaylistView(id: try row.decode("id"), ownerId: try row.decode("owner_id"), title: try row.decode("title"),
                     description: try row.decode("description"), public: try row.decode("is_public"),
                     videoCount: try row.decode("video_count"), createdAt: try row.decode("created_at"),
                     updatedAt: try row.decode("updated_at"))
    }

    static func validTitle(_ title: String) throws -> String {
        let t = title.trimmed
        guard !t.isEmpty, t.count <= 200 else { throw APIError.badRequest("invalid_request", "'title' must be 1–200 characters") }
        return t
    }

    static func validDescription(_ d: String?) throws -> String {
        guard let d else { return "" }
        guard d.count <= 5000 else { throw APIError.badRequest("invalid_request", "'description' must be at most 5000 characters") }
        return d
    }

    func create(_ request: Request, context: GatewayContext) async throws -> Response {
        let user = try self.content.activeUser(context)
        let body = try await JSONBody.decode(CreateBody.self, from: request, limit: self.bodyLimit)
        let (title, description) = (try Self.validTitle(body.title), try Self.validDescription(body.description))
        try await self.content.requireNotSuspended(user.id, context)
        let id = UUID()
        let row = try await self.content.query("""
            WITH p AS (INSERT INTO playlists (id, owner_id, title, description, is_public)
                       VALUES (\(id), \(user.id), \(title), \(description), \(body.public ?? false)) RETURNING *)
            SELECT \(unsafeRaw: Self.columns) FROM p
            """, context).first
        guard let row else { throw APIError.unavailable("the playlist was not stored, try again") }
        let view = try Self.view(row)
        await self.content.wrote(user.id, context)
        await self.content.audit("playlist_created", user: user.id, context, ["playlistId": view.id, "public": String(view.public)])
        var response = JSONResponse.make(.created, view)
        response.headers[.location] = "/api/playlists/\(view.id)"
        return response
    }

    /// A playlist the caller may see, or 404. `forWrite` reads the primary; otherwise the read may
    /// go to the replica (unless the caller wrote just now).
    private func visible(_ id: UUID, _ context: GatewayContext, forWrite: Bool = false) async throws -> PlaylistView {
        let query: PostgresQuery = "SELECT \(unsafeRaw: Self.columns) FROM playlists p WHERE p.id = \(id)"
        let rows = forWrite ? try await self.content.query(query, context).rows
            : try await self.content.read(query, context, primaryOnly: await self.content.wroteRecently(context.callerID, context)).0.rows
        guard let row = rows.first else {
            throw APIError.notFound("playlist")
        }
        let view = try Self.view(row)
        guard view.public || context.isAdmin || view.ownerId == context.callerID?.lowercasedString else { throw APIError.notFound("playlist") }
        return view
    }

    func get(_ request: Request, context: GatewayContext) async throws -> Response {
        JSONResponse.make(.ok, try await self.visible(try ContentContext.pathID(context, what: "playlist"), context))
    }

    /// `GET /api/playlists?owner=me|<id>`: an owner's playlists as the caller may see them
    /// (their own: all; someone else's: the public ones); without `owner`, every public playlist.
    func list(_ request: Request, context: GatewayContext) async throws -> Response {
        let page = try Page(request, parts: 2)
        let caller = context.callerID
        var owner: UUID?
        if let raw = request.uri.queryParameters.get("owner") {
            if raw == "me" {
                guard let caller else { throw APIError.unauthenticated("'owner=me' needs an access token") }
                owner = caller
            } else {
                guard let id = UUID(text: raw) else { throw APIError.badRequest("invalid_request", "'owner' must be 'me' or a user id") }
                owner = id
            }
        }
        let seesPrivate = owner != nil && (owner == caller || context.isAdmin)
        var sql = "SELECT \(Self.columns) FROM playlists p WHERE true"
        var binds: [(any PostgresBindable)?] = []
        if let owner {
            binds.append(owner)
            sql += " AND p.owner_id = $\(binds.count)"
        }
        if !seesPrivate { sql += " AND p.is_public" }
        if let (us, id) = try page.after({ Int64($0) }, { UUID(text: $0) }) {
            binds += [us, id]
            sql += " AND (p.created_at, p.id) < ('epoch'::timestamptz + $\(binds.count - 1) * interval '1 microsecond', $\(binds.count))"
        }
        sql += " ORDER BY p.created_at DESC, p.id DESC LIMIT \(page.limit + 1)"
        let fresh = await self.content.wroteRecently(caller, context)
        let rows = try await self.content.read(PostgresQuery(unsafeSQL: sql, binds: binds), context, primaryOnly: fresh).0.rows
        let (pageRows, next) = page.slice(rows) { [(try? $0.decode("created_us", as: String.self)) ?? "", (try? $0.decode("id", as: String.self)) ?? ""] }
        return JSONResponse.make(.ok, PageBody(items: try pageRows.map(Self.view), nextCursor: next))
    }

    /// The playlist if the caller may change it: 404 when they may not see it, 403 when they see
    /// it but it is not theirs.
    private func owned(_ id: UUID, _ context: GatewayContext, allowAdmin: Bool) async throws -> (PlaylistView, UUID) {
        let user = try self.content.activeUser(context)
        let view = try await self.visible(id, context, forWrite: true)
        guard view.ownerId == user.id.lowercasedString || (allowAdmin && user.admin) else {
            throw APIError.forbidden("only the owner can change this playlist")
        }
        try await self.content.requireNotSuspended(user.id, context)
        return (view, user.id)
    }

    func update(_ request: Request, context: GatewayContext) async throws -> Response {
        let id = try ContentContext.pathID(context, what: "playlist")
        let body = try await JSONBody.decode(UpdateBody.self, from: request, limit: self.bodyLimit)
        let title = try body.title.map(Self.validTitle)
        let description = try body.description.map { try Self.validDescription($0) }
        let (_, user) = try await self.owned(id, context, allowAdmin: false)
        guard let row = try await self.content.query("""
            WITH p AS (UPDATE playlists SET title = coalesce(\(title), title), description = coalesce(\(description), description),
                                            is_public = coalesce(\(body.public), is_public), updated_at = now()
                       WHERE id = \(id) RETURNING *)
            SELECT \(unsafeRaw: Self.columns) FROM p
            """, context).first else { throw APIError.notFound("playlist") }
        let view = try Self.view(row)
        await self.content.wrote(user, context)
        await self.content.audit("playlist_updated", user: user, context, ["playlistId": view.id, "public": String(view.public)])
        return JSONResponse.make(.ok, view)
    }

    func delete(_ request: Request, context: GatewayContext) async throws -> Response {
        let id = try ContentContext.pathID(context, what: "playlist")
        let (view, user) = try await self.owned(id, context, allowAdmin: true)
        try await self.content.query("DELETE FROM playlists WHERE id = \(id)", context)
        await self.content.wrote(user, context)
        await self.content.audit("playlist_deleted", user: user, context, ["playlistId": view.id, "ownerId": view.ownerId])
        return Response(status: .noContent)
    }

    struct EntryView: Encodable, Sendable {
        var position: Int
        var addedAt: Date
        var video: VideoRoutes.VideoView
    }

    /// `GET /api/playlists/{id}/videos`: in playlist order, paged.
    func videos(_ request: Request, context: GatewayContext) async throws -> Response {
        let id = try ContentContext.pathID(context, what: "playlist")
        let page = try Page(request, parts: 2)
        _ = try await self.visible(id, context)
        var binds: [(any PostgresBindable)?] = [id]
        var sql = "SELECT pv.position, pv.added_at, \(VideoRoutes.columns) FROM playlist_videos pv JOIN videos v ON v.id = pv.video_id WHERE pv.playlist_id = $1"
        if let (position, video) = try page.after({ Int64($0) }, { UUID(text: $0) }) {
            binds += [position, video]
            sql += " AND (pv.position, pv.video_id) > ($2, $3)"
        }
        sql += " ORDER BY pv.position, pv.video_id LIMIT \(page.limit + 1)"
        let fresh = await self.content.wroteRecently(context.callerID, context)
        let rows = try await self.content.read(PostgresQuery(unsafeSQL: sql, binds: binds), context, primaryOnly: fresh).0.rows
        let (pageRows, next) = page.slice(rows) { [(try? $0.decode("position", as: String.self)) ?? "", (try? $0.decode("id", as: String.self)) ?? ""] }
        let items = try pageRows.map { row in
            EntryView(position: try row.decode("position"), addedAt: try row.decode("added_at"), video: try VideoRoutes.view(row))
        }
        return JSONResponse.make(.ok, PageBody(items: items, nextCursor: next))
    }

    /// `PUT /api/playlists/{id}/videos/{videoId}`: appends the video (already there: unchanged).
    func addVideo(_ request: Request, context: GatewayContext) async throws -> Response {
        let id = try ContentContext.pathID(context, what: "playlist")
        let video = try ContentContext.pathID(context, "videoId", what: "video")
        let (_, user) = try await self.owned(id, context, allowAdmin: false)
        let result = try await self.content.query("""
            INSERT INTO playlist_videos (playlist_id, video_id, position)
            SELECT \(id), v.id, coalesce((SELECT max(position) FROM playlist_videos WHERE playlist_id = \(id)), 0) + 1
            FROM videos v WHERE v.id = \(video)
            ON CONFLICT (playlist_id, video_id) DO NOTHING
            """, context)
        if result.affectedRows == 0 {
            guard try await self.content.query("SELECT 1 FROM videos WHERE id = \(video)", context).first != nil else {
                throw APIError.notFound("video")
            }
            return Response(status: .noContent)
        }
        try await self.content.query("UPDATE playlists SET updated_at = now() WHERE id = \(id)", context)
        await self.content.wrote(user, context)
        await self.content.audit("playlist_video_added", user: user, context,
                                 ["playlistId": id.lowercasedString, "videoId": video.lowercasedString])
        return Response(status: .noContent)
    }

    func removeVideo(_ request: Request, context: GatewayContext) async throws -> Response {
        let id = try ContentContext.pathID(context, what: "playlist")
        let video = try ContentContext.pathID(context, "videoId", what: "video")
        let (_, user) = try await self.owned(id, context, allowAdmin: false)
        let result = try await self.content.query("DELETE FROM playlist_videos WHERE playlist_id = \(id) AND video_id = \(video)", context)
        guard result.affectedRows > 0 else { throw APIError.notFound("video in this playlist") }
        await self.content.wrote(user, context)
        await self.content.audit("playlist_video_removed", user: user, context,
                                 ["playlistId": id.lowercasedString, "videoId": video.lowercasedString])
        return Response(status: .noContent)
    }
}
