import AiraAccounts
import AiraContracts
import AiraCore
import AiraMessaging
import AiraServiceKit
import AiraTokens
import Foundation
import HTTPTypes
import Hummingbird

/// `/api/auth/*`, `/api/users/me` and `/api/admin/users/*`: thin translations of HTTP to
/// aira-auth RPCs. `me` is answered here from PostgreSQL, so it keeps working while aira-auth
/// is down or busy with a login storm.
///
/// Browser sessions (``BrowserSession``): a request with `X-Aira-Client: web` gets its refresh
/// token as an HttpOnly cookie instead of in the body, and refreshes with that cookie.
struct AuthRoutes: Sendable {
    let calls: ServiceCalls
    let accounts: AccountStore
    let bodyLimit: Int
    let credentialsTimeout: Duration
    var credentialsLimit: AdaptiveLimit? = nil
    let sessionsTimeout: Duration
    var browser = BrowserSession()

    struct Credentials: Decodable { var email: String; var password: String }
    struct RefreshBody: Decodable { var refreshToken: String }
    struct VerifyBody: Decodable { var token: String }
    struct PasswordBody: Decodable { var currentPassword: String; var newPassword: String }

    private func target(_ routingKey: String, bcrypt: Bool) -> ServiceCalls.Target {
        bcrypt ? .init(queue: AuthRPC.credentials.name, routingKey: routingKey, timeout: self.credentialsTimeout,
                       adaptive: self.credentialsLimit)
            : .init(queue: AuthRPC.sessions.name, routingKey: routingKey, timeout: self.sessionsTimeout)
    }

    private func client(_ request: Request, _ context: GatewayContext) -> ClientInfo {
        ClientInfo(ip: context.clientIP, userAgent: request.headers[.userAgent].map { String($0.prefix(200)) })
    }

    func signup(_ request: Request, context: GatewayContext) async throws -> Response {
        let body = try await JSONBody.decode(Credentials.self, from: request, limit: self.bodyLimit)
        let reply = try await self.calls.call(
            SignupRequest(email: try required(body.email, "email"), password: try required(body.password, "password"),
                          client: self.client(request, context)),
            to: self.target(SignupRequest.routingKey, bcrypt: true), expecting: SignupResponse.self, context: context)
        return JSONResponse.make(.created, reply)
    }

    func verify(_ request: Request, context: GatewayContext) async throws -> Response {
        let token: String
        if request.method == .get {
            guard let t = request.uri.queryParameters.get("token") else {
                throw APIError.badRequest("invalid_request", "missing query parameter 'token'")
            }
            token = t
        } else {
            token = try await JSONBody.decode(VerifyBody.self, from: request, limit: self.bodyLimit).token
        }
        let user = try await self.calls.call(VerifyEmailRequest(token: try required(token, "token"), client: self.client(request, context)),
                                             to: self.target(VerifyEmailRequest.routingKey, bcrypt: false),
                                             expecting: UserView.self, context: context)
        return JSONResponse.make(.ok, user)
    }

    func login(_ request: Request, context: GatewayContext) async throws -> Response {
        let body = try await JSONBody.decode(Credentials.self, from: request, limit: self.bodyLimit)
        let session = try await self.calls.call(
            LoginRequest(email: try required(body.email, "email"), password: try required(body.password, "password"),
                         client: self.client(request, context)),
            to: self.target(LoginRequest.routingKey, bcrypt: true), expecting: TokenPair.self, context: context)
        return self.browser.isBrowser(request) ? self.browser.respond(.ok, session) : JSONResponse.make(.ok, session)
    }

    func refresh(_ request: Request, context: GatewayContext) async throws -> Response {
        let browser = self.browser.isBrowser(request)
        let token: String
        if browser {
            guard let cookie = request.cookies[BrowserSession.cookieName]?.value, !cookie.isEmpty else {
                throw self.browser.ended(APIError.invalidToken("no session cookie: log in"))
            }
            token = cookie
        } else {
            token = try required(try await JSONBody.decode(RefreshBody.self, from: request, limit: self.bodyLimit).refreshToken,
                                 "refreshToken")
        }
        do {
            let session = try await self.calls.call(
                RefreshRequest(refreshToken: token, client: self.client(request, context)),
                to: self.target(RefreshRequest.routingKey, bcrypt: false), expecting: TokenPair.self, context: context)
            return browser ? self.browser.respond(.ok, session) : JSONResponse.make(.ok, session)
        } catch let error as APIError where browser && [401, 403].contains(error.status.code) {
            // The session is over (unknown, reused, revoked, suspended): the cookie goes too.
            throw self.browser.ended(error)
        }
    }

    /// `GET /api/auth/sessions`: the caller's open sessions, the current one marked.
    func sessions(_ request: Request, context: GatewayContext) async throws -> Response {
        let claims = try context.user()
        let list = try await self.calls.call(ListSessionsRequest(userId: try Self.userID(claims)),
                                             to: self.target(ListSessionsRequest.routingKey, bcrypt: false),
                                             expecting: SessionList.self, context: context)
        struct Item: Encodable {
            var id: String
            var current: Bool
            var createdAt: Date?
            var lastUsedAt: Date?
            var ip: String?
            var userAgent: String?
        }
        let items = list.sessions.map {
            Item(id: $0.id, current: $0.id == claims.sid, createdAt: $0.createdAt, lastUsedAt: $0.lastUsedAt, ip: $0.ip, userAgent: $0.userAgent)
        }
        return JSONResponse.make(.ok, PageBody(items: items, nextCursor: nil))
    }

    /// `DELETE /api/auth/sessions/{id}`: ends one of the caller's sessions (another device).
    func endSession(_ request: Request, context: GatewayContext) async throws -> Response {
        let claims = try context.user()
        guard let id = context.parameters.get("id"), (1...64).contains(id.count) else { throw APIError.notFound("session") }
        let ended = try await self.calls.call(
            LogoutRequest(userId: try Self.userID(claims), sessionId: id, client: self.client(request, context)),
            to: self.target(LogoutRequest.routingKey, bcrypt: false), expecting: SessionsEnded.self, context: context)
        guard ended.sessionsEnded > 0 else { throw APIError.notFound("session") }
        var response = JSONResponse.make(.ok, ended)
        if id == claims.sid, self.browser.isBrowser(request) { self.browser.clearCookies(on: &response) }
        return response
    }

    func logout(_ request: Request, context: GatewayContext) async throws -> Response {
        let claims = try context.user()
        let ended = try await self.calls.call(
            LogoutRequest(userId: try Self.userID(claims), sessionId: claims.sid, client: self.client(request, context)),
            to: self.target(LogoutRequest.routingKey, bcrypt: false), expecting: SessionsEnded.self, context: context)
        var response = JSONResponse.make(.ok, ended)
        if self.browser.isBrowser(request) { self.browser.clearCookies(on: &response) }
        return response
    }

    func logoutAll(_ request: Request, context: GatewayContext) async throws -> Response {
        let claims = try context.user()
        let ended = try await self.calls.call(
            LogoutAllRequest(userId: try Self.userID(claims), client: self.client(request, context)),
            to: self.target(LogoutAllRequest.routingKey, bcrypt: false), expecting: SessionsEnded.self, context: context)
        var response = JSONResponse.make(.ok, ended)
        if self.browser.isBrowser(request) { self.browser.clearCookies(on: &response) }
        return response
    }

    func changePassword(_ request: Request, context: GatewayContext) async throws -> Response {
        let claims = try context.user()
        let body = try await JSONBody.decode(PasswordBody.self, from: request, limit: self.bodyLimit)
        let changed = try await self.calls.call(
            ChangePasswordRequest(userId: try Self.userID(claims),
                                  currentPassword: try required(body.currentPassword, "currentPassword"),
                                  newPassword: try required(body.newPassword, "newPassword"), client: self.client(request, context)),
            to: self.target(ChangePasswordRequest.routingKey, bcrypt: true), expecting: PasswordChanged.self, context: context)
        guard self.browser.isBrowser(request) else { return JSONResponse.make(.ok, changed) }
        struct Changed: Encodable { var sessionsEnded: Int; var session: BrowserSession.Body }
        var response = JSONResponse.make(.ok, Changed(sessionsEnded: changed.sessionsEnded, session: .init(changed.session)))
        self.browser.setCookies(changed.session.refreshToken, on: &response)
        return response
    }

    func me(_ request: Request, context: GatewayContext) async throws -> Response {
        let id = try Self.userID(try context.user())
        let account: Account?
        do {
            account = try await self.accounts.find(id: id)
        } catch {
            context.logger.warning("user lookup failed", metadata: [LogKey.error: "\(error)"])
            throw APIError.unavailable("the user database is not reachable, try again")
        }
        guard let account else { throw APIError(status: .notFound, code: "not_found", message: "this account no longer exists") }
        guard account.suspendedAt == nil else {
            throw APIError(status: .forbidden, code: AuthError.accountSuspended, message: "this account is suspended")
        }
        return JSONResponse.make(.ok, UserView(id: account.id, email: account.email, role: account.role.rawValue,
                                               emailVerified: account.emailVerifiedAt != nil, suspended: false,
                                               createdAt: account.createdAt))
    }

    func setSuspended(_ suspended: Bool) -> @Sendable (Request, GatewayContext) async throws -> Response {
        { request, context in
            let claims = try context.user()
            guard let raw = context.parameters.get("id"), let target = UUID(text: raw) else {
                throw APIError.badRequest("invalid_request", "the user id in the path is not a UUID")
            }
            let user = try await self.calls.call(
                SetSuspendedRequest(actorId: try Self.userID(claims), userId: target, suspended: suspended,
                                    client: self.client(request, context)),
                to: self.target(SetSuspendedRequest.routingKey, bcrypt: false), expecting: UserView.self, context: context)
            return JSONResponse.make(.ok, user)
        }
    }

    static func userID(_ claims: AccessTokenClaims) throws -> UUID {
        guard let id = claims.userID else { throw APIError.invalidToken("access token has no valid subject") }
        return id
    }
}

/// The web app's sessions. Its access token lives in the page's memory only; the refresh token
/// is an HttpOnly cookie (`aira_refresh`, `SameSite=Strict`, `Path=/api/auth`) that no script
/// can read. A request says it is the web app with `X-Aira-Client: web`: a header no other site
/// can make a browser send to this origin without a CORS preflight (which the gateway does not
/// grant), so a cross-site request cannot use the cookie (with SameSite, two locks on one door).
struct BrowserSession: Sendable {
    static let cookieName = "aira_refresh"
    /// A cookie scripts may read (`aira_session=1`, nothing secret): tells the page that a
    /// refresh is worth trying on load, so a visitor without a session makes no failing request.
    static let hintCookieName = "aira_session"
    static let header = HTTPField.Name.airaClient
    /// The cookie's lifetime: the refresh token's (`AIRA_REFRESH_TOKEN_TTL`).
    var maxAge = 30 * 86_400
    /// `Secure` (HTTPS only): `AIRA_COOKIE_SECURE`, on wherever the gateway is behind TLS.
    var secure = false

    /// A token pair without its refresh token (which travels in the cookie).
    struct Body: Encodable {
        var accessToken: String
        var tokenType: String
        var expiresIn: Int
        var user: UserView
        init(_ pair: TokenPair) {
            self.accessToken = pair.accessToken
            self.tokenType = pair.tokenType
            self.expiresIn = pair.expiresIn
            self.user = pair.user
        }
    }

    func isBrowser(_ request: Request) -> Bool { request.headers.first(Self.header) == "web" }

    func cookie(_ token: String) -> Cookie {
        Cookie(name: Self.cookieName, value: token, maxAge: self.maxAge, path: "/api/auth", secure: self.secure, httpOnly: true,
               sameSite: .strict)
    }

    var clearedCookie: Cookie {
        Cookie(name: Self.cookieName, value: "", maxAge: 0, path: "/api/auth", secure: self.secure, httpOnly: true, sameSite: .strict)
    }

    var hintCookie: Cookie {
        Cookie(name: Self.hintCookieName, value: "1", maxAge: self.maxAge, path: "/", secure: self.secure, httpOnly: false, sameSite: .strict)
    }

    var clearedHintCookie: Cookie {
        Cookie(name: Self.hintCookieName, value: "", maxAge: 0, path: "/", secure: self.secure, httpOnly: false, sameSite: .strict)
    }

    func setCookies(_ token: String, on response: inout Response) {
        response.setCookie(self.cookie(token))
        response.setCookie(self.hintCookie)
    }

    func clearCookies(on response: inout Response) {
        response.setCookie(self.clearedCookie)
        response.setCookie(self.clearedHintCookie)
    }

    func respond(_ status: HTTPResponse.Status, _ pair: TokenPair) -> Response {
        var response = JSONResponse.make(status, Body(pair))
        self.setCookies(pair.refreshToken, on: &response)
        response.headers[.cacheControl] = "no-store"
        return response
    }

    /// The error, with the cookie cleared.
    func ended(_ error: APIError) -> APIError {
        var error = error
        error.headers.append(HTTPField(name: .setCookie, value: self.clearedCookie.description))
        error.headers.append(HTTPField(name: .setCookie, value: self.clearedHintCookie.description))
        return error
    }
}
