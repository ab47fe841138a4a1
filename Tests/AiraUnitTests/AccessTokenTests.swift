import AiraTokens
import Crypto
import Foundation
import Testing

@Suite("Access tokens: EdDSA, kid, algorithm pinned, iss/aud/exp")
struct AccessTokenTests {
    let user = UUID()

    func b64url(_ data: Data) -> String {
        data.base64EncodedString().replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_")
            .replacingOccurrences(of: "=", with: "")
    }

    func b64url(_ json: [String: Any]) throws -> String { b64url(try JSONSerialization.data(withJSONObject: json)) }

    @Test("a fresh token verifies; its claims come back")
    func roundTrip() async throws {
        let key = try TokenKey.generate(kid: "k1")
        let issuer = try await AccessTokenIssuer(signingKey: key)
        let (token, expires) = try await issuer.issue(userID: user, role: "ADMIN", sessionID: "fam-1")
        #expect(expires > Date().addingTimeInterval(800))
        let claims = try await AccessTokenVerifier(keys: [key]).verify(token)
        #expect(claims.userID == user && claims.role == "ADMIN" && claims.sid == "fam-1")
    }

    @Test("a verified token is remembered until it expires; an altered copy is verified again")
    func verifiedTokenCache() async throws {
        let key = try TokenKey.generate(kid: "k1")
        let issuer = try await AccessTokenIssuer(signingKey: key, lifetime: .seconds(60))
        let verifier = try await AccessTokenVerifier(keys: [key])
        let token = try await issuer.issue(userID: user, role: "USER", sessionID: "s").token
        _ = try await verifier.verify(token)
        #expect(try await verifier.verify(token).userID == user)
        // The remembered token still expires.
        await #expect(throws: TokenRejected(reason: "expired")) {
            _ = try await verifier.verify(token, now: Date().addingTimeInterval(120))
        }
        // Same header and payload, another signature: not a hit, and refused.
        let parts = token.split(separator: ".")
        let forged = "\(parts[0]).\(parts[1]).\(String(parts[2].reversed()))"
        await #expect(throws: TokenRejected.self) { _ = try await verifier.verify(forged) }
    }

    @Test("keys travel as text and rotate: several accepted, one signing")
    func rotation() async throws {
        let old = try TokenKey.generate(kid: "2026-10")
        let new = try TokenKey(signing: try TokenKey.generate(kid: "2026-11").signingText!)
        let oldToken = try await AccessTokenIssuer(signingKey: old).issue(userID: user, role: "USER", sessionID: "a").token
        let newToken = try await AccessTokenIssuer(signingKey: new).issue(userID: user, role: "USER", sessionID: "b").token
        let both = try await AccessTokenVerifier(keys: [try TokenKey(verifying: old.verifyingText), try TokenKey(verifying: new.verifyingText)])
        _ = try await both.verify(oldToken)
        _ = try await both.verify(newToken)
        let onlyNew = try await AccessTokenVerifier(keys: [try TokenKey(verifying: new.verifyingText)])
        await #expect(throws: TokenRejected(reason: "unknown key id")) { _ = try await onlyNew.verify(oldToken) }
        #expect(throws: TokenConfigurationError.self) { _ = try TokenKey(verifying: "nokid") }
    }

    @Test("tampered, expired, wrong kid, alg none, HS256 with the public key, wrong iss/aud: all refused")
    func refusals() async throws {
        let key = try TokenKey.generate(kid: "k1")
        let verifier = try await AccessTokenVerifier(keys: [key])
        let issuer = try await AccessTokenIssuer(signingKey: key)
        let token = try await issuer.issue(userID: user, role: "USER", sessionID: "s").token
        let parts = token.split(separator: ".").map(String.init)

        // Tampered: role raised in the payload, old signature kept.
        var payload = try JSONSerialization.jsonObject(with: Data(base64Encoded: parts[1].padded)!) as! [String: Any]
        payload["role"] = "ADMIN"
        let tampered = "\(parts[0]).\(try b64url(payload)).\(parts[2])"
        await #expect(throws: TokenRejected.self) { _ = try await verifier.verify(tampered) }

        // Expired.
        let expired = try await issuer.issue(userID: user, role: "USER", sessionID: "s", now: Date().addingTimeInterval(-3600)).token
        await #expect(throws: TokenRejected(reason: "expired")) { _ = try await verifier.verify(expired) }

        // Signed by a key we do not know, under a kid we do not know.
        let stranger = try await AccessTokenIssuer(signingKey: try TokenKey.generate(kid: "k9")).issue(userID: user, role: "ADMIN", sessionID: "s").token
        await #expect(throws: TokenRejected(reason: "unknown key id")) { _ = try await verifier.verify(stranger) }
        // Signed by a stranger's key but claiming our kid.
        let impostor = try await AccessTokenIssuer(signingKey: try TokenKey.generate(kid: "k1")).issue(userID: user, role: "ADMIN", sessionID: "s").token
        await #expect(throws: TokenRejected.self) { _ = try await verifier.verify(impostor) }

        // alg: none.
        let none = "\(try b64url(["alg": "none", "typ": "JWT", "kid": "k1"])).\(parts[1])."
        await #expect(throws: TokenRejected(reason: "algorithm none not accepted")) { _ = try await verifier.verify(none) }

        // HS256 keyed with the (public) verification key.
        let hsHeader = try b64url(["alg": "HS256", "typ": "JWT", "kid": "k1"])
        let publicKey = Data(base64Encoded: String(key.verifyingText.split(separator: ":")[1]))!
        let mac = HMAC<SHA256>.authenticationCode(for: Data("\(hsHeader).\(parts[1])".utf8), using: SymmetricKey(data: publicKey))
        let hs256 = "\(hsHeader).\(parts[1]).\(b64url(Data(mac)))"
        await #expect(throws: TokenRejected(reason: "algorithm HS256 not accepted")) { _ = try await verifier.verify(hs256) }

        // Wrong issuer, wrong audience.
        let otherIss = try await AccessTokenIssuer(signingKey: key, issuer: "someone-else").issue(userID: user, role: "USER", sessionID: "s").token
        await #expect(throws: TokenRejected(reason: "wrong issuer")) { _ = try await verifier.verify(otherIss) }
        let otherAud = try await AccessTokenIssuer(signingKey: key, audience: "other-app").issue(userID: user, role: "USER", sessionID: "s").token
        await #expect(throws: TokenRejected(reason: "wrong audience")) { _ = try await verifier.verify(otherAud) }

        // Garbage.
        for junk in ["", "a.b", "a.b.c", "\(parts[0]).\(parts[1])"] {
            await #expect(throws: TokenRejected.self) { _ = try await verifier.verify(junk) }
        }
    }
}

extension String {
    var padded: String {
        var s = self.replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
        while s.count % 4 != 0 { s += "=" }
        return s
    }
}
