import AiraTokens
import Foundation
import Hummingbird
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

    init(source: ApplicationRequestContextSource) {
        self.coreContext = .init(source: source)
        self.remoteAddress = source.channel.remoteAddress
    }

    /// The caller's user id, if a valid token came with the request (routes with an optional token).
    var callerID: UUID? { self.claims?.userID }
    var isAdmin: Bool { self.claims?.role == "ADMIN" }

    /// The authenticated user's claims; routes behind ``Authenticate`` always have them.
    func user() throws -> AccessTokenClaims {
        guard let claims = self.claims else { throw APIError.unauthenticated("missing access token") }
        return claims
    }
}
