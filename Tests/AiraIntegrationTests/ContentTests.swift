import AiraAMQP
import AiraMessaging
import AiraPostgres
import AsyncHTTPClient
import Foundation
import NIOCore
import Testing

/// The content API through a real gateway, with aira-thumbnail-worker and aira-audit-writer
/// running as processes, real ffmpeg, and the real servers.
@Suite("Content API, thumbnails and the audit log", .serialized, .enabled(if: TestServers.available))
struct ContentTests {
    /// A stack with the workers, uploads in a media folder of the test's own.
    static func withContentStack(uploadLimit: Int = 2 << 20, thumbnails: Bool = true,
                                 _ body: (ServiceStack, URL) async throws -> Void) async throws {
        let media = FileManager.default.temporaryDirectory.appendingPathComponent("aira-media-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: media, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: media) }
        try await ServiceStack.with(environment: ["AIRA_MEDIA_DIR": media.path, "AIRA_MAX_UPLOAD_BYTES": "\(uploadLimit)",
                                                  "AIRA_RATE_LIMIT_WRITE": "1000/1m", "AIRA_RATE_LIMIT_WRITE_IP": "1000/1m",
                                                  "AIRA_RATE_LIMIT_READ": "5000/1m", "AIRA_RATE_LIMIT_READ_IP": "5000/1m"]) { stack in
            if thumbnails {
                try stack.startWorker("aira-thumbnail-worker", name: "thumbs",
                                      environment: ["AIRA_RETRY_TIERS": "200ms", "AIRA_MAX_ATTEMPTS": "3"])
            }
            try stack.startWorker("aira-audit-writer", name: "audit", environment: ["AIRA_AUDIT_BATCH_DELAY": "20ms"])
            try await body(stack, media)
        }
    }

    static func user(_ stack: ServiceStack, _ prefix: String) async throws -> ServiceStack.Session {
        let u = try await stack.signup(prefix)
        return try await stack.login(u.email, u.password)
    }

    @Test("playlist access: anonymous, other user, owner and admin × read public/private, update, delete")
    func accessMatrix() async throws {
        try await Self.withContentStack { stack, _ in
            let owner = try await Self.user(stack, "owner")
            let other = try await Self.user(stack, "other")
            let adminAccount = try await stack.createAdmin()
            let admin = try await stack.login(adminAccount.email, adminAccount.password)

            func create(_ title: String, public isPublic: Bool) async throws -> String {
                let r = try await stack.call("POST", "/api/playlists", json: ["title": title, "public": isPublic], token: owner.access)
                try #require(r.status == 201, "create: \(r)")
                #expect(r.headers.first(name: "Location") == "/api/playlists/\(r["id"]!)")
                return r["id"]!
            }
            let pub = try await create("Public list", public: true)
            let priv = try await create("Private list", public: false)

            // Reads.
            let reads: [(String, String?, Int, Int)] = [
                ("anonymous", nil, 200, 404), ("other user", other.access, 200, 404),
                ("owner", owner.access, 200, 200), ("admin", admin.access, 200, 200),
            ]
            for (who, token, expectPublic, expectPrivate) in reads {
                let a = try await stack.call("GET", "/api/playlists/\(pub)", token: token)
                let b = try await stack.call("GET", "/api/playlists/\(priv)", token: token)
                #expect(a.status == expectPublic, "\(who) reads the public playlist: \(a)")
                #expect(b.status == expectPrivate, "\(who) reads the private playlist: \(b)")
                if b.status == 404 { #expect(b.errorCode == "not_found") }
            }
            // A private playlist and one that never existed look the same to outsiders.
            let missing = try await stack.call("GET", "/api/playlists/\(UUID().uuidString.lowercased())", token: other.access)
            let hidden = try await stack.call("GET", "/api/playlists/\(priv)", token: other.access)
            #expect(missing.status == hidden.status && missing.errorMessage == hidden.errorMessage)

            // Updates: only the owner; outsiders get 404 for the private one, 403 for the visible one.
            let updates: [(String, String?, Int, Int)] = [
                ("anonymous", nil, 401, 401), ("other user", other.access, 403, 404),
                ("admin", admin.access, 403, 403), ("owner", owner.access, 200, 200),
            ]
            for (who, token, expectPublic, expectPrivate) in updates {
                let a = try await stack.call("PATCH", "/api/playlists/\(pub)", json: ["title": "by \(who)"], token: token)
                let b = try await stack.call("PATCH", "/api/playlists/\(priv)", json: ["description": "by \(who)"], token: token)
                #expect(a.status == expectPublic, "\(who) updates the public playlist: \(a)")
                #expect(b.status == expectPrivate, "\(who) updates the private playlist: \(b)")
            }
            let updated = try await stack.call("GET", "/api/playlists/\(pub)", token: owner.access)
            #expect(updated["title"] == "by owner")

            // Deletes: anonymous 401, other 403/404, then admin deletes the public one, owner the private one.
            #expect(try await stack.call("DELETE", "/api/playlists/\(pub)").status == 401)
            #expect(try await stack.call("DELETE", "/api/playlists/\(pub)", token: other.access).status == 403)
            #expect(try await stack.call("DELETE", "/api/playlists/\(priv)", token: other.access).status == 404)
            #expect(try await stack.call("DELETE", "/api/playlists/\(pub)", token: admin.access).status == 204)
            #expect(try await stack.call("DELETE", "/api/playlists/\(priv)", token: owner.access).status == 204)
            #expect(try await stack.call("GET", "/api/playlists/\(pub)", token: owner.access).status == 404)
            #expect(try await stack.call("GET", "/api/playlists/\(priv)", token: owner.access).status == 404)

            // Bad input: a clear 400, never a 500.
            #expect(try await stack.call("POST", "/api/playlists", json: ["title": "  "], token: owner.access).status == 400)
            #expect(try await stack.call("POST", "/api/playlists", rawBody: Array("{nope".utf8), contentType: "application/json",
                                         token: owner.access).errorCode == "malformed_json")
            #expect(try await stack.call("GET", "/api/playlists?cursor=garbage!!").status == 400)
            #expect(try await stack.call("GET", "/api/playlists?limit=1000").status == 400)
        }
    }

    @Test("lists are paged by cursor; others see only public playlists")
    func paging() async throws {
        try await Self.withContentStack { stack, _ in
            let owner = try await Self.user(stack, "pager")
            var created: [String] = []
            for i in 0..<7 {
                let r = try await stack.call("POST", "/api/playlists", json: ["title": "list \(i)", "public": i % 2 == 0], token: owner.access)
                try #require(r.status == 201)
                created.append(r["id"]!)
            }
            func all(_ path: String, token: String?) async throws -> [String] {
                var ids: [String] = []
                var cursor: String?
                for _ in 0..<20 {
                    let r = try await stack.call("GET", path + "&limit=3" + (cursor.map { "&cursor=\($0)" } ?? ""), token: token)
                    try #require(r.status == 200, "\(r)")
                    ids += (r.json["items"] as? [[String: Any]] ?? []).compactMap { $0["id"] as? String }
                    cursor = r.json["nextCursor"] as? String
                    if cursor == nil { break }
                }
                return ids
            }
            let mine = try await all("/api/playlists?owner=me", token: owner.access)
            #expect(mine == created.reversed(), "newest first, each once")
            let seen = try await all("/api/playlists?owner=\(owner.userID)", token: nil)
            #expect(seen == created.enumerated().filter { $0.offset % 2 == 0 }.map(\.element).reversed())
        }
    }

    @Test("upload a video and an image: thumbnails appear as 320-px-wide JPEGs; plays, likes and playlists")
    func uploadAndThumbnail() async throws {
        try await Self.withContentStack { stack, media in
            let owner = try await Self.user(stack, "uploader")
            let other = try await Self.user(stack, "fan")
            let video = try Self.makeMedia("testsrc=size=640x360:rate=25", duration: "2", file: "clip.mp4")
            let image = try Self.makeMedia("testsrc=size=800x600", duration: nil, file: "picture.png")
            var ids: [String] = []
            for (file, title, type) in [(video, "My clip", "video/mp4"), (image, "My picture", "image/png")] {
                // The Content-Type the client claims is ignored: the content decides.
                let r = try await stack.call("POST", "/api/videos?title=\(title.replacingOccurrences(of: " ", with: "%20"))",
                                             rawBody: Array(try Data(contentsOf: file)), contentType: "text/plain", token: owner.access)
                try #require(r.status == 201, "upload: \(r)")
                #expect(r["status"] == "processing")
                #expect(r["mediaType"] == type)
                #expect(r["title"] == title)
                ids.append(r["id"]!)
            }
            for id in ids {
                var last: ServiceStack.Reply?
                let ready = await eventually(timeout: .seconds(60), every: .milliseconds(200)) {
                    last = try? await stack.call("GET", "/api/videos/\(id)")
                    return last?["status"] == "ready"
                }
                try #require(ready, "video \(id) never became ready: \(String(describing: last))\n\(stack.workers[0].process.log.suffix(3000))")
                #expect(last?["thumbnailUrl"] == "/api/videos/\(id)/thumbnail")
                let thumb = try await stack.call("GET", "/api/videos/\(id)/thumbnail")
                #expect(thumb.status == 200)
                #expect(thumb.headers.first(name: "Content-Type") == "image/jpeg")
                #expect(Self.jpegSize(thumb.body)?.width == 320, "thumbnail size \(String(describing: Self.jpegSize(thumb.body)))")
            }
            // Once both are ready (not while the other is still being made): each written once, to
            // its fixed path, with no temporary files left behind.
            let dir = try FileManager.default.contentsOfDirectory(atPath: media.appendingPathComponent("thumbnails").path)
            #expect(dir.filter { $0.hasPrefix(".") }.isEmpty, "\(dir)")
            for id in ids { #expect(dir.contains("\(id).jpg"), "\(dir)") }

            // Plays (anyone) and likes (idempotent).
            #expect(try await stack.call("POST", "/api/videos/\(ids[0])/play").json["plays"] as? Int == 1)
            #expect(try await stack.call("POST", "/api/videos/\(ids[0])/play", token: other.access).json["plays"] as? Int == 2)
            #expect(try await stack.call("PUT", "/api/videos/\(ids[0])/like", token: other.access).json["likes"] as? Int == 1)
            #expect(try await stack.call("PUT", "/api/videos/\(ids[0])/like", token: other.access).json["likes"] as? Int == 1)
            #expect(try await stack.call("PUT", "/api/videos/\(ids[0])/like", token: owner.access).json["likes"] as? Int == 2)
            #expect(try await stack.call("DELETE", "/api/videos/\(ids[0])/like", token: other.access).json["likes"] as? Int == 1)
            #expect(try await stack.call("PUT", "/api/videos/\(ids[0])/like").status == 401)
            #expect(try await stack.call("POST", "/api/videos/\(UUID().uuidString)/play").status == 404)

            // Into a playlist, in order; only the owner adds.
            let list = try await stack.call("POST", "/api/playlists", json: ["title": "Uploads", "public": true], token: owner.access)["id"]!
            for id in ids.reversed() {
                #expect(try await stack.call("PUT", "/api/playlists/\(list)/videos/\(id)", token: owner.access).status == 204)
            }
            #expect(try await stack.call("PUT", "/api/playlists/\(list)/videos/\(ids[0])", token: owner.access).status == 204)
            #expect(try await stack.call("PUT", "/api/playlists/\(list)/videos/\(ids[0])", token: other.access).status == 403)
            #expect(try await stack.call("PUT", "/api/playlists/\(list)/videos/\(UUID().uuidString)", token: owner.access).status == 404)
            let entries = try await stack.call("GET", "/api/playlists/\(list)/videos")
            let order = (entries.json["items"] as? [[String: Any]] ?? []).compactMap { ($0["video"] as? [String: Any])?["id"] as? String }
            #expect(order == ids.reversed())
            #expect(try await stack.call("GET", "/api/playlists/\(list)", token: nil).json["videoCount"] as? Int == 2)
            #expect(try await stack.call("DELETE", "/api/playlists/\(list)/videos/\(ids[1])", token: owner.access).status == 204)
            #expect(try await stack.call("GET", "/api/playlists/\(list)", token: nil).json["videoCount"] as? Int == 1)
        }
    }

    @Test("a corrupt upload ends failed with ffmpeg's reason and its job in the DLQ; oversize 413, wrong type 415")
    func badUploads() async throws {
        try await Self.withContentStack(uploadLimit: 1 << 20) { stack, media in
            let owner = try await Self.user(stack, "corrupt")
            // Looks like an MP4 (passes sniffing), is not one.
            var corrupt: [UInt8] = [0, 0, 0, 0x18] + Array("ftypmp42".utf8) + Array(repeating: 0, count: 12)
            corrupt += (0..<20_000).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ 7) }
            let r = try await stack.call("POST", "/api/videos?title=broken", rawBody: corrupt, token: owner.access)
            try #require(r.status == 201, "\(r)")
            let id = r["id"]!
            var last: ServiceStack.Reply?
            let failed = await eventually(timeout: .seconds(30), every: .milliseconds(200)) {
                last = try? await stack.call("GET", "/api/videos/\(id)")
                return last?["status"] == "failed"
            }
            try #require(failed, "\(String(describing: last))")
            let reason = try #require(last?["failureReason"])
            #expect(reason.contains("Invalid data") || reason.contains("moov atom"), "\(reason)")
            #expect(!reason.contains(media.path), "the reason names the upload, not the server's folders")
            #expect(try await stack.call("GET", "/api/videos/\(id)/thumbnail").status == 404)

            // The job is in thumbnail.generate.dlq, with why.
            let letter = try #require(try await takeDeadLetter(from: "thumbnail.generate.dlq", timeout: .seconds(10)) { $0.bodyText.contains(id) })
            #expect(letter.errorType == "unreadable_media")
            #expect(letter.error?.contains("ffmpeg") == true)

            // Too large: refused from Content-Length, and mid-stream when the client sends none.
            let big = [UInt8](repeating: 0xFF, count: (1 << 20) + 10)
            let tooLarge = try await stack.call("POST", "/api/videos", rawBody: [0xFF, 0xD8, 0xFF] + big, token: owner.access)
            #expect(tooLarge.status == 413 && tooLarge.errorCode == "payload_too_large", "\(tooLarge)")
            let streamed = try await Self.streamUpload(stack, token: owner.access, chunks: 20, chunk: [0xFF, 0xD8, 0xFF] + [UInt8](repeating: 1, count: 100_000))
            #expect(streamed == 413)
            // Not an image or video, whatever it claims to be.
            let text = try await stack.call("POST", "/api/videos?title=notes", rawBody: Array(String(repeating: "hello ", count: 100).utf8),
                                            contentType: "video/mp4", token: owner.access)
            #expect(text.status == 415 && text.errorCode == "unsupported_media_type", "\(text)")
            #expect(try await stack.call("POST", "/api/videos", rawBody: [], token: owner.access).status == 400)
            #expect(try await stack.call("POST", "/api/videos", rawBody: corrupt).status == 401)
            // Nothing of the refused uploads stays on disk.
            let uploads = try FileManager.default.contentsOfDirectory(atPath: media.appendingPathComponent("uploads").path)
            #expect(uploads == [id], "\(uploads)")
        }
    }

    @Test("user actions reach the audit log; admins filter and page it")
    func auditLog() async throws {
        try await Self.withContentStack { stack, _ in
            let owner = try await Self.user(stack, "audited")
            let adminAccount = try await stack.createAdmin()
            let admin = try await stack.login(adminAccount.email, adminAccount.password)
            let list = try await stack.call("POST", "/api/playlists", json: ["title": "Audited"], token: owner.access)["id"]!
            #expect(try await stack.call("PATCH", "/api/playlists/\(list)", json: ["public": true], token: owner.access).status == 200)
            #expect(try await stack.call("DELETE", "/api/playlists/\(list)", token: owner.access).status == 204)

            var types: [String] = []
            let arrived = await eventually(timeout: .seconds(20), every: .milliseconds(200)) {
                let r = try? await stack.call("GET", "/api/admin/audit?userId=\(owner.userID)&limit=100", token: admin.access)
                types = (r?.json["items"] as? [[String: Any]] ?? []).compactMap { $0["type"] as? String }
                return types.contains("playlist_deleted")
            }
            try #require(arrived, "audit entries: \(types)")
            // Newest first; auth's own events (signup, login) are there too.
            #expect(Array(types.prefix(3)) == ["playlist_deleted", "playlist_updated", "playlist_created"])
            #expect(types.contains("login") && types.contains("signup"))

            let filtered = try await stack.call("GET", "/api/admin/audit?userId=\(owner.userID)&type=playlist_updated", token: admin.access)
            let items = filtered.json["items"] as? [[String: Any]] ?? []
            #expect(items.count == 1)
            #expect((items.first?["attributes"] as? [String: String])?["playlistId"] == list)
            // Paging through the user's entries one at a time gives each once.
            var paged: [String] = []
            var cursor: String?
            for _ in 0..<50 {
                let r = try await stack.call("GET", "/api/admin/audit?userId=\(owner.userID)&limit=1" + (cursor.map { "&cursor=\($0)" } ?? ""),
                                             token: admin.access)
                paged += (r.json["items"] as? [[String: Any]] ?? []).compactMap { $0["type"] as? String }
                cursor = r.json["nextCursor"] as? String
                if cursor == nil { break }
            }
            #expect(paged == types)
            let future = try await stack.call("GET", "/api/admin/audit?userId=\(owner.userID)&from=2100-01-01T00:00:00Z", token: admin.access)
            #expect((future.json["items"] as? [Any])?.isEmpty == true)

            #expect(try await stack.call("GET", "/api/admin/audit", token: owner.access).status == 403)
            #expect(try await stack.call("GET", "/api/admin/audit").status == 401)
            #expect(try await stack.call("GET", "/api/admin/audit?from=yesterday", token: admin.access).status == 400)
            #expect(try await stack.call("GET", "/api/admin/audit?userId=42", token: admin.access).status == 400)
        }
    }

    @Test("thumbnail retries: an upload missing on disk (a race) is retried until it appears; an ffmpeg timeout is transient")
    func thumbnailRetries() async throws {
        try await Self.withContentStack(thumbnails: false) { stack, media in
            let owner = try await Self.user(stack, "race")
            let image = try Array(Data(contentsOf: try Self.makeMedia("testsrc=size=400x300", duration: nil, file: "race.png")))

            // The upload is not on disk when the worker first looks (moved away, as if a shared
            // volume lagged): the job is retried, and succeeds once the file is there.
            let r = try await stack.call("POST", "/api/videos?title=race", rawBody: image, token: owner.access)
            try #require(r.status == 201, "\(r)")
            let id = r["id"]!
            let upload = media.appendingPathComponent("uploads/\(id)")
            let aside = media.appendingPathComponent("aside-\(id)")
            try FileManager.default.moveItem(at: upload, to: aside)
            let worker = try stack.startWorker("aira-thumbnail-worker", name: "race",
                                               environment: ["AIRA_RETRY_TIERS": "300ms", "AIRA_MAX_ATTEMPTS": "20"])
            let retried = await eventually(timeout: .seconds(30), every: .milliseconds(100)) {
                worker.process.log.contains("source_missing")
            }
            try #require(retried, "\(worker.process.log.suffix(2000))")
            #expect(try await stack.call("GET", "/api/videos/\(id)")["status"] == "processing")
            try FileManager.default.moveItem(at: aside, to: upload)
            let ready = await eventually(timeout: .seconds(30), every: .milliseconds(200)) {
                (try? await stack.call("GET", "/api/videos/\(id)"))?["status"] == "ready"
            }
            #expect(ready, "\(worker.process.log.suffix(2000))")
            worker.process.terminate()
            _ = await worker.process.waitForExit(timeout: .seconds(15))

            // ffmpeg over its time limit: killed, retried, and after the last attempt dead-lettered
            // as a timeout; the video is not marked failed (the file may be fine).
            let slow = try stack.startWorker("aira-thumbnail-worker", name: "slow", environment: [
                "AIRA_FFMPEG_TIMEOUT": "1ms", "AIRA_RETRY_TIERS": "100ms", "AIRA_MAX_ATTEMPTS": "2"])
            let r2 = try await stack.call("POST", "/api/videos?title=slow", rawBody: image, token: owner.access)
            let id2 = try #require(r2["id"])
            let found = try await takeDeadLetter(from: "thumbnail.generate.dlq", timeout: .seconds(30)) { $0.bodyText.contains(id2) }
            let letter = try #require(found, "\(slow.process.log.suffix(2000))")
            #expect(letter.errorType == "ffmpeg_timeout")
            #expect(letter.attempts == 2)
            #expect(try await stack.call("GET", "/api/videos/\(id2)")["status"] == "processing")
        }
    }

    // MARK: - Helpers

    /// A media file made by ffmpeg from one of its test sources.
    static func makeMedia(_ source: String, duration: String?, file: String) throws -> URL {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("\(UUID().uuidString.prefix(6))-\(file)")
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/ffmpeg")
        p.arguments = ["-nostdin", "-loglevel", "error", "-y", "-f", "lavfi", "-i", source]
            + (duration.map { ["-t", $0, "-pix_fmt", "yuv420p"] } ?? ["-frames:v", "1"]) + [url.path]
        try p.run()
        p.waitUntilExit()
        try #require(p.terminationStatus == 0)
        return url
    }

    /// Width and height from a JPEG's start-of-frame marker; nil if it is not a JPEG.
    static func jpegSize(_ b: [UInt8]) -> (width: Int, height: Int)? {
        guard b.count > 4, b[0] == 0xFF, b[1] == 0xD8 else { return nil }
        var i = 2
        while i + 9 < b.count {
            guard b[i] == 0xFF else { return nil }
            let marker = b[i + 1]
            let length = Int(b[i + 2]) << 8 | Int(b[i + 3])
            if (0xC0...0xCF).contains(marker) && ![0xC4, 0xC8, 0xCC].contains(marker) {
                return (Int(b[i + 7]) << 8 | Int(b[i + 8]), Int(b[i + 5]) << 8 | Int(b[i + 6]))
            }
            i += 2 + length
        }
        return nil
    }

    /// Uploads `chunks` × `chunk` bytes without a Content-Length (chunked); returns the status.
    static func streamUpload(_ stack: ServiceStack, token: String, chunks: Int, chunk: [UInt8]) async throws -> Int {
        var request = HTTPClientRequest(url: "http://127.0.0.1:\(stack.gateways[0].port)/api/videos")
        request.method = .POST
        request.headers.add(name: "Authorization", value: "Bearer \(token)")
        request.headers.add(name: "X-Forwarded-For", value: stack.clientIP)
        let parts = (0..<chunks).map { _ in ByteBuffer(bytes: chunk) }
        request.body = .stream(parts.asyncStream, length: .unknown)
        do {
            let response = try await HTTPClient.shared.execute(request, timeout: .seconds(30))
            return Int(response.status.code)
        } catch {
            // The gateway may answer 413 and close before the client finished sending.
            return 413
        }
    }
}

extension Array where Element: Sendable {
    var asyncStream: AsyncStream<Element> {
        AsyncStream { continuation in
            for element in self { continuation.yield(element) }
            continuation.finish()
        }
    }
}
