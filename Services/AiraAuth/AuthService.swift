import AiraAccounts
import AiraContracts
import AiraCore
import AiraMessaging
import AiraServiceKit
import AiraRedis
import AiraTokens
import Crypto
import Foundation
import Logging
import Metrics

/// What aira-auth does for each RPC. Every answer a client can see is deliberate: rule
/// violations, bad credentials, throttling and revoked tokens are typed ``RPCErrorReply``s;
/// anything else (database or Redis trouble) is transient and retried while the caller waits.
struct AuthService: Sendable {
    let accounts: AccountStore
    let hasher: PasswordHasher
    let issuer: AccessTokenIssuer
    let refreshTokens: RefreshTokens
    let throttle: LoginThrottle
    let redis: RedisClient
    /// A real bcrypt hash of nothing: a login for an unknown email costs the same as a real one.
    let timingHash: String
    /// The link in verification mail; the token is appended.
    let verifyURL: String
    let verificationLifetime: Duration
    let trail: AuditTrail

    private static let auditFailures = Counter(label: "aira_auth_audit_publish_failures_total")
    private static let logins = Counter(label: "aira_auth_logins_total", dimensions: [("outcome", "ok")])
    private static let loginFailures = Counter(label: "aira_auth_logins_total", dimensions: [("outcome", "failed")])
    private static let loginsThrottled = Counter(label: "aira_auth_logins_total", dimensions: [("outcome", "throttled")])

    var routes: (credentials: RPCRoutes, sessions: RPCRoutes) {
        var credentials = RPCRoutes()
        credentials.on(SignupRequest.self) { try await self.signup($0, context: $1) }
        credentials.on(LoginRequest.self) { try await self.login($0, context: $1) }
        credentials.on(ChangePasswordRequest.self) { try await self.changePassword($0, context: $1) }
        var sessions = RPCRoutes()
        sessions.on(VerifyEmailRequest.self) { try await self.verifyEmail($0, context: $1) }
        sessions.on(RefreshRequest.self) { try await self.refresh($0, context: $1) }
        sessions.on(LogoutRequest.self) { try await self.logout($0, context: $1) }
        sessions.on(LogoutAllRequest.self) { try await self.logoutAll($0, context: $1) }
        sessions.on(SetSuspendedRequest.self) { try await self.setSuspended($0, context: $1) }
        sessions.on(ListSessionsRequest.self) { try await self.listSessions($0, context: $1) }
        return (credentials, sessions)
    }

    // MARK: - Signup and verification

    func signup(_ request: SignupRequest, context: MessageContext) async throws -> SignupResponse {
        let email = try Self.checked { try EmailAddress.normalize(request.email) }
        try Self.checked { try PasswordPolicy.check(request.password, email: email) }
        let hash = try await self.hasher.hash(request.password)
        // The account's id comes from the request's message id, so the same request delivered
        // again (this process died after the insert, before the acknowledgement) finds the account
        // it made and finishes the sign-up instead of answering "taken" to the person who made it.
        let id = Self.accountID(forSignup: context.messageID)
        let account: Account
        do {
            account = try await self.accounts.create(id: id, email: email, passwordHash: hash, role: .user)
        } catch AccountStore.StoreError.emailTaken {
            guard let own = try await self.accounts.find(email: email), own.id == id else {
                throw RPCErrorReply(code: AuthError.emailTaken, message: "an account with this email already exists")
            }
            context.logger.notice("sign-up delivered again: finishing the account it made", metadata: ["user_id": "\(id.lowercasedString)"])
            account = own
        }
        let token = OpaqueToken.random(prefix: "ev_")
        let tokenKey = Self.verificationKey(token)
        do {
            _ = try await self.redis.set(tokenKey, account.id.lowercasedString, expire: self.verificationLifetime)
            // One verification mail per account, however often the sign-up is delivered: the
            // message id is the email worker's idempotency key (a repeat's token stays valid too).
            try await context.publisher.publish(EmailMessage(to: email, template: "verification", parameters: [
                "verifyUrl": self.verifyURL + token, "email": email,
            ]), routingKey: EmailMessage.routingKey, messageID: "verification-\(account.id.lowercasedString)",
               correlationID: context.correlationID, traceparent: context.traceparent)
        } catch {
            // No half-made account: without its mail the user could never verify.
            context.logger.error("verification mail not queued; undoing signup", metadata: [LogKey.error: "\(error)"])
            try? await self.accounts.delete(account.id)
            _ = try? await self.redis.del(tokenKey)
            throw RPCErrorReply(code: RPCErrorReply.unavailableCode, message: "signup temporarily unavailable, try again")
        }
        await self.audit(AuditEvent(type: "signup", userId: account.id, ip: request.client.ip), context)
        return SignupResponse(userId: account.id, email: email, verificationSent: true)
    }

    func verifyEmail(_ request: VerifyEmailRequest, context: MessageContext) async throws -> UserView {
        guard request.token.hasPrefix("ev_"), request.token.count < 100,
              let id = try await self.redis.get(Self.verificationKey(request.token)).flatMap(UUID.init(text:)) else {
            throw RPCErrorReply(code: AuthError.invalidToken, message: "verification link unknown or expired")
        }
        let account: Account
        do {
            account = try await self.accounts.markVerified(id)
        } catch AccountStore.StoreError.notFound {
            throw RPCErrorReply(code: AuthError.invalidToken, message: "verification link unknown or expired")
        }
        _ = try await self.redis.del(Self.verificationKey(request.token))
        await self.audit(AuditEvent(type: "email_verified", userId: id, ip: request.client.ip), context)
        // The welcome mail, once per account: its message id is the email worker's idempotency key.
        let email = account.email
        context.afterReply {
            do {
                try await context.publisher.publish(EmailMessage(to: email, template: "welcome", parameters: ["email": email]),
                                                    routingKey: EmailMessage.routingKey, messageID: "welcome-\(id.lowercasedString)",
                                                    correlationID: context.correlationID, traceparent: context.traceparent)
            } catch {
                context.logger.error("welcome mail not queued", metadata: [LogKey.error: "\(error)"])
            }
        }
        return Self.view(account)
    }

    // MARK: - Login and sessions

    func login(_ request: LoginRequest, context: MessageContext) async throws -> TokenPair {
        let ip = request.client.ip
        // Not an address: no account can match, but it costs the same and is throttled the same.
        let email = (try? EmailAddress.normalize(request.email)) ?? request.email.lowercased()
        if let wait = await self.throttle.lockRemaining(email: email, ip: ip) {
            Self.loginsThrottled.increment()
            throw Self.throttled(wait)
        }
        let account = try await self.accounts.find(email: email)
        let matches = try await self.hasher.verify(request.password, hash: account?.passwordHash ?? self.timingHash)
        guard let account, matches else {
            Self.loginFailures.increment()
            await self.throttle.recordFailure(email: email, ip: ip)
            await self.audit(AuditEvent(type: "login_failed", userId: account?.id, ip: ip,
                                        attributes: ["reason": account == nil ? "unknown_email" : "wrong_password", "email": email]),
                             context)
            throw RPCErrorReply(code: AuthError.invalidCredentials, message: "email or password is wrong")
        }
        guard account.suspendedAt == nil else {
            await self.audit(AuditEvent(type: "login_failed", userId: account.id, ip: ip, attributes: ["reason": "suspended"]), context)
            throw RPCErrorReply(code: AuthError.accountSuspended, message: "this account is suspended")
        }
        await self.throttle.recordSuccess(email: email, ip: ip)
        let session = try await self.openSession(for: account, client: request.client)
        Self.logins.increment()
        await self.audit(AuditEvent(type: "login", userId: account.id, ip: ip,
                                    attributes: ["userAgent": request.client.userAgent ?? ""]), context)
        return session
    }

    func refresh(_ request: RefreshRequest, context: MessageContext) async throws -> TokenPair {
        switch try await self.refreshTokens.rotate(request.refreshToken, ip: request.client.ip) {
        case .invalid:
            throw RPCErrorReply(code: AuthError.invalidToken, message: "refresh token unknown, expired or revoked")
        case .reused(let userID, let family):
            context.logger.warning("refresh token reused: family revoked", metadata: ["user": "\(userID)", "family": "\(family)"])
            await self.audit(AuditEvent(type: "refresh_token_reused", userId: userID, ip: request.client.ip,
                                        attributes: ["session": family]), context)
            throw RPCErrorReply(code: AuthError.tokenReused, message: "refresh token already used; this session is now ended, log in again")
        case .rotated(let token, let userID, let family):
            guard let account = try await self.accounts.find(id: userID), account.suspendedAt == nil else {
                try await self.refreshTokens.revoke(family: family)
                throw RPCErrorReply(code: AuthError.accountSuspended, message: "this account is suspended")
            }
            let access = try await self.issuer.issue(userID: account.id, role: account.role.rawValue, sessionID: family)
            return TokenPair(accessToken: access.token, expiresIn: Int(self.issuer.lifetime.components.seconds),
                             refreshToken: token, user: Self.view(account))
        }
    }

    func logout(_ request: LogoutRequest, context: MessageContext) async throws -> SessionsEnded {
        let active = try await self.refreshTokens.revoke(family: request.sessionId, of: request.userId)
        // Only a session that ended: naming another user's session, or one already over, ends
        // nothing and records nothing.
        if active {
            await self.audit(AuditEvent(type: "logout", userId: request.userId, ip: request.client.ip,
                                        attributes: ["session": request.sessionId]), context)
        }
        return SessionsEnded(sessionsEnded: active ? 1 : 0)
    }

    func listSessions(_ request: ListSessionsRequest, context: MessageContext) async throws -> SessionList {
        let sessions = try await self.refreshTokens.sessions(userID: request.userId)
        return SessionList(sessions: sessions.map {
            SessionView(id: $0.family, createdAt: $0.createdAt, lastUsedAt: $0.lastUsedAt, ip: $0.ip, userAgent: $0.userAgent)
        })
    }

    func logoutAll(_ request: LogoutAllRequest, context: MessageContext) async throws -> SessionsEnded {
        let ended = try await self.refreshTokens.revokeAll(userID: request.userId)
        await self.audit(AuditEvent(type: "logout_all", userId: request.userId, ip: request.client.ip,
                                    attributes: ["sessions": String(ended)]), context)
        return SessionsEnded(sessionsEnded: ended)
    }

    func changePassword(_ request: ChangePasswordRequest, context: MessageContext) async throws -> PasswordChanged {
        let ip = request.client.ip
        guard let account = try await self.accounts.find(id: request.userId) else {
            throw RPCErrorReply(code: AuthError.notFound, message: "no such account")
        }
        guard account.suspendedAt == nil else {
            throw RPCErrorReply(code: AuthError.accountSuspended, message: "this account is suspended")
        }
        // Guessing the current password here is throttled like guessing it at login.
        if let wait = await self.throttle.lockRemaining(email: account.email, ip: ip) { throw Self.throttled(wait) }
        guard try await self.hasher.verify(request.currentPassword, hash: account.passwordHash) else {
            await self.throttle.recordFailure(email: account.email, ip: ip)
            throw RPCErrorReply(code: AuthError.invalidCredentials, message: "current password is wrong")
        }
        guard request.newPassword != request.currentPassword else {
            throw RPCErrorReply(code: AuthError.invalidInput, message: "new password must differ from the current one")
        }
        try Self.checked { try PasswordPolicy.check(request.newPassword, email: account.email) }
        let hash = try await self.hasher.hash(request.newPassword)
        try await self.accounts.setPassword(hash: hash, for: account.id)
        // Every device is logged out; the device that changed the password gets a new session.
        let ended = try await self.refreshTokens.revokeAll(userID: account.id)
        let session = try await self.openSession(for: account, client: request.client)
        await self.audit(AuditEvent(type: "password_changed", userId: account.id, ip: ip,
                                    attributes: ["sessionsEnded": String(ended)]), context)
        return PasswordChanged(sessionsEnded: ended, session: session)
    }

    func setSuspended(_ request: SetSuspendedRequest, context: MessageContext) async throws -> UserView {
        // The gateway checked the token's role; the role may have changed since it was issued.
        guard let actor = try await self.accounts.find(id: request.actorId), actor.role == .admin, actor.suspendedAt == nil else {
            throw RPCErrorReply(code: AuthError.forbidden, message: "only an admin can do this")
        }
        guard request.actorId != request.userId else {
            throw RPCErrorReply(code: AuthError.invalidInput, message: "an admin cannot suspend or reinstate themselves")
        }
        let account: Account
        do {
            account = try await self.accounts.setSuspended(request.suspended, for: request.userId)
        } catch AccountStore.StoreError.notFound {
            throw RPCErrorReply(code: AuthError.notFound, message: "no user \(request.userId.lowercasedString)")
        }
        var ended = 0
        if request.suspended { ended = try await self.refreshTokens.revokeAll(userID: account.id) }
        await self.audit(AuditEvent(type: request.suspended ? "suspended" : "unsuspended", userId: account.id,
                                    actorId: actor.id, ip: request.client.ip, attributes: ["sessionsEnded": String(ended)]),
                         context)
        return Self.view(account)
    }

    // MARK: - Helpers

    private func openSession(for account: Account, client: ClientInfo) async throws -> TokenPair {
        let refresh = try await self.refreshTokens.issue(userID: account.id,
                                                         device: .init(ip: client.ip, userAgent: client.userAgent ?? ""))
        let access = try await self.issuer.issue(userID: account.id, role: account.role.rawValue, sessionID: refresh.family)
        return TokenPair(accessToken: access.token, expiresIn: Int(self.issuer.lifetime.components.seconds),
                         refreshToken: refresh.token, user: Self.view(account))
    }

    /// Audit events are recorded (batched, confirmed) once the reply has gone (``MessageContext/afterReply(_:)``),
    /// before the request is acknowledged; one that cannot be published is logged and counted
    /// (`aira_auth_audit_publish_failures_total`), and does not fail the user's action.
    private func audit(_ event: AuditEvent, _ context: MessageContext) async {
        context.afterReply {
            do {
                try await self.trail.record(event)
            } catch {
                Self.auditFailures.increment()
                context.logger.error("audit event not published", metadata: ["event": "\(event.type)", LogKey.error: "\(error)"])
            }
        }
    }

    /// The id of the account a sign-up makes: derived from the RPC's message id (random per
    /// request, the same on every delivery of it), or random when a message has none.
    static func accountID(forSignup messageID: String) -> UUID {
        guard !messageID.isEmpty else { return UUID() }
        var bytes = Array(SHA256.hash(data: Data("aira-signup\u{1F}\(messageID)".utf8)).prefix(16))
        bytes[6] = (bytes[6] & 0x0F) | 0x80  // version 8: custom
        bytes[8] = (bytes[8] & 0x3F) | 0x80  // RFC 9562 variant
        return UUID(uuid: (bytes[0], bytes[1], bytes[2], bytes[3], bytes[4], bytes[5], bytes[6], bytes[7],
                           bytes[8], bytes[9], bytes[10], bytes[11], bytes[12], bytes[13], bytes[14], bytes[15]))
    }

    static func view(_ account: Account) -> UserView {
        UserView(id: account.id, email: account.email, role: account.role.rawValue, emailVerified: account.emailVerifiedAt != nil,
                 suspended: account.suspendedAt != nil, createdAt: account.createdAt)
    }

    static func throttled(_ wait: Duration) -> RPCErrorReply {
        let seconds = max(1, Int((wait.seconds).rounded(.up)))
        return RPCErrorReply(code: AuthError.loginThrottled, message: "too many failed logins; try again in \(seconds) s",
                             details: ["retryAfter": String(seconds)])
    }

    /// Runs a rule check, turning its violation into a typed `invalid_input` reply.
    @discardableResult
    static func checked<T>(_ body: () throws -> T) throws -> T {
        do {
            return try body()
        } catch let violation as AccountRuleViolation {
            throw RPCErrorReply(code: AuthError.invalidInput, message: violation.message, details: ["rule": violation.code])
        }
    }

    static func verificationKey(_ token: String) -> String { "auth:verify:" + OpaqueToken.digest(token) }
}
