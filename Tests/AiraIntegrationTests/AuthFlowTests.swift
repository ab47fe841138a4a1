import AiraAMQP
import AiraContracts
import AiraCore
import AiraMessaging
import AiraRedis
import AiraTokens
import Crypto
import Foundation
import Testing

/// aira-gateway and aira-auth as processes, end to end over HTTP, RabbitMQ, Redis and PostgreSQL.
@Suite("Gateway and auth", .enabled(if: TestServers.available), .serialized)
struct AuthFlowTests {
    @Test("signup queues a verification mail whose link verifies; login; me")
    func signupLoginMe() async throws {
        // A queue of this test's own gets a copy of every email.send message.
        let h = try await MessagingHarness.make()
        let mails = try await h.tap(EmailMessage.routingKey, name: "mail")

        try await ServiceStack.with { stack in
            let (email, password) = try await stack.signup("flow")
            var mail: EmailMessage?
            while mail?.to != email, let delivery = await next(mails.deliveries, timeout: .seconds(10)) {
                #expect(delivery.properties.type == EmailMessage.messageType)
                mail = try MessageCoding.decode(EmailMessage.self, from: delivery.body)
            }
            let sent = try #require(mail)
            #expect(sent.template == "verification")
            // The link opens the web app's verify page (#/verify?token=…), which calls the API.
            let link = try #require(sent.parameters["verifyUrl"].flatMap(URLComponents.init(string:)))
            let page = try #require(link.fragment.flatMap { URLComponents(string: $0) })
            #expect(link.path == "/" && page.path == "/verify")
            let token = try #require(page.queryItems?.first { $0.name == "token" }?.value)

            let session = try await stack.login(email, password)
            var me = try await stack.call("GET", "/api/users/me", token: session.access)
            #expect(me.status == 200)
            #expect(me["email"] == email)
            #expect(me["id"] == session.userID)
            #expect(me.json["emailVerified"] as? Bool == false)
            #expect(me.headers.first(name: "X-Request-Id")?.isEmpty == false)

            let verified = try await stack.call("GET", "/api/auth/verify?token=\(token)")
            #expect(verified.status == 200, "\(verified)")
            me = try await stack.call("GET", "/api/users/me", token: session.access)
            #expect(me.json["emailVerified"] as? Bool == true)
            // A used link does not work twice.
            #expect(try await stack.call("GET", "/api/auth/verify?token=\(token)").status == 401)

            // A client's request id is kept and echoed.
            let traced = try await stack.call("GET", "/api/users/me", token: session.access, headers: ["X-Request-Id": "trace-me-123"])
            #expect(traced.headers.first(name: "X-Request-Id") == "trace-me-123")
        }
        await mails.channel.close()
        await h.connection.close()
    }

    @Test("a sign-up delivered twice (its worker died before acknowledging) makes one account, answers 201 both times, mails once")
    func signupDeliveredAgain() async throws {
        let h = try await MessagingHarness.make()
        let mails = try await h.tap(EmailMessage.routingKey, name: "mail")
        try await ServiceStack.with { stack in
            // The gateway's request, as RabbitMQ hands it out a second time: same message id.
            let replies = uniqueName("signup-replies")
            try await h.admin.declareQueue(replies, options: .init(durable: false, autoDelete: true))
            let answers = try await h.connection.openChannel().consume(queue: replies, noAck: true)
            let email = "again-\(UUID().uuidString.prefix(10).lowercased())@example.com"
            let body = try SignupRequest(email: email, password: "pw-again-\(UUID().uuidString.prefix(8))",
                                         client: ClientInfo(ip: "127.0.0.1")).encoded()
            var properties = RPCClient.requestProperties(SignupRequest.self, callID: MessageID.random(), timeout: .seconds(20),
                                                         requestID: nil, traceparent: nil)
            properties.replyTo = replies
            var ids: [String] = []
            for _ in 0..<2 {
                try await h.admin.publish(exchange: AiraExchange.name, routingKey: SignupRequest.routingKey, body: body,
                                          properties: properties, mandatory: true)
                let reply = try #require(await next(answers.deliveries, timeout: .seconds(15)))
                #expect(reply.properties.headers[AiraHeader.rpcStatus]?.stringValue == "ok", "\(String(decoding: reply.body, as: UTF8.self))")
                ids.append(try MessageCoding.decode(SignupResponse.self, from: reply.body).userId)
            }
            #expect(ids[0] == ids[1])
            // A different request for the same address is still refused.
            #expect(try await stack.call("POST", "/api/auth/signup", json: ["email": email, "password": "another-password-1"]).status == 409)
            // Both deliveries published the verification mail under one message id: the email
            // worker's idempotency key, so the person gets one mail.
            var mailIDs: Set<String> = []
            var seen = 0
            while seen < 2, let delivery = await next(mails.deliveries, timeout: .seconds(10)) {
                guard try MessageCoding.decode(EmailMessage.self, from: delivery.body).to == email else { continue }
                seen += 1
                mailIDs.insert(delivery.properties.messageID ?? "")
            }
            #expect(seen == 2)
            #expect(mailIDs == ["verification-\(ids[0])"])
            await answers.channel.close()
        }
        await mails.channel.close()
        await h.connection.close()
    }

    @Test("refresh rotates on every use; reusing a rotated token revokes the whole family")
    func refreshRotationAndReuse() async throws {
        try await ServiceStack.with { stack in
            let (email, password) = try await stack.signup()
            let first = try await stack.login(email, password)
            let r1 = try await stack.call("POST", "/api/auth/refresh", json: ["refreshToken": first.refresh])
            #expect(r1.status == 200)
            let second = try ServiceStack.session(r1)
            #expect(second.refresh != first.refresh)
            #expect(try await stack.call("GET", "/api/users/me", token: second.access).status == 200)

            // The first token again: reuse. The family dies, including the token just issued.
            let reuse = try await stack.call("POST", "/api/auth/refresh", json: ["refreshToken": first.refresh])
            #expect(reuse.status == 401)
            #expect(reuse.errorCode == "token_reused")
            let after = try await stack.call("POST", "/api/auth/refresh", json: ["refreshToken": second.refresh])
            #expect(after.status == 401)
            #expect(after.errorCode == "invalid_token")

            // Another device's session is a different family and lives on.
            let other = try await stack.login(email, password)
            #expect(try await stack.call("POST", "/api/auth/refresh", json: ["refreshToken": other.refresh]).status == 200)
        }
    }

    @Test("password change logs out every other device within a second, and needs the current password")
    func passwordChange() async throws {
        try await ServiceStack.with { stack in
            let (email, password) = try await stack.signup()
            let laptop = try await stack.login(email, password)
            let phone = try await stack.login(email, password)

            let wrong = try await stack.call("POST", "/api/auth/password", json: ["currentPassword": "not-the-password", "newPassword": "brand new secret"],
                                             token: laptop.access)
            #expect(wrong.status == 401)
            #expect(wrong.errorCode == "invalid_credentials")
            let weak = try await stack.call("POST", "/api/auth/password", json: ["currentPassword": password, "newPassword": "short"],
                                            token: laptop.access)
            #expect(weak.status == 400)
            #expect(weak.errorCode == "invalid_input")

            let newPassword = "brand new secret \(UUID().uuidString.prefix(4))"
            let changed = try await stack.call("POST", "/api/auth/password", json: ["currentPassword": password, "newPassword": newPassword],
                                               token: laptop.access)
            #expect(changed.status == 200, "\(changed)")
            let changedAt = ContinuousClock.now
            #expect(changed.json["sessionsEnded"] as? Int == 2)

            let phoneRefresh = try await stack.call("POST", "/api/auth/refresh", json: ["refreshToken": phone.refresh])
            #expect(phoneRefresh.status == 401)
            #expect(ContinuousClock.now - changedAt < .seconds(1))
            #expect(try await stack.call("POST", "/api/auth/refresh", json: ["refreshToken": laptop.refresh]).status == 401)
            // The device that changed it got a fresh session.
            let fresh = try #require(changed.json["session"] as? [String: Any])
            let freshRefresh = try #require(fresh["refreshToken"] as? String)
            #expect(try await stack.call("POST", "/api/auth/refresh", json: ["refreshToken": freshRefresh]).status == 200)

            let old = try await stack.call("POST", "/api/auth/login", json: ["email": email, "password": password])
            #expect(old.status == 401)
            _ = try await stack.login(email, newPassword)
        }
    }

    @Test("logout ends this device's session; logout-all ends every session")
    func logoutAndLogoutAll() async throws {
        try await ServiceStack.with { stack in
            let (email, password) = try await stack.signup()
            let a = try await stack.login(email, password)
            let b = try await stack.login(email, password)
            let c = try await stack.login(email, password)

            let out = try await stack.call("POST", "/api/auth/logout", token: a.access)
            #expect(out.status == 200)
            #expect(out.json["sessionsEnded"] as? Int == 1)
            #expect(try await stack.call("POST", "/api/auth/refresh", json: ["refreshToken": a.refresh]).status == 401)
            let bRefreshed = try await stack.call("POST", "/api/auth/refresh", json: ["refreshToken": b.refresh])
            #expect(bRefreshed.status == 200)

            let all = try await stack.call("POST", "/api/auth/logout-all", token: c.access)
            #expect(all.status == 200)
            #expect(all.json["sessionsEnded"] as? Int == 2)
            #expect(try await stack.call("POST", "/api/auth/refresh", json: ["refreshToken": try ServiceStack.session(bRefreshed).refresh]).status == 401)
            #expect(try await stack.call("POST", "/api/auth/refresh", json: ["refreshToken": c.refresh]).status == 401)
            #expect(try await stack.call("POST", "/api/auth/logout-all").status == 401)
        }
    }

    @Test("suspension: admin only (403 for a user, 401 anonymous); a suspended user cannot log in or refresh")
    func suspension() async throws {
        try await ServiceStack.with { stack in
            let (email, password) = try await stack.signup()
            let user = try await stack.login(email, password)
            let adminCredentials = try await stack.createAdmin()
            let admin = try await stack.login(adminCredentials.email, adminCredentials.password)
            let path = "/api/admin/users/\(user.userID)/suspend"

            let anonymous = try await stack.call("POST", path)
            #expect(anonymous.status == 401)
            #expect(anonymous.headers.first(name: "WWW-Authenticate")?.hasPrefix("Bearer") == true)
            let byUser = try await stack.call("POST", "/api/admin/users/\(admin.userID)/suspend", token: user.access)
            #expect(byUser.status == 403)
            #expect(byUser.errorCode == "forbidden")
            #expect(try await stack.call("POST", "/api/admin/users/not-a-uuid/suspend", token: admin.access).status == 400)
            #expect(try await stack.call("POST", "/api/admin/users/\(UUID().uuidString)/suspend", token: admin.access).status == 404)

            let suspended = try await stack.call("POST", path, token: admin.access)
            #expect(suspended.status == 200, "\(suspended)")
            #expect(suspended.json["suspended"] as? Bool == true)

            let login = try await stack.call("POST", "/api/auth/login", json: ["email": email, "password": password])
            #expect(login.status == 403)
            #expect(login.errorCode == "account_suspended")
            #expect(try await stack.call("POST", "/api/auth/refresh", json: ["refreshToken": user.refresh]).status == 401)
            #expect(try await stack.call("GET", "/api/users/me", token: user.access).status == 403)

            let reinstated = try await stack.call("POST", "/api/admin/users/\(user.userID)/unsuspend", token: admin.access)
            #expect(reinstated.status == 200)
            _ = try await stack.login(email, password)
        }
    }

    @Test("tampered, expired, wrong-kid, alg none and HS256-with-the-public-key tokens are all 401")
    func forgedTokens() async throws {
        try await ServiceStack.with { stack in
            let (email, password) = try await stack.signup()
            let session = try await stack.login(email, password)
            #expect(try await stack.call("GET", "/api/users/me", token: session.access).status == 200)

            let parts = session.access.split(separator: ".").map(String.init)
            let claims = try #require(Data(base64URL: parts[1]))
            var payload = try #require(try JSONSerialization.jsonObject(with: claims) as? [String: Any])
            payload["role"] = "ADMIN"
            let escalated = try JSONSerialization.data(withJSONObject: payload).base64URL

            let issuer = try await AccessTokenIssuer(signingKey: stack.key)
            let expired = try await issuer.issue(userID: try #require(UUID(uuidString: session.userID)), role: "USER", sessionID: "s",
                                                 now: Date().addingTimeInterval(-3600)).token
            let otherKey = try await AccessTokenIssuer(signingKey: try TokenKey.generate(kid: "intruder"))
            let wrongKid = try await otherKey.issue(userID: try #require(UUID(uuidString: session.userID)), role: "ADMIN", sessionID: "s").token
            // Same kid as the real key, signed by another key.
            let sameKidOtherKey = try await AccessTokenIssuer(signingKey: try TokenKey.generate(kid: stack.key.kid))
                .issue(userID: try #require(UUID(uuidString: session.userID)), role: "USER", sessionID: "s").token
            let none = Data(#"{"alg":"none","typ":"JWT","kid":"\#(stack.key.kid)"}"#.utf8).base64URL + "." + parts[1] + "."
            let hsHeader = Data(#"{"alg":"HS256","typ":"JWT","kid":"\#(stack.key.kid)"}"#.utf8).base64URL
            let publicKey = Data(base64Encoded: String(stack.key.verifyingText.split(separator: ":")[1]))!
            let hsMAC = HMAC<SHA256>.authenticationCode(for: Data("\(hsHeader).\(parts[1])".utf8), using: SymmetricKey(data: publicKey))
            let hs256 = "\(hsHeader).\(parts[1]).\(Data(hsMAC).base64URL)"

            let forged: [(String, String)] = [
                ("payload edited", "\(parts[0]).\(escalated).\(parts[2])"),
                ("signature flipped", "\(parts[0]).\(parts[1]).\(String(parts[2].reversed()))"),
                ("expired", expired), ("unknown kid", wrongKid), ("known kid, wrong key", sameKidOtherKey),
                ("alg none", none), ("HS256 keyed with the public key", hs256), ("garbage", "not.a.jwt"),
            ]
            for (name, token) in forged {
                let reply = try await stack.call("GET", "/api/users/me", token: token)
                #expect(reply.status == 401, "\(name): \(reply)")
                #expect(reply.errorCode == "invalid_token", "\(name)")
            }
            // The rejection is logged with the request's id (metadata added when something is logged).
            _ = try await stack.call("GET", "/api/users/me", token: "not.a.jwt", headers: ["X-Request-Id": "forged-token-probe"])
            let logged = stack.gateways[0].process.log.split(separator: "\n").filter { $0.contains("access token rejected") }
            #expect(logged.contains { $0.contains("forged-token-probe") }, "\(logged.suffix(3))")
            let noToken = try await stack.call("GET", "/api/users/me")
            #expect(noToken.status == 401)
            #expect(noToken.errorCode == "unauthenticated")
            #expect(try await stack.call("GET", "/api/users/me", headers: ["Authorization": "Basic Zm9vOmJhcg=="]).status == 401)
        }
    }

    @Test("repeated failed logins are throttled with a growing delay; a known address is not locked out by an attacker")
    func loginThrottling() async throws {
        try await ServiceStack.with(environment: ["AIRA_LOGIN_FREE_FAILURES": "3", "AIRA_LOGIN_BASE_DELAY": "2s"]) { stack in
            let (email, password) = try await stack.signup()
            let home = "10.250.\(Int.random(in: 0...255)).\(Int.random(in: 1...254))"
            _ = try await stack.login(email, password, ip: home) // the owner's usual address becomes known

            let attacker = "10.251.\(Int.random(in: 0...255)).\(Int.random(in: 1...254))"
            for _ in 0..<3 {
                let r = try await stack.call("POST", "/api/auth/login", json: ["email": email, "password": "guess-guess-guess"], ip: attacker)
                #expect(r.status == 401)
            }
            // The 4th failure starts a lock; the next attempt is refused before any password check.
            #expect(try await stack.call("POST", "/api/auth/login", json: ["email": email, "password": "guess-again-guess"], ip: attacker).status == 401)
            let locked = try await stack.call("POST", "/api/auth/login", json: ["email": email, "password": password], ip: attacker)
            #expect(locked.status == 429, "\(locked)")
            #expect(locked.errorCode == "login_throttled")
            #expect(Int(locked.headers.first(name: "Retry-After") ?? "") ?? 0 >= 1)
            // Another unknown address is locked out of this account too.
            let elsewhere = try await stack.call("POST", "/api/auth/login", json: ["email": email, "password": password],
                                                 ip: "10.252.0.\(Int.random(in: 1...254))")
            #expect(elsewhere.status == 429)
            // The owner, from their known address, still gets in.
            _ = try await stack.login(email, password, ip: home)
            // The lock is temporary.
            try await Task.sleep(for: .seconds(2.2))
            _ = try await stack.login(email, password, ip: attacker)
        }
    }

    @Test("aira-auth without Redis: login, refresh, sessions, logout and password change work; failed logins are still throttled")
    func authWithoutRedis() async throws {
        try await ServiceStack.with(environment: ["AIRA_LOGIN_FREE_FAILURES": "3", "AIRA_LOGIN_BASE_DELAY": "2s"]) { stack in
            let (email, password) = try await stack.createAdmin()
            let before = try await stack.login(email, password)
            // The only auth process now is one whose Redis does not answer.
            await stack.stopAuth()
            let authPort = try freePort()
            try stack.startAuth(environment: ["AIRA_REDIS_URL": "redis://127.0.0.1:\(try closedPort())", "AIRA_HTTP_PORT": "\(authPort)"])
            let up = await eventually(timeout: .seconds(30), every: .milliseconds(200)) {
                (try? await stack.call("POST", "/api/auth/login", json: ["email": email, "password": password]))?.status == 200
            }
            try #require(up, "no login through an auth process without Redis:\n\(stack.auth.last!.log.suffix(3000))")
            let laptop = try await stack.login(email, password)
            let phone = try await stack.login(email, password)
            // A session opened before Redis went away still refreshes: sessions live in PostgreSQL.
            let refreshed = try await stack.call("POST", "/api/auth/refresh", json: ["refreshToken": before.refresh])
            #expect(refreshed.status == 200, "\(refreshed)")
            let sessions = try await stack.call("GET", "/api/auth/sessions", token: laptop.access)
            #expect(sessions.status == 200, "\(sessions)")
            #expect((sessions.json["items"] as? [Any])?.count ?? 0 >= 3, "\(sessions)")
            #expect(try await stack.call("POST", "/api/auth/logout", token: phone.access).status == 200)
            #expect(try await stack.call("POST", "/api/auth/refresh", json: ["refreshToken": phone.refresh]).status == 401)
            let newPassword = "no-redis-\(UUID().uuidString.prefix(8))"
            let changed = try await stack.call("POST", "/api/auth/password", json: ["currentPassword": password, "newPassword": newPassword],
                                               token: laptop.access)
            #expect(changed.status == 200, "\(changed)")
            #expect(try await stack.call("POST", "/api/auth/refresh", json: ["refreshToken": laptop.refresh]).status == 401)

            // Guessing is throttled by the process itself: the 4th failure locks the next try.
            let attacker = "10.253.\(Int.random(in: 0...255)).\(Int.random(in: 1...254))"
            for _ in 0..<4 {
                let r = try await stack.call("POST", "/api/auth/login", json: ["email": email, "password": "guess-guess-guess"], ip: attacker)
                #expect(r.status == 401)
            }
            let locked = try await stack.call("POST", "/api/auth/login", json: ["email": email, "password": newPassword], ip: attacker)
            #expect(locked.status == 429, "\(locked)")
            #expect(locked.errorCode == "login_throttled")
            let fallbacks = try await stack.metric(port: authPort, "aira_auth_throttle_fallback_total")
            #expect(fallbacks >= 5)
        }
    }

    @Test("rate limit is shared by two gateway instances: 429 with Retry-After and RateLimit headers")
    func rateLimitAcrossGateways() async throws {
        try await ServiceStack.with(gateways: 2, environment: ["AIRA_RATE_LIMIT_READ": "6/1m"]) { stack in
            let (email, password) = try await stack.signup()
            let session = try await stack.login(email, password)
            var statuses: [Int] = []
            var last: ServiceStack.Reply?
            for i in 0..<8 {
                let r = try await stack.call("GET", "/api/users/me", token: session.access, gateway: i % 2)
                statuses.append(r.status)
                last = r
                if i == 0 {
                    #expect(r.headers.first(name: "RateLimit-Limit") == "6")
                    #expect(r.headers.first(name: "RateLimit-Remaining") == "5")
                    #expect(r.headers.first(name: "RateLimit-Policy") == "6;w=60")
                }
            }
            #expect(statuses == [200, 200, 200, 200, 200, 200, 429, 429])
            let limited = try #require(last)
            #expect(limited.errorCode == "rate_limited")
            let retry = Int(limited.headers.first(name: "Retry-After") ?? "") ?? 0
            #expect((1...60).contains(retry))
            #expect(limited.headers.first(name: "RateLimit-Remaining") == "0")
            #expect(limited.headers.first(name: "RateLimit-Reset") != nil)
            // Every counter the script touched expires with its window (set once, on the first
            // request): none lives on without an expiry.
            let redis = RedisClient(configuration: try RedisConfiguration(url: TestServers.redisURL!))
            for key in ["rl:read:ip:\(stack.clientIP)", "rl:read:user:\(session.userID)"] {
                let ttl = try await redis.send("PTTL", key).int ?? -3
                #expect((1...60_000).contains(ttl), "\(key): PTTL \(ttl)")
            }
            await redis.shutdown()
            // Another user behind the same address is not limited by this user's counter.
            let (email2, password2) = try await stack.signup()
            let other = try await stack.login(email2, password2)
            #expect(try await stack.call("GET", "/api/users/me", token: other.access, gateway: 1).status == 200)
        }
    }

    @Test("a busy counter is reserved in leases: two gateways together admit exactly the limit, with far fewer Redis calls")
    func rateLimitLeases() async throws {
        try await ServiceStack.with(gateways: 2, environment: ["AIRA_RATE_LIMIT_READ": "200/1m"]) { stack in
            let (email, password) = try await stack.signup()
            let session = try await stack.login(email, password)
            let calls = "aira_gateway_rate_limit_redis_calls_total"
            var before = 0.0
            for g in stack.gateways { before += try await stack.metric(port: g.port, calls) }
            // 260 requests for a limit of 200, 8 at a time, alternating between the gateways.
            let statuses = try await withThrowingTaskGroup(of: Int.self) { group in
                var statuses: [Int] = []
                for i in 0..<260 {
                    if i >= 8, let status = try await group.next() { statuses.append(status) }
                    group.addTask { try await stack.call("GET", "/api/users/me", token: session.access, gateway: i % 2).status }
                }
                for try await status in group { statuses.append(status) }
                return statuses
            }
            var after = 0.0
            for g in stack.gateways { after += try await stack.metric(port: g.port, calls) }
            #expect(statuses.count == 260)
            #expect(Set(statuses).isSubset(of: [200, 429]), "\(Set(statuses))")
            // Each gateway got more requests past the limit than one lease holds, so neither kept
            // an unspent grant: the limit is reached exactly, never passed.
            #expect(statuses.filter { $0 == 200 }.count == 200)
            let redis = RedisClient(configuration: try RedisConfiguration(url: TestServers.redisURL!))
            let counted = try await redis.send("GET", "rl:read:user:\(session.userID)").string
            await redis.shutdown()
            #expect(counted == "200")
            // One call per request before leases; with them one per lease (a sixteenth of what is
            // left, then single grants for the last 16) — about 60 here, both counters together.
            #expect(after - before < 130, "\(after - before) Redis calls for 260 requests")
            #expect(after - before >= 17, "\(after - before): every lease holds at most 12 grants at this limit")
        }
    }

    @Test("Redis unreachable: the rate limiter lets requests through (concurrent ones too) and counts the errors")
    func rateLimitWithoutRedis() async throws {
        // Only the gateway loses Redis (aira-auth keeps its own).
        try await ServiceStack.with(environment: ["AIRA_RATE_LIMIT_READ": "3/1m"],
                                    gatewayEnvironment: ["AIRA_REDIS_URL": "redis://127.0.0.1:\(try closedPort())"]) { stack in
            let (email, password) = try await stack.signup()
            let session = try await stack.login(email, password)
            let statuses = try await withThrowingTaskGroup(of: Int.self) { group in
                for _ in 0..<10 {
                    group.addTask { try await stack.call("GET", "/api/users/me", token: session.access).status }
                }
                return try await group.reduce(into: [Int]()) { $0.append($1) }
            }
            #expect(statuses == [Int](repeating: 200, count: 10), "\(statuses)")
            let errors = try await stack.metric(port: stack.gateways[0].port, "aira_gateway_rate_limit_errors_total")
            #expect(errors >= 10, "\(errors) rate-limit errors counted")
        }
    }

    @Test("malformed JSON, missing fields, wrong content type, oversize body, bad rules: clear 4xx, never 500")
    func badInput() async throws {
        try await ServiceStack.with(environment: ["AIRA_MAX_BODY_BYTES": "2048"]) { stack in
            let malformed = try await stack.call("POST", "/api/auth/login", rawBody: Array(#"{"email": "a@b.c", "password": "#.utf8),
                                                 contentType: "application/json")
            #expect(malformed.status == 400)
            #expect(malformed.errorCode == "malformed_json")

            let missing = try await stack.call("POST", "/api/auth/login", json: ["email": "a@example.com"])
            #expect(missing.status == 400)
            #expect(missing.errorMessage?.contains("password") == true, "\(missing)")
            let wrongType = try await stack.call("POST", "/api/auth/signup", json: ["email": 42, "password": "x"])
            #expect(wrongType.status == 400)
            #expect(wrongType.errorMessage?.contains("email") == true)
            let blank = try await stack.call("POST", "/api/auth/login", json: ["email": "", "password": "whatever"])
            #expect(blank.status == 400)

            let form = try await stack.call("POST", "/api/auth/login", rawBody: Array("email=a&password=b".utf8),
                                            contentType: "application/x-www-form-urlencoded")
            #expect(form.status == 415)
            #expect(form.errorCode == "unsupported_media_type")
            let noBody = try await stack.call("POST", "/api/auth/login")
            #expect(noBody.status == 415)

            let big = try await stack.call("POST", "/api/auth/signup",
                                           json: ["email": "a@example.com", "password": String(repeating: "x", count: 5000)])
            #expect(big.status == 413)
            #expect(big.errorCode == "payload_too_large")

            let badEmail = try await stack.call("POST", "/api/auth/signup", json: ["email": "nobody", "password": "long enough password"])
            #expect(badEmail.status == 400)
            #expect(badEmail.errorCode == "invalid_input")
            let common = try await stack.call("POST", "/api/auth/signup", json: ["email": "c@example.com", "password": "password123"])
            #expect(common.status == 400)
            #expect(common.errorMessage?.contains("common") == true)

            let (email, _) = try await stack.signup()
            let taken = try await stack.call("POST", "/api/auth/signup", json: ["email": email.uppercased(), "password": "another long password"])
            #expect(taken.status == 409)
            #expect(taken.errorCode == "email_taken")

            let nowhere = try await stack.call("GET", "/api/nowhere")
            #expect(nowhere.status == 404)
            #expect(nowhere.errorCode == "route_not_found")
            let badToken = try await stack.call("POST", "/api/auth/refresh", json: ["refreshToken": "rt_nonsense"])
            #expect(badToken.status == 401)
        }
    }

    @Test("auth workers stopped: login answers 503 at once with Retry-After; other endpoints keep working")
    func authWorkersStopped() async throws {
        try await ServiceStack.with { stack in
            let (email, password) = try await stack.signup()
            let session = try await stack.login(email, password)
            await stack.stopAuth()

            // The gateway notices within its consumer check interval (1 s).
            let refused = await eventually(timeout: .seconds(5), every: .milliseconds(100)) {
                (try? await stack.call("POST", "/api/auth/login", json: ["email": email, "password": password]))?.status == 503
            }
            #expect(refused)
            let started = ContinuousClock.now
            let login = try await stack.call("POST", "/api/auth/login", json: ["email": email, "password": password])
            #expect(ContinuousClock.now - started < .milliseconds(500))
            #expect(login.status == 503)
            #expect(login.errorCode == "service_unavailable")
            #expect(login.headers.first(name: "Retry-After") != nil)
            let refresh = try await stack.call("POST", "/api/auth/refresh", json: ["refreshToken": session.refresh])
            #expect(refresh.status == 503)

            // Tokens are verified locally: authenticated reads go on.
            #expect(try await stack.call("GET", "/api/users/me", token: session.access).status == 200)
            #expect(try await stack.call("GET", "/health/live").status == 200)
            #expect(try await stack.call("GET", "/openapi.yaml").status == 200)

            // Back: as soon as the broker has a consumer again, the next login goes through (the
            // gateway asks the broker again instead of refusing from a look up to 1 s old).
            try stack.startAuth()
            let probe = try await TestServers.connect()
            let channel = try await probe.openChannel()
            let consuming = await eventually(timeout: .seconds(20), every: .milliseconds(10)) {
                ((try? await channel.inspectQueue(AuthRPC.credentials.name))?.consumerCount ?? 0) > 0
            }
            #expect(consuming)
            let back = try await stack.call("POST", "/api/auth/login", json: ["email": email, "password": password])
            #expect(back.status == 200, "\(back)")
            await probe.close()
        }
    }

    @Test("a backend that takes the request but does not answer in time: 504")
    func rpcTimeout() async throws {
        // A consumer that takes auth.sessions requests and never answers stands in for a hung aira-auth.
        let h = try await MessagingHarness.make()
        try await AuthRPC.sessions.declare(on: h.admin)
        let hung = try await h.connection.openChannel()
        let taken = try await hung.consume(queue: AuthRPC.sessions.name)
        try await ServiceStack.with(auth: 0, environment: ["AIRA_AUTH_SESSIONS_TIMEOUT": "700ms"]) { stack in
            var reply: ServiceStack.Reply?
            let answered = await eventually(timeout: .seconds(5), every: .milliseconds(100)) {
                reply = try? await stack.call("POST", "/api/auth/refresh", json: ["refreshToken": "rt_whatever"])
                return reply?.status == 504
            }
            #expect(answered, "last reply: \(String(describing: reply))")
            let started = ContinuousClock.now
            let timedOut = try await stack.call("POST", "/api/auth/refresh", json: ["refreshToken": "rt_whatever"])
            let elapsed = ContinuousClock.now - started
            #expect(timedOut.status == 504)
            #expect(timedOut.errorCode == "timeout")
            #expect(elapsed >= .milliseconds(650) && elapsed < .seconds(2), "\(elapsed)")
            #expect(await next(taken.deliveries, timeout: .seconds(1)) != nil)
        }
        await hung.close()
        await h.connection.close()
    }

    @Test("/openapi.yaml documents the API; /metrics labels requests by route template")
    func openAPIAndMetrics() async throws {
        try await ServiceStack.with { stack in
            let doc = try await stack.call("GET", "/openapi.yaml")
            #expect(doc.status == 200)
            #expect(doc.headers.first(name: "Content-Type") == "application/yaml")
            let text = String(decoding: doc.body, as: UTF8.self)
            for path in ["/api/auth/signup:", "/api/auth/login:", "/api/auth/refresh:", "/api/auth/logout:", "/api/auth/logout-all:",
                         "/api/auth/password:", "/api/auth/verify:", "/api/users/me:", "/api/admin/users/{id}/suspend:",
                         "/api/admin/users/{id}/unsuspend:"] {
                #expect(text.contains("\n  \(path)\n"), "\(path) not documented")
            }
            let someone = UUID().uuidString.lowercased()
            _ = try await stack.call("POST", "/api/admin/users/\(someone)/suspend")
            let metrics = String(decoding: try await stack.call("GET", "/metrics").body, as: UTF8.self)
            #expect(metrics.contains(#"hb_requests{http_route="/api/admin/users/{id}/suspend",http_request_method="POST",http_response_status_code="401"} 1"#),
                    "route template not in metrics")
            #expect(!metrics.contains(someone), "a concrete id became a metrics label")
        }
    }
}

extension Data {
    init?(base64URL text: String) {
        var s = text.replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
        while s.count % 4 != 0 { s += "=" }
        self.init(base64Encoded: s)
    }

    var base64URL: String {
        self.base64EncodedString().replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_")
            .replacingOccurrences(of: "=", with: "")
    }
}
