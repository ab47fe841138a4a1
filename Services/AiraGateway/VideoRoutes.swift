import AiraContracts
import AiraCore
import AiraMessaging
import AiraPostgres
import Foundation
import HTTPTypes
import Hummingbird
import NIOCore
import NIOFileSystem

/// `/api/videos`: uploads streamed to disk under the media folder (size-limited, type sniffed
/// from the content), a `processing` row, and a `thumbnail.generate` job for
/// aira-thumbnail-worker; reads, thumbnails, plays and likes.
struct VideoRoutes: Sendable {
    let content: ContentContext
    let mediaRoot: String
    let maxUploadBytes: Int
    private let fileIO = FileIO()

    init(content: ContentContext, mediaRoot: String, maxUploadBytes: Int) {
        self.content = content
        self.mediaRoot = mediaRoot
        self.maxUploadBytes = maxUploadBytes
    }

    struct VideoView: Encodable, Sendable {
        var id: String
        var ownerId: String
        var title: String
        var mediaType: String
        var sizeBytes: Int
        var status: String
        var failureReason: String?
        var thumbnailUrl: String?
        var plays: Int
        var likes: Int
        var createdAt: Date
    }

    /// Columns of a ``VideoView``, for `FROM videos v`.
    static let columns = "v.id, v.owner_id, v.title, v.media_type, v.size_bytes, v.status, v.failure_reason, v.play_count, v.like_count, v.created_at"

    static func view(_ row: PostgresRow) throws -> VideoView {
        let id: String = try row.decode("id")
        let status: String = try row.decode("status")
        return VideoView(id: id, ownerId: try row.decode("owner_id"), title: try row.decode("title"),
                         mediaType: try row.decode("media_type"), sizeBytes: try row.decode("size_bytes"), status: status,
                         failureReason: try row.decodeOptional("failure_reason"),
                         thumbnailUrl: status == "ready" ? "/api/videos/\(id)/thumbnail" : nil,
                         plays: try row.decode("play_count"), likes: try row.decode("like_count"), createdAt: try row.decode("created_at"))
    }

    /// `GET /api/videos?owner=me&limit=&cursor=`: the caller's own videos, newest first (what the
    /// web app offers to add to a playlist). Only `owner=me`: other people's videos are reached
    /// through their public playlists.
    func mine(_ request: Request, context: GatewayContext) async throws -> Response {
        let user = try AuthRoutes.userID(try context.user())
        guard request.uri.queryParameters.get("owner") ?? "me" == "me" else {
            throw APIError.badRequest("invalid_request", "'owner' must be 'me'")
        }
        let page = try Page(request, parts: 2)
        var sql = "SELECT \(Self.columns), (extract(epoch FROM v.created_at) * 1000000)::bigint AS created_us FROM videos v WHERE v.owner_id = $1"
        var binds: [(any PostgresBindable)?] = [user]
        if let (us, id) = try page.after({ Int64($0) }, { UUID(text: $0) }) {
            binds += [us, id]
            sql += " AND (v.created_at, v.id) < ('epoch'::timestamptz + $2 * interval '1 microsecond', $3)"
        }
        sql += " ORDER BY v.created_at DESC, v.id DESC LIMIT \(page.limit + 1)"
        let rows = try await self.content.query(PostgresQuery(unsafeSQL: sql, binds: binds), context).rows
        let (pageRows, next) = page.slice(rows) { [(try? $0.decode("created_us", as: String.self)) ?? "", (try? $0.decode("id", as: String.self)) ?? ""] }
        return JSONResponse.make(.ok, PageBody(items: try pageRows.map(Self.view), nextCursor: next))
    }

    /// `POST /api/videos?title=…` with the file as the body (any Content-Type: the type is
    /// sniffed). 413 past the size limit, 415 for anything but a supported image or video.
    func upload(_ request: Request, context: GatewayContext) async throws -> Response {
        let user = try self.content.activeUser(context)
        let title = try PlaylistRoutes.validTitle(request.uri.queryParameters.get("title") ?? "Untitled")
        if let length = request.headers[.contentLength].flatMap(Int.init) {
            guard length <= self.maxUploadBytes else { throw Self.tooLarge(self.maxUploadBytes) }
            guard length > 0 else { throw APIError.badRequest("empty_upload", "the body is empty: send the file as the request body") }
        }
        try await self.content.requireNotSuspended(user.id, context)

        let id = UUID()
        let relative = ThumbnailJob.uploadPath(for: id)
        let final = "\(self.mediaRoot)/\(relative)"
        let partial = final + ".part"
        let meter = UploadMeter(limit: self.maxUploadBytes)
        do {
            try await FileSystem.shared.createDirectory(at: FilePath("\(self.mediaRoot)/uploads"), withIntermediateDirectories: true)
            try await self.fileIO.writeFile(contents: request.body.map { try meter.pass($0) }, path: partial, context: context)
            guard meter.total > 0 else { throw APIError.badRequest("empty_upload", "the body is empty: send the file as the request body") }
            guard let type = meter.mediaType ?? MediaType.sniff(meter.head) else { throw Self.unsupported }
            try await FileSystem.shared.moveItem(at: FilePath(partial), to: FilePath(final))
            meter.mediaType = type
        } catch {
            _ = try? await FileSystem.shared.removeItem(at: FilePath(partial))
            // The file writer wraps what the body stream threw: the meter knows why it stopped.
            if let rejection = meter.rejection { throw rejection }
            if error is APIError { throw error }
            if Self.outOfSpace(error) {
                context.logger.error("media volume full: upload refused", metadata: [LogKey.error: "\(error)", "bytes": "\(meter.total)"])
                throw Self.insufficientStorage
            }
            context.logger.warning("upload failed", metadata: [LogKey.error: "\(error)"])
            throw APIError(status: .badRequest, code: "upload_failed", message: "the upload did not complete")
        }
        let mediaType = meter.mediaType ?? "application/octet-stream"

        let row: PostgresRow
        do {
            guard let r = try await self.content.query("""
                WITH v AS (INSERT INTO videos (id, owner_id, title, media_type, size_bytes)
                           VALUES (\(id), \(user.id), \(title), \(mediaType), \(meter.total)) RETURNING *)
                SELECT \(unsafeRaw: Self.columns) FROM v
                """, context).first else { throw APIError.unavailable("the video was not stored, try again") }
            row = r
            try await self.content.publisher.publish(ThumbnailJob(videoId: id, ownerId: user.id, sourcePath: relative, mediaType: mediaType),
                                                     routingKey: ThumbnailJob.routingKey, correlationID: context.requestID,
                                                     traceparent: context.traceparent)
        } catch {
            // Without its job the video would stay `processing` forever: undo, and say so.
            _ = try? await self.content.database.query("DELETE FROM videos WHERE id = \(id)")
            _ = try? await FileSystem.shared.removeItem(at: FilePath(final))
            if let apiError = error as? APIError { throw apiError }
            context.logger.error("upload not queued for processing", metadata: [LogKey.error: "\(error)"])
            throw APIError.unavailable("the upload could not be queued for processing, try again", retryAfter: 5)
        }
        let view = try Self.view(row)
        await self.content.audit("video_uploaded", user: user.id, context,
                                 ["videoId": view.id, "mediaType": mediaType, "sizeBytes": String(meter.total), "title": title])
        var response = JSONResponse.make(.created, view)
        response.headers[.location] = "/api/videos/\(view.id)"
        return response
    }

    static func tooLarge(_ limit: Int) -> APIError {
        APIError(status: .contentTooLarge, code: "payload_too_large", message: "the upload is larger than \(limit) bytes")
    }

    static let unsupported = APIError(status: .unsupportedMediaType, code: "unsupported_media_type",
                                      message: "the content is not a supported image or video (\(MediaType.accepted))")

    /// The media volume is full (or its quota used up): the server's condition, not the client's
    /// mistake. Nothing of the upload is kept; the client may try again later.
    static let insufficientStorage = APIError(status: .init(code: 507, reasonPhrase: "Insufficient Storage"), code: "insufficient_storage",
                                              message: "the media storage is full: the upload was not stored; try again later",
                                              headers: [.retryAfter: "60"])

    /// Whether `error` (or what it wraps) is ENOSPC or EDQUOT from a system call.
    static func outOfSpace(_ error: any Error) -> Bool {
        var next: (any Error)? = error
        while let current = next {
            if let io = current as? IOError { return io.errnoCode == ENOSPC || io.errnoCode == EDQUOT }
            guard let fileSystemError = current as? FileSystemError else { return false }
            if let call = fileSystemError.cause as? FileSystemError.SystemCallError {
                return call.errno.rawValue == ENOSPC || call.errno.rawValue == EDQUOT
            }
            next = fileSystemError.cause
        }
        return false
    }

    func get(_ request: Request, context: GatewayContext) async throws -> Response {
        let id = try ContentContext.pathID(context, what: "video")
        guard let row = try await self.content.query("SELECT \(unsafeRaw: Self.columns) FROM videos v WHERE v.id = \(id)", context).first else {
            throw APIError.notFound("video")
        }
        return JSONResponse.make(.ok, try Self.view(row))
    }

    func thumbnail(_ request: Request, context: GatewayContext) async throws -> Response {
        let id = try ContentContext.pathID(context, what: "video")
        guard let row = try await self.content.query("SELECT thumbnail_path FROM videos WHERE id = \(id) AND status = 'ready'", context).first,
              let path: String = try row.decodeOptional("thumbnail_path") else {
            throw APIError.notFound("thumbnail")
        }
        let body: ResponseBody
        do {
            body = try await self.fileIO.loadFile(path: "\(self.mediaRoot)/\(path)", context: context)
        } catch {
            throw APIError.notFound("thumbnail")
        }
        return Response(status: .ok, headers: [.contentType: "image/jpeg", .cacheControl: "public, max-age=300"], body: body)
    }

    /// `GET /api/videos/{id}/media`: the uploaded file itself, for the player. Honours a single
    /// `Range: bytes=a-b` (206) so a browser can seek without loading the whole file.
    func media(_ request: Request, context: GatewayContext) async throws -> Response {
        let id = try ContentContext.pathID(context, what: "video")
        guard let row = try await self.content.query("SELECT media_type, size_bytes FROM videos WHERE id = \(id)", context).first else {
            throw APIError.notFound("video")
        }
        let type: String = try row.decode("media_type")
        let size: Int = try row.decode("size_bytes")
        let path = "\(self.mediaRoot)/\(ThumbnailJob.uploadPath(for: id))"
        var headers: HTTPFields = [.contentType: type, .acceptRanges: "bytes", .cacheControl: "private, max-age=300"]
        if let range = request.headers[.range].flatMap({ Self.byteRange($0, size: size) }) {
            let body: ResponseBody
            do { body = try await self.fileIO.loadFile(path: path, range: range, context: context) } catch { throw APIError.notFound("video file") }
            headers[.contentRange] = "bytes \(range.lowerBound)-\(range.upperBound)/\(size)"
            headers[.contentLength] = String(range.count)
            return Response(status: .partialContent, headers: headers, body: body)
        }
        let body: ResponseBody
        do { body = try await self.fileIO.loadFile(path: path, context: context) } catch { throw APIError.notFound("video file") }
        headers[.contentLength] = String(size)
        return Response(status: .ok, headers: headers, body: body)
    }

    /// `bytes=a-b`, `bytes=a-` or `bytes=-n` within a file of `size` bytes; nil for anything else.
    static func byteRange(_ header: String, size: Int) -> ClosedRange<Int>? {
        guard size > 0, header.hasPrefix("bytes="), !header.contains(",") else { return nil }
        let parts = header.dropFirst(6).split(separator: "-", maxSplits: 1, omittingEmptySubsequences: false)
        guard parts.count == 2 else { return nil }
        if parts[0].isEmpty {
            guard let n = Int(parts[1]), n > 0 else { return nil }
            return max(0, size - n)...(size - 1)
        }
        guard let start = Int(parts[0]), start < size else { return nil }
        let end = parts[1].isEmpty ? size - 1 : min(Int(parts[1]) ?? -1, size - 1)
        return end >= start ? start...end : nil
    }

    struct Counts: Encodable, Sendable {
        var plays: Int?
        var likes: Int?
        var liked: Bool?
    }

    /// `POST /api/videos/{id}/play`: counts a play (anyone; the audit event names the user when known).
    func play(_ request: Request, context: GatewayContext) async throws -> Response {
        let id = try ContentContext.pathID(context, what: "video")
        guard let row = try await self.content.query(
            "UPDATE videos SET play_count = play_count + 1 WHERE id = \(id) RETURNING play_count", context).first else {
            throw APIError.notFound("video")
        }
        await self.content.audit("video_played", user: context.callerID, context, ["videoId": id.lowercasedString])
        return JSONResponse.make(.ok, Counts(plays: try row.decode("play_count")))
    }

    /// `PUT /api/videos/{id}/like` and `DELETE …/like`: idempotent; the count moves only on a change.
    func like(_ liked: Bool) -> @Sendable (Request, GatewayContext) async throws -> Response {
        { request, context in
            let id = try ContentContext.pathID(context, what: "video")
            let user = try self.content.activeUser(context)
            try await self.content.requireNotSuspended(user.id, context)
            guard let result = try await self.content.setLike(liked, item: id, user: user.id, table: "videos", likes: "video_likes",
                                                               itemColumn: "video_id", context) else { throw APIError.notFound("video") }
            if result.changed {
                await self.content.audit(liked ? "video_liked" : "video_unliked", user: user.id, context, ["videoId": id.lowercasedString])
            }
            return JSONResponse.make(.ok, Counts(likes: result.likes, liked: liked))
        }
    }
}

/// Counts upload bytes against the limit and keeps the first ones for sniffing: rejects (415)
/// as soon as enough has arrived to tell the type, and (413) as soon as the limit is passed,
/// without reading the rest. Used by one body stream at a time.
final class UploadMeter: @unchecked Sendable {
    let limit: Int
    private(set) var total = 0
    private(set) var head: [UInt8] = []
    var mediaType: String?
    /// Why the upload was refused mid-stream (413 or 415).
    private(set) var rejection: APIError?

    init(limit: Int) { self.limit = limit }

    func pass(_ buffer: ByteBuffer) throws -> ByteBuffer {
        self.total += buffer.readableBytes
        guard self.total <= self.limit else { throw self.reject(VideoRoutes.tooLarge(self.limit)) }
        if self.mediaType == nil && self.head.count < MediaType.sniffLength {
            self.head += buffer.readableBytesView.prefix(MediaType.sniffLength - self.head.count)
            if self.head.count >= MediaType.sniffLength {
                guard let type = MediaType.sniff(self.head) else { throw self.reject(VideoRoutes.unsupported) }
                self.mediaType = type
            }
        }
        return buffer
    }

    private func reject(_ error: APIError) -> APIError {
        self.rejection = error
        return error
    }
}
