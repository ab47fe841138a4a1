import Foundation
import JWTKit
import Synchronization

/// Why a token was refused. The gateway answers 401 for every case and logs `reason`.
public struct TokenRejected: Error, Sendable, Equatable, CustomStringConvertible {
    public var reason: String
    public var description: String { "access token rejected: \(self.reason)" }
    package init(reason: String) { self.reason = reason }
}

/// Issues access tokens (aira-auth): EdDSA, `kid` in the header, short expiry.
public struct AccessTokenIssuer: Sendable {
    let keys: JWTKeyCollection
    public let signingKID: String
    public let issuer: String
    public let audience: String
    public let lifetime: Duration

    public init(signingKey: TokenKey, issuer: String = "aira-auth", audience: String = "aira",
                lifetime: Duration = .seconds(900)) async throws {
        guard let privateKey = signingKey.privateKey else { throw TokenConfigurationError("the signing key has no private part") }
        self.keys = await JWTKeyCollection().add(eddsa: privateKey, kid: JWKIdentifier(string: signingKey.kid))
        self.signingKID = signingKey.kid
        self.issuer = issuer
        self.audience = audience
        self.lifetime = lifetime
    }

    public func issue(userID: UUID, role: String, sessionID: String, now: Date = Date()) async throws -> (token: String, expiresAt: Date) {
        let expires = now.addingTimeInterval(Double(self.lifetime.components.seconds))
        let claims = AccessTokenClaims(userID: userID, role: role, sessionID: sessionID, issuer: self.issuer,
                                       audience: self.audience, issuedAt: now, expiresAt: expires)
        var header = JWTHeader()
        header.typ = "JWT"
        let token = try await self.keys.sign(claims, kid: JWKIdentifier(string: self.signingKID), header: header)
        return (token, expires)
    }
}

/// Verifies access tokens locally (the gateway): the header must say `alg: EdDSA` and name a
/// configured `kid` (no fallback to another key), the signature must verify with that key, and
/// `iss`, `aud` and `exp` must hold. Several keys can be accepted at once for rotation.
public struct AccessTokenVerifier: Sendable {
    let keys: JWTKeyCollection
    let kids: Set<String>
    public let issuer: String
    public let audience: String
    /// Tokens already verified, by their full text (signature included, so an altered token
    /// is never a hit), until they expire: a client sends the same token for its whole
    /// lifetime, and the signature check is the costly part.
    let verified = VerifiedTokens(capacity: 50_000)

    public init(keys: [TokenKey], issuer: String = "aira-auth", audience: String = "aira") async throws {
        guard !keys.isEmpty else { throw TokenConfigurationError("no verification keys configured") }
        let collection = JWTKeyCollection()
        for key in keys {
            await collection.add(eddsa: key.publicKey, kid: JWKIdentifier(string: key.kid))
        }
        self.keys = collection
        self.kids = Set(keys.map(\.kid))
        self.issuer = issuer
        self.audience = audience
    }

    public func verify(_ token: String, now: Date = Date()) async throws -> AccessTokenClaims {
        if let claims = self.verified.claims(for: token) {
            guard claims.exp.value > now else { throw TokenRejected(reason: "expired") }
            return claims
        }
        let claims = try await self.verifyFully(token)
        self.verified.insert(token, claims)
        return claims
    }

    private func verifyFully(_ token: String) async throws -> AccessTokenClaims {
        let parts = token.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 3, let headerData = Data(base64URL: String(parts[0])),
              let header = try? JSONSerialization.jsonObject(with: headerData) as? [String: Any] else {
            throw TokenRejected(reason: "malformed")
        }
        guard header["alg"] as? String == "EdDSA" else { throw TokenRejected(reason: "algorithm \(header["alg"] ?? "none") not accepted") }
        guard let kid = header["kid"] as? String, self.kids.contains(kid) else { throw TokenRejected(reason: "unknown key id") }
        if let typ = header["typ"] as? String, typ.uppercased() != "JWT" { throw TokenRejected(reason: "not a JWT") }
        let claims: AccessTokenClaims
        do {
            claims = try await self.keys.verify(token, as: AccessTokenClaims.self)
        } catch let error as JWTError {
            throw TokenRejected(reason: error.errorType == .claimVerificationFailure ? "expired" : "bad signature or claims")
        } catch {
            throw TokenRejected(reason: "unverifiable")
        }
        guard claims.iss.value == self.issuer else { throw TokenRejected(reason: "wrong issuer") }
        guard claims.aud.value.contains(self.audience) else { throw TokenRejected(reason: "wrong audience") }
        guard claims.userID != nil else { throw TokenRejected(reason: "bad subject") }
        return claims
    }
}

/// A bounded map of verified tokens; when full, it starts again empty (tokens are re-verified once).
final class VerifiedTokens: Sendable {
    let capacity: Int
    private let tokens = Mutex<[String: AccessTokenClaims]>([:])

    init(capacity: Int) { self.capacity = capacity }

    func claims(for token: String) -> AccessTokenClaims? { self.tokens.withLock { $0[token] } }

    func insert(_ token: String, _ claims: AccessTokenClaims) {
        self.tokens.withLock { tokens in
            if tokens.count >= self.capacity { tokens.removeAll(keepingCapacity: true) }
            tokens[token] = claims
        }
    }
}

extension Data {
    init?(base64URL text: String) {
        var s = text.replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
        while s.count % 4 != 0 { s += "=" }
        self.init(base64Encoded: s)
    }
}
