import AiraContracts
import AiraLLM
import AiraMessaging
import AiraRedis
import AsyncHTTPClient
import Foundation
import NIOCore
import Testing

/// The gateway's API for the web app, through a real gateway, aira-auth and aira-gpt-proxy as
/// processes and the real servers: browser sessions in cookies, the sessions list,
/// conversations, the quota, the operator endpoints' rules, and the files with their headers.
/// The browser suite (Tests/Web) drives the same endpoints through the pages.
@Suite("Web app API", .serialized, .enabled(if: TestServers.available))
struct WebAPITests {
    static let web = ["X-Aira-Client": "web"]

    /// `name=value` of each Set-Cookie, and its attributes, by cookie name.
    static func cookies(_ reply: ServiceStack.Reply) -> [String: String] {
        var result: [String: String] = [:]
        for header in reply.headers["Set-Cookie"] {
            let name = String(header.prefix { $0 != "=" })
            result[name] = header
        }
        return result
    }

    static func value(_ setCookie: String?) -> String? {
        guard let setCookie, let eq = setCookie.firstIndex(of: "=") else { return nil }
        return String(setCookie[setCookie.index(after: eq)...].prefix { $0 != ";" })
    }

    @Test("browser sessions: refresh token only in an HttpOnly SameSite=Strict cookie; refresh needs X-Aira-Client; reuse clears the cookies")
    func browserSessions() async throws {
        try await ServiceStack.with { stack in
            let (email, password) = try await stack.signup("web")
            let login = try await stack.call("POST", "/api/auth/login", json: ["email": email, "password": password], headers: Self.web)
            #expect(login.status == 200, "\(login)")
            #expect(login.json["refreshToken"] == nil)
            #expect(login.json["accessToken"] is String)
            #expect(login.headers.first(name: "Cache-Control") == "no-store")
            let cookies = Self.cookies(login)
            let refresh = try #require(cookies["aira_refresh"])
            for attribute in ["HttpOnly", "SameSite=Strict", "Path=/api/auth", "Max-Age=2592000"] {
                #expect(refresh.contains(attribute), "\(refresh)")
            }
            #expect(try #require(cookies["aira_session"]).contains("Path=/"))
            #expect(cookies["aira_session"]?.contains("HttpOnly") == false)
            let first = try #require(Self.value(refresh))

            // The cookie alone is not enough: without the header, refresh wants a JSON body.
            let bare = try await stack.call("POST", "/api/auth/refresh", headers: ["Cookie": "aira_refresh=\(first)"])
            #expect(bare.status == 415, "\(bare)")
            let rotated = try await stack.call("POST", "/api/auth/refresh", headers: Self.web.merging(["Cookie": "aira_refresh=\(first)"]) { $1 })
            #expect(rotated.status == 200, "\(rotated)")
            let second = try #require(Self.value(Self.cookies(rotated)["aira_refresh"]))
            #expect(second != first)

            // The old cookie again is reuse: 401 token_reused, and both cookies are cleared.
            let reused = try await stack.call("POST", "/api/auth/refresh", headers: Self.web.merging(["Cookie": "aira_refresh=\(first)"]) { $1 })
            #expect(reused.status == 401 && reused.errorCode == "token_reused", "\(reused)")
            let cleared = Self.cookies(reused)
            #expect(cleared["aira_refresh"]?.contains("Max-Age=0") == true)
            #expect(cleared["aira_session"]?.contains("Max-Age=0") == true)
            let after = try await stack.call("POST", "/api/auth/refresh", headers: Self.web.merging(["Cookie": "aira_refresh=\(second)"]) { $1 })
            #expect(after.status == 401, "the family is revoked: \(after)")
            let none = try await stack.call("POST", "/api/auth/refresh", headers: Self.web)
            #expect(none.status == 401 && none.errorCode == "invalid_token", "\(none)")
        }
    }

    @Test("sessions: listed with device and address, the current one marked; one ended by id; another user's id is a 404")
    func sessions() async throws {
        try await ServiceStack.with { stack in
            let (email, password) = try await stack.signup("sessions")
            let laptop = try await stack.call("POST", "/api/auth/login", json: ["email": email, "password": password],
                                              headers: ["User-Agent": "Laptop/1.0"], ip: "10.0.0.1")
            let phone = try await stack.call("POST", "/api/auth/login", json: ["email": email, "password": password],
                                             headers: ["User-Agent": "Phone/2.0"], ip: "10.0.0.2")
            let laptopToken = try #require(laptop["accessToken"]), phoneToken = try #require(phone["accessToken"])
            let list = try await stack.call("GET", "/api/auth/sessions", token: laptopToken)
            #expect(list.status == 200, "\(list)")
            let items = try #require(list.json["items"] as? [[String: Any]])
            #expect(items.count == 2)
            let current = try #require(items.first { $0["current"] as? Bool == true })
            #expect(current["userAgent"] as? String == "Laptop/1.0")
            #expect(current["ip"] as? String == "10.0.0.1")
            let other = try #require(items.first { $0["current"] as? Bool == false })
            #expect(other["userAgent"] as? String == "Phone/2.0")
            #expect(other["createdAt"] is String && other["lastUsedAt"] is String)

            // Someone else cannot end it.
            let (strangerEmail, strangerPassword) = try await stack.signup("stranger")
            let stranger = try await stack.login(strangerEmail, strangerPassword)
            let otherID = try #require(other["id"] as? String)
            let refused = try await stack.call("DELETE", "/api/auth/sessions/\(otherID)", token: stranger.access)
            #expect(refused.status == 404, "\(refused)")
            let stillTwo = try await stack.call("GET", "/api/auth/sessions", token: phoneToken)
            #expect((stillTwo.json["items"] as? [Any])?.count == 2)

            let ended = try await stack.call("DELETE", "/api/auth/sessions/\(otherID)", token: laptopToken)
            #expect(ended.status == 200 && ended.json["sessionsEnded"] as? Int == 1, "\(ended)")
            #expect(try await stack.call("DELETE", "/api/auth/sessions/\(otherID)", token: laptopToken).status == 404)
            let phoneRefresh = try #require(phone["refreshToken"])
            let refreshed = try await stack.call("POST", "/api/auth/refresh", json: ["refreshToken": phoneRefresh])
            #expect(refreshed.status == 401, "the ended session cannot refresh: \(refreshed)")
            let remaining = try await stack.call("GET", "/api/auth/sessions", token: laptopToken)
            #expect((remaining.json["items"] as? [Any])?.count == 1)
        }
    }

    @Test("conversations: a streamed question joins one by header; listed newest first, read, renamed, deleted; the quota read without counting")
    func conversations() async throws {
        try await ServiceStack.with(gptProxies: 1) { stack in
            let (email, password) = try await stack.signup("conv")
            let session = try await stack.login(email, password)
            let quotaBefore = try await stack.call("GET", "/api/gpt/quota", token: session.access)
            #expect(quotaBefore.status == 200 && quotaBefore.json["used"] as? Int == 0 && quotaBefore.json["limit"] as? Int == 100,
                    "\(quotaBefore)")

            let conversation = "conv-\(UUID().uuidString.prefix(8))"
            let streamed = try await stack.call("POST", "/v1/chat/completions",
                                                json: ["messages": [["role": "user", "content": "Tell me about burrows"]], "stream": true],
                                                token: session.access, headers: ["X-Aira-Conversation": conversation])
            #expect(streamed.status == 200)
            let events = String(decoding: streamed.body, as: UTF8.self).components(separatedBy: "\n\n")
                .filter { $0.hasPrefix("data: {") }.map { Array($0.dropFirst(6).utf8) }
            let last = try MessageCoding.decode(ChatCompletionChunk.self, from: try #require(events.last))
            let info = try #require(last.aira)
            #expect(info.cached == false && info.conversationId == conversation && info.quota.used == 1 && info.quota.limit == 100)
            #expect(events.dropLast().allSatisfy { !String(decoding: $0, as: UTF8.self).contains("\"aira\"") })

            let follow = try await stack.call("POST", "/api/gpt/qna", json: ["question": "And about carrots?", "conversationId": conversation],
                                              token: session.access)
            #expect(follow.status == 200, "\(follow)")
            let second = "conv-\(UUID().uuidString.prefix(8))"
            _ = try await stack.call("POST", "/api/gpt/qna", json: ["question": "A second topic", "conversationId": second], token: session.access)
            #expect(try await stack.call("GET", "/api/gpt/quota", token: session.access).json["used"] as? Int == 3)

            let list = try await stack.call("GET", "/api/gpt/conversations", token: session.access)
            let items = try #require(list.json["items"] as? [[String: Any]])
            #expect(items.compactMap { $0["id"] as? String } == [second, conversation], "newest first: \(list)")
            #expect(items.last?["title"] as? String == "Tell me about burrows")
            #expect(items.last?["messageCount"] as? Int == 4)

            let one = try await stack.call("GET", "/api/gpt/conversations/\(conversation)", token: session.access)
            let messages = try #require(one.json["messages"] as? [[String: Any]])
            #expect(messages.compactMap { $0["role"] as? String } == ["user", "assistant", "user", "assistant"])
            #expect(messages[2]["content"] as? String == "And about carrots?")

            let renamed = try await stack.call("PATCH", "/api/gpt/conversations/\(conversation)", json: ["title": "Rabbits"], token: session.access)
            #expect(renamed.status == 200 && renamed["title"] == "Rabbits", "\(renamed)")
            #expect(try await stack.call("PATCH", "/api/gpt/conversations/\(conversation)", json: ["title": " "],
                                         token: session.access).status == 400)

            // Another user sees none of it.
            let (otherEmail, otherPassword) = try await stack.signup("conv-other")
            let other = try await stack.login(otherEmail, otherPassword)
            #expect(try await stack.call("GET", "/api/gpt/conversations/\(conversation)", token: other.access).status == 404)
            #expect((try await stack.call("GET", "/api/gpt/conversations", token: other.access).json["items"] as? [Any])?.isEmpty == true)

            #expect(try await stack.call("DELETE", "/api/gpt/conversations/\(conversation)", token: session.access).status == 204)
            #expect(try await stack.call("DELETE", "/api/gpt/conversations/\(conversation)", token: session.access).status == 404)
            #expect(try await stack.call("GET", "/api/gpt/conversations/\(conversation)", token: session.access).status == 404)
            let bad = try await stack.call("POST", "/v1/chat/completions", json: ["messages": [["role": "user", "content": "x"]]],
                                           token: session.access, headers: ["X-Aira-Conversation": "not/valid"])
            #expect(bad.status == 400 && bad.errorCode == "invalid_request", "\(bad)")
        }
    }

    @Test("conversations while the gateway cannot reach Redis: 503 with Retry-After, never a 500")
    func conversationsWithoutRedis() async throws {
        try await ServiceStack.with(gatewayEnvironment: ["AIRA_REDIS_URL": "redis://127.0.0.1:\(try closedPort())"]) { stack in
            let (email, password) = try await stack.signup("conv-down")
            let session = try await stack.login(email, password)
            for (method, path) in [("GET", "/api/gpt/conversations"), ("GET", "/api/gpt/conversations/c1"), ("DELETE", "/api/gpt/conversations/c1")] {
                let reply = try await stack.call(method, path, token: session.access)
                #expect(reply.status == 503 && reply.errorCode == "service_unavailable", "\(method) \(path): \(reply)")
                #expect(reply.headers.first(name: "Retry-After") == "2")
            }
        }
    }

    @Test("operator endpoints: admins only, topology queues only, replay and purge refuse unclear or unconfirmed requests")
    func operatorRules() async throws {
        try await ServiceStack.with { stack in
            let (email, password) = try await stack.signup("not-admin")
            let user = try await stack.login(email, password)
            #expect(try await stack.call("GET", "/api/admin/dlq", token: user.access).status == 403)
            let adminAccount = try await stack.createAdmin()
            let admin = try await stack.login(adminAccount.email, adminAccount.password)

            let list = try await stack.call("GET", "/api/admin/dlq", token: admin.access)
            #expect(list.status == 200, "\(list)")
            let names = Set((list.json["items"] as? [[String: Any]] ?? []).compactMap { $0["queue"] as? String })
            #expect(names.isSuperset(of: ["audit.events.dlq", "email.send.dlq", "thumbnail.generate.dlq", "gpt.ask.dlq"]), "\(names)")

            #expect(try await stack.call("GET", "/api/admin/dlq/no.such.queue", token: admin.access).status == 404)
            let peek = try await stack.call("GET", "/api/admin/dlq/audit.events.dlq?limit=5", token: admin.access)
            #expect(peek.status == 200 && peek["deadLetterQueue"] == "audit.events.dlq", "\(peek)")
            #expect(try await stack.call("GET", "/api/admin/dlq/audit.events?since=yesterday", token: admin.access).status == 400)

            let replay = "/api/admin/dlq/audit.events/replay"
            let unclear = try await stack.call("POST", replay, json: [:], token: admin.access)
            #expect(unclear.status == 400 && unclear.errorMessage?.contains("say what to replay") == true, "\(unclear)")
            #expect(try await stack.call("POST", replay, json: ["all": true, "type": "x"], token: admin.access).status == 400)
            let fast = try await stack.call("POST", replay, json: ["all": true, "rate": 1_000_000], token: admin.access)
            #expect(fast.status == 400 && fast.errorMessage?.contains("at most 500") == true, "\(fast)")
            let dry = try await stack.call("POST", replay, json: ["ids": ["no-such-message"], "dryRun": true], token: admin.access)
            #expect(dry.status == 200 && dry.json["dryRun"] as? Bool == true && (dry.json["moved"] as? [Any])?.isEmpty == true, "\(dry)")

            let purge = "/api/admin/dlq/audit.events/purge"
            let unconfirmed = try await stack.call("POST", purge, json: ["ids": ["x"]], token: admin.access)
            #expect(unconfirmed.status == 400 && unconfirmed.errorCode == "confirmation_required", "\(unconfirmed)")
            #expect(try await stack.call("POST", purge, json: ["confirm": true], token: admin.access).status == 400)
            let none = try await stack.call("POST", purge, json: ["ids": ["no-such-message"], "confirm": true], token: admin.access)
            #expect(none.status == 200 && none.json["deleted"] as? Int == 0, "\(none)")

            let queues = try await stack.call("GET", "/api/admin/queues", token: admin.access)
            #expect(queues.status == 200, "\(queues)")
            let rows = try #require(queues.json["items"] as? [[String: Any]])
            #expect(rows.compactMap { $0["queue"] as? String }.contains("audit.events"))

            #expect(try await stack.call("POST", "/api/admin/analysis/runs", json: ["day": "2026-13-01"], token: admin.access).status == 400)
            let found = try await stack.call("GET", "/api/admin/users?q=\(email.prefix(12))", token: admin.access)
            #expect((found.json["items"] as? [[String: Any]])?.compactMap { $0["email"] as? String } == [email], "\(found)")
            let wildcard = try await stack.call("GET", "/api/admin/users?q=%25", token: admin.access)
            // '%' is matched literally: only addresses that contain one (a fuzzing run may have
            // left some), never the many that do not, as a LIKE wildcard would.
            let matched = try #require((wildcard.json["items"] as? [[String: Any]])?.compactMap { $0["email"] as? String }, "\(wildcard)")
            #expect(matched.allSatisfy { $0.contains("%") }, "'%' is matched literally: \(matched)")
        }
    }

    @Test("the web app's files: CSP without inline script, nosniff, revalidated app files, cached vendor files; the API is never a file")
    func files() async throws {
        try await ServiceStack.with { stack in
            let index = try await stack.call("GET", "/")
            #expect(index.status == 200)
            #expect(index.headers.first(name: "Content-Type")?.hasPrefix("text/html") == true)
            let csp = try #require(index.headers.first(name: "Content-Security-Policy"))
            #expect(csp.contains("script-src 'self'") && !csp.contains("unsafe-inline") && !csp.contains("unsafe-eval"))
            #expect(index.headers.first(name: "X-Content-Type-Options") == "nosniff")
            #expect(index.headers.first(name: "Cache-Control") == "no-cache")
            let etag = try #require(index.headers.first(name: "ETag"))
            let again = try await stack.call("GET", "/", headers: ["If-None-Match": etag])
            #expect(again.status == 304)

            let app = try await stack.call("GET", "/app/main.js")
            #expect(app.status == 200 && app.headers.first(name: "Content-Type")?.contains("javascript") == true)
            let vendor = try await stack.call("GET", "/vendor/purify.min.js")
            #expect(vendor.headers.first(name: "Cache-Control") == "public, max-age=86400")

            let api = try await stack.call("GET", "/api/no-such-thing")
            #expect(api.status == 404 && api.errorCode == "route_not_found")
            #expect(api.headers.first(name: "Content-Security-Policy") == nil)
            for path in ["/../Package.swift", "/app/../../Package.swift", "/app/%2e%2e/%2e%2e/Package.swift"] {
                let escape = try await stack.call("GET", path)
                #expect([400, 404].contains(escape.status) && !String(decoding: escape.body, as: UTF8.self).contains("PackageDescription"),
                        "\(path): \(escape.status)")
            }
        }
    }

    @Test("a user's videos, and the file itself with byte ranges")
    func media() async throws {
        try await ContentTests.withContentStack(thumbnails: false) { stack, _ in
            let (email, password) = try await stack.signup("media")
            let session = try await stack.login(email, password)
            var png: [UInt8] = [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]
            png += Array(repeating: 7, count: 1000)
            let uploaded = try await stack.call("POST", "/api/videos?title=Pixels", rawBody: png, contentType: "image/png", token: session.access)
            #expect(uploaded.status == 201, "\(uploaded)")
            let id = try #require(uploaded["id"])
            let mine = try await stack.call("GET", "/api/videos?owner=me", token: session.access)
            #expect((mine.json["items"] as? [[String: Any]])?.compactMap { $0["id"] as? String } == [id])
            #expect(try await stack.call("GET", "/api/videos?owner=someone", token: session.access).status == 400)
            #expect(try await stack.call("GET", "/api/videos").status == 401)

            let whole = try await stack.call("GET", "/api/videos/\(id)/media")
            #expect(whole.status == 200 && whole.body == png && whole.headers.first(name: "Content-Type") == "image/png")
            let part = try await stack.call("GET", "/api/videos/\(id)/media", headers: ["Range": "bytes=0-7"])
            #expect(part.status == 206 && part.body == Array(png[0...7]), "\(part.status)")
            #expect(part.headers.first(name: "Content-Range") == "bytes 0-7/1008")
            let tail = try await stack.call("GET", "/api/videos/\(id)/media", headers: ["Range": "bytes=-8"])
            #expect(tail.status == 206 && tail.body == Array(png.suffix(8)))
            let beyond = try await stack.call("GET", "/api/videos/\(id)/media", headers: ["Range": "bytes=5000-"])
            #expect(beyond.status == 200 && beyond.body.count == png.count, "an unsatisfiable range gets the whole file")
            #expect(try await stack.call("GET", "/api/videos/\(UUID())/media").status == 404)
        }
    }
}
