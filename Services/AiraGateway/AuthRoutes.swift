import AiraAccounts
import AiraContracts
import AiraMessaging
import AiraTokens
import Foundation
import Hummingbird

/// `/api/auth/*`, `/api/users/me` and `/api/admin/users/*`: thin translations of HTTP to
/// aira-auth RPCs. `me` is answered here from PostgreSQL, so it keeps working while aira-auth
/// is down or busy with a login storm.
struct AuthRoutes: Sendable {
    let calls: ServiceCalls
    let accounts: AccountStore
    let bodyLimit: Int
    let credentialsTimeout: Duration
    let sessionsTimeout: Duration

    struct Credentials: Decodable { var email: String; var password: String }
    struct RefreshBody: Decodable { var refreshToken: String }
    struct VerifyBody: Decodable { var token: String }
    struct PasswordBody: Decodable { var currentPassword: String; var newPassword: String }

    private func target(_ routingKey: String, bcrypt: Bool) -> ServiceCalls.Target {
        bcrypt ? .init(queue: AuthRPC.credentials.name, routingKey: routingKey, timeout: self.credentialsTimeout)
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
        return JSONResponse.make(.ok, session)
    }

    func refresh(_ request: Request, context: GatewayContext) async throws -> Response {
        let body = try await JSONBody.decode(RefreshBody.self, from: request, limit: self.bodyLimit)
        let session = try await self.calls.call(
            RefreshRequest(refreshToken: try required(body.refreshToken, "refreshToken"), client: self.client(request, context)),
            to: self.target(RefreshRequest.routingKey, bcrypt: false), expecting: TokenPair.self, context: context)
        return JSONResponse.make(.ok, session)
    }

    func logout(_ request: Request, context: GatewayContext) async throws -> Response {
        let claims = try context.user()
        let ended = try await self.calls.call(
            LogoutRequest(userId: try Self.userID(claims), sessionId: claims.sid, client: self.client(request, context)),
            to: self.target(LogoutRequest.routingKey, bcrypt: false), expecting: SessionsEnded.self, context: context)
        return JSONResponse.make(.ok, ended)
    }

    func logoutAll(_ request: Request, context: GatewayContext) async throws -> Response {
        let claims = try context.user()
        let ended = try await self.calls.call(
            LogoutAllRequest(userId: try Self.userID(claims), client: self.client(request, context)),
            to: self.target(LogoutAllRequest.routingKey, bcrypt: false), expecting: SessionsEnded.self, context: context)
        return JSONResponse.make(.ok, ended)
    }

    func changePassword(_ request: Request, context: GatewayContext) async throws -> Response {
        let claims = try context.user()
        let body = try await JSONBody.decode(PasswordBody.self, from: request, limit: self.bodyLimit)
        let changed = try await self.calls.call(
            ChangePasswordRequest(userId: try Self.userID(claims),
                                  currentPassword: try required(body.currentPassword, "currentPassword"),
                                  newPassword: try required(body.newPassword, "newPassword"), client: self.client(request, context)),
            to: self.target(ChangePasswordRequest.routingKey, bcrypt: true), expecting: PasswordChanged.self, context: context)
        return JSONResponse.make(.ok, changed)
    }

    func me(_ request: Request, context: GatewayContext) async throws -> Response {
        let id = try Self.userID(try context.user())
        let account: Account?
        do {
            account = try await self.accounts.find(id: id)
        } catch {
            context.logger.warning("user lookup failed", metadata: ["error": "\(error)"])
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
            guard let raw = context.parameters.get("id"), let target = UUID(uuidString: raw) else {
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
