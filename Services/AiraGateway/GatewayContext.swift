import AiraCore
import AiraTokens
import Foundation
import Hummingbird
import Logging
import NIOCore

/// Per-request state: the request id, the client's address, and (on authenticated routes) the
/// verified access-token claims.
struct GatewayContext: RequestContext, RemoteAddressRequestContext {
    var coreContext: CoreRequestContextStorage
    let remoteAddress: SocketAddress?
    var requestID = ""
    var traceparent = ""
    var clientIP = "unknown"
    var claims: AccessTokenClaims?
    /// When the gateway took the request (``RequestMiddleware``).
    var started = ContinuousClock.now
    /// Hummingbird's logger for the request (with `hb.request.id`), without Aira's metadata.
    private var plainLogger: Logger

    init(source: ApplicationRequestContextSource) {
        self.coreContext = .init(source: source)
        self.remoteAddress = source.channel.remoteAddress
        self.plainLogger = source.logger
    }

    /// The request's logger, with the request id and (once authenticated) the user as metadata.
    /// Built when something is logged, not per request: setting the metadata on every request
    /// copied the logger and its metadata twice, a visible share of the gateway's CPU answering
    /// cached questions. Also what Hummingbird logs with (`RequestContextSource.logger`).
    var logger: Logger {
        get {
            var logger = self.plainLogger
            if !self.requestID.isEmpty { logger[metadataKey: LogKey.requestID] = .string(self.requestID) }
            if let claims = self.claims { logger[metadataKey: "user"] = .string(claims.sub.value) }
            return logger
        }
        set { self.plainLogger = newValue }
    }

    /// Whether a message at `level` would be logged (without building the request's logger).
    func logs(_ level: Logger.Level) -> Bool { self.plainLogger.logLevel <= level }

    /// The caller's user id, if a valid token came with the request (routes with an optional token).
    var callerID: UUID? { self.claims?.userID }
    var isAdmin: Bool { self.claims?.role == "ADMIN" }

    /// The authenticated user's claims; routes behind ``Authenticate`` always have them.
    func user() throws -> AccessTokenClaims {
        guard let claims = self.claims else { throw APIError.unauthenticated("missing access token") }
        return claims
    }
}
