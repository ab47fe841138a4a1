import Crypto
import Foundation

/// Opaque secrets (refresh tokens, verification links): 256 random bits, base64url, with a
/// prefix that says what they are. Only their SHA-256 (``digest(_:)``) is ever stored.
public enum OpaqueToken {
    public static func random(prefix: String) -> String {
        let bytes = SymmetricKey(size: .bits256).withUnsafeBytes { Data($0) }
        return prefix + bytes.base64EncodedString().replacingOccurrences(of: "+", with: "-")
            .replacingOccurrences(of: "/", with: "_").replacingOccurrences(of: "=", with: "")
    }

    /// Lower-case hex SHA-256, for the Redis key that stands for the token.
    public static func digest(_ token: String) -> String { SHA256.hash(data: Data(token.utf8)).hexString }
}
