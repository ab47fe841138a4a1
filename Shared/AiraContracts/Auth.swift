import AiraCore
import AiraMessaging
import Foundation

/// The auth RPC surface (aira-gateway → aira-auth). Two queues, so that cheap calls never wait
/// behind bcrypt: `auth.credentials` (signup, login, password change: one bcrypt each) and
/// `auth.sessions` (verify, refresh, logout, logout-all, the session list, suspend/unsuspend: Redis
/// and one row).
public enum AuthRPC {
    public static let credentials = QueueSpec(name: "auth.credentials",
                                              bindings: ["auth.signup", "auth.login", "auth.password"],
                                              kind: .rpc, maxLength: 10_000)
    public static let sessions = QueueSpec(name: "auth.sessions",
                                           bindings: ["auth.verify", "auth.refresh", "auth.logout", "auth.logout-all", "auth.suspend",
                                                      "auth.sessions.list"],
                                           kind: .rpc, maxLength: 10_000)
}

/// Who is calling, as the gateway saw it (throttling per IP, audit records).
public struct ClientInfo: Codable, Sendable, Hashable {
    public var ip: String
    public var userAgent: String?
    public init(ip: String, userAgent: String? = nil) {
        self.ip = ip
        self.userAgent = userAgent
    }
}

public struct SignupRequest: MessageContract {
    public static let messageType = "auth.signup.v1"
    public static let routingKey = "auth.signup"
    public var email: String
    public var password: String
    public var client: ClientInfo
    public init(email: String, password: String, client: ClientInfo) {
        self.email = email
        self.password = password
        self.client = client
    }
}

public struct SignupResponse: Codable, Sendable {
    /// Lower-case UUID, as everywhere in the API.
    public var userId: String
    public var email: String
    /// Whether the verification mail was queued (it always is when signup succeeds).
    public var verificationSent: Bool
    public init(userId: UUID, email: String, verificationSent: Bool) {
        self.userId = userId.lowercasedString
        self.email = email
        self.verificationSent = verificationSent
    }
}

public struct VerifyEmailRequest: MessageContract {
    public static let messageType = "auth.verify.v1"
    public static let routingKey = "auth.verify"
    public var token: String
    public var client: ClientInfo
    public init(token: String, client: ClientInfo) {
        self.token = token
        self.client = client
    }
}

public struct LoginRequest: MessageContract {
    public static let messageType = "auth.login.v1"
    public static let routingKey = "auth.login"
    public var email: String
    public var password: String
    public var client: ClientInfo
    public init(email: String, password: String, client: ClientInfo) {
        self.email = email
        self.password = password
        self.client = client
    }
}

/// A session's credentials: a short-lived access token and the refresh token that renews it.
public struct TokenPair: Codable, Sendable {
    public var accessToken: String
    public var tokenType: String
    /// Seconds until the access token expires.
    public var expiresIn: Int
    public var refreshToken: String
    public var user: UserView
    public init(accessToken: String, expiresIn: Int, refreshToken: String, user: UserView) {
        self.accessToken = accessToken
        self.tokenType = "Bearer"
        self.expiresIn = expiresIn
        self.refreshToken = refreshToken
        self.user = user
    }
}

/// A user as the API shows it.
public struct UserView: Codable, Sendable, Equatable {
    /// Lower-case UUID, as in the access token's `sub`.
    public var id: String
    public var email: String
    public var role: String
    public var emailVerified: Bool
    public var suspended: Bool
    public var createdAt: Date
    public init(id: UUID, email: String, role: String, emailVerified: Bool, suspended: Bool, createdAt: Date) {
        self.id = id.lowercasedString
        self.email = email
        self.role = role
        self.emailVerified = emailVerified
        self.suspended = suspended
        self.createdAt = createdAt
    }
}

public struct RefreshRequest: MessageContract {
    public static let messageType = "auth.refresh.v1"
    public static let routingKey = "auth.refresh"
    public var refreshToken: String
    public var client: ClientInfo
    public init(refreshToken: String, client: ClientInfo) {
        self.refreshToken = refreshToken
        self.client = client
    }
}

/// Ends one session of the user: the access token's own `sid` (logout), or another of the
/// user's sessions from the sessions page. A session of another user is not ended.
public struct LogoutRequest: MessageContract {
    public static let messageType = "auth.logout.v1"
    public static let routingKey = "auth.logout"
    public var userId: UUID
    public var sessionId: String
    public var client: ClientInfo
    public init(userId: UUID, sessionId: String, client: ClientInfo) {
        self.userId = userId
        self.sessionId = sessionId
        self.client = client
    }
}

public struct LogoutAllRequest: MessageContract {
    public static let messageType = "auth.logout-all.v1"
    public static let routingKey = "auth.logout-all"
    public var userId: UUID
    public var client: ClientInfo
    public init(userId: UUID, client: ClientInfo) {
        self.userId = userId
        self.client = client
    }
}

public struct ChangePasswordRequest: MessageContract {
    public static let messageType = "auth.password.v1"
    public static let routingKey = "auth.password"
    public var userId: UUID
    public var currentPassword: String
    public var newPassword: String
    public var client: ClientInfo
    public init(userId: UUID, currentPassword: String, newPassword: String, client: ClientInfo) {
        self.userId = userId
        self.currentPassword = currentPassword
        self.newPassword = newPassword
        self.client = client
    }
}

/// Suspends or reinstates a user. The actor's role is checked again by aira-auth.
public struct SetSuspendedRequest: MessageContract {
    public static let messageType = "auth.suspend.v1"
    public static let routingKey = "auth.suspend"
    public var actorId: UUID
    public var userId: UUID
    public var suspended: Bool
    public var client: ClientInfo
    public init(actorId: UUID, userId: UUID, suspended: Bool, client: ClientInfo) {
        self.actorId = actorId
        self.userId = userId
        self.suspended = suspended
        self.client = client
    }
}

/// The user's open sessions (one per login on a device), most recently used first.
public struct ListSessionsRequest: MessageContract {
    public static let messageType = "auth.sessions.list.v1"
    public static let routingKey = "auth.sessions.list"
    public var userId: UUID
    public init(userId: UUID) { self.userId = userId }
}

public struct SessionView: Codable, Sendable, Equatable {
    /// The session id: the access token's `sid`.
    public var id: String
    public var createdAt: Date?
    public var lastUsedAt: Date?
    public var ip: String?
    public var userAgent: String?
    public init(id: String, createdAt: Date?, lastUsedAt: Date?, ip: String?, userAgent: String?) {
        self.id = id
        self.createdAt = createdAt
        self.lastUsedAt = lastUsedAt
        self.ip = ip
        self.userAgent = userAgent
    }
}

public struct SessionList: Codable, Sendable {
    public var sessions: [SessionView]
    public init(sessions: [SessionView]) { self.sessions = sessions }
}

/// How many sessions an operation ended (logout, logout-all).
public struct SessionsEnded: Codable, Sendable {
    public var sessionsEnded: Int
    public init(sessionsEnded: Int) { self.sessionsEnded = sessionsEnded }
}

/// A password change ends every session, then opens a new one for the device that made it.
public struct PasswordChanged: Codable, Sendable {
    public var sessionsEnded: Int
    public var session: TokenPair
    public init(sessionsEnded: Int, session: TokenPair) {
        self.sessionsEnded = sessionsEnded
        self.session = session
    }
}

/// The typed errors aira-auth answers with (``RPCErrorReply/code``); the gateway maps each to
/// an HTTP status (docs/api.md).
public enum AuthError {
    /// Email or password breaks the rules (message says which): 400.
    public static let invalidInput = "invalid_input"
    /// 409.
    public static let emailTaken = "email_taken"
    /// Wrong email or password (never says which): 401.
    public static let invalidCredentials = "invalid_credentials"
    /// Too many failed logins for the account or the address: 429, `details.retryAfter` seconds.
    public static let loginThrottled = "login_throttled"
    /// Refresh or verification token unknown, expired or revoked: 401.
    public static let invalidToken = "invalid_token"
    /// A rotated refresh token was presented again; its whole family is now revoked: 401.
    public static let tokenReused = "token_reused"
    /// 403.
    public static let accountSuspended = "account_suspended"
    /// 403.
    public static let forbidden = "forbidden"
    /// 404.
    public static let notFound = "not_found"
}
