import AiraCore
import Foundation
import JWTKit

/// The claims of an Aira access token: short-lived, signed by aira-auth, verified by the
/// gateway without a call.
public struct AccessTokenClaims: JWTPayload, Equatable {
    /// The user id.
    public var sub: SubjectClaim
    public var role: String
    /// The refresh-token family (one per device login): logout of a device ends it.
    public var sid: String
    public var iss: IssuerClaim
    public var aud: AudienceClaim
    public var iat: IssuedAtClaim
    public var exp: ExpirationClaim

    public init(userID: UUID, role: String, sessionID: String, issuer: String, audience: String, issuedAt: Date, expiresAt: Date) {
        self.sub = SubjectClaim(value: userID.lowercasedString)
        self.role = role
        self.sid = sessionID
        self.iss = IssuerClaim(value: issuer)
        self.aud = AudienceClaim(value: [audience])
        self.iat = IssuedAtClaim(value: issuedAt)
        self.exp = ExpirationClaim(value: expiresAt)
    }

    public var userID: UUID? { UUID(text: self.sub.value) }

    /// Signature and expiry are checked by jwt-kit; issuer and audience by ``AccessTokenVerifier``.
    public func verify(using algorithm: some JWTAlgorithm) async throws {
        try self.exp.verifyNotExpired()
    }
}

/// One Ed25519 key with its id. Keys are given to services as `kid:base64` (32-byte seed for
/// the signing key, 32-byte public key for verification keys).
public struct TokenKey: Sendable {
    public let kid: String
    let privateKey: EdDSA.PrivateKey?
    public let publicKey: EdDSA.PublicKey

    public static func generate(kid: String) throws -> TokenKey {
        let key = try EdDSA.PrivateKey(curve: .ed25519)
        return TokenKey(kid: kid, privateKey: key, publicKey: key.publicKey)
    }

    /// `kid:base64(seed)`.
    public init(signing text: String) throws {
        let (kid, bytes) = try Self.split(text)
        let key = try EdDSA.PrivateKey(d: bytes.base64URL, curve: .ed25519)
        self.init(kid: kid, privateKey: key, publicKey: key.publicKey)
    }

    /// `kid:base64(public key)`.
    public init(verifying text: String) throws {
        let (kid, bytes) = try Self.split(text)
        self.init(kid: kid, privateKey: nil, publicKey: try EdDSA.PublicKey(x: bytes.base64URL, curve: .ed25519))
    }

    init(kid: String, privateKey: EdDSA.PrivateKey?, publicKey: EdDSA.PublicKey) {
        self.kid = kid
        self.privateKey = privateKey
        self.publicKey = publicKey
    }

    /// What to hand to verifying services: `kid:base64(public key)`.
    public var verifyingText: String { "\(self.kid):\(self.publicKey.rawRepresentation.base64EncodedString())" }
    /// What to hand to the signing service: `kid:base64(seed)`.
    public var signingText: String? {
        self.privateKey.map { "\(self.kid):\(Data($0.rawRepresentation).base64EncodedString())" }
    }

    private static func split(_ text: String) throws -> (String, Data) {
        guard let colon = text.firstIndex(of: ":"), colon != text.startIndex,
              let data = Data(base64Encoded: String(text[text.index(after: colon)...])), data.count == 32 else {
            throw TokenConfigurationError("expected kid:base64 of a 32-byte Ed25519 key, got \(text.prefix(12))…")
        }
        return (String(text[..<colon]), data)
    }
}

public struct TokenConfigurationError: Error, CustomStringConvertible {
    public var description: String
    package init(_ d: String) { self.description = d }
}

extension Data {
    fileprivate var base64URL: String {
        self.base64EncodedString().replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_")
            .replacingOccurrences(of: "=", with: "")
    }
}
