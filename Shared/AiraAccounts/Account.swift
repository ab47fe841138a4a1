import Foundation

public enum Role: String, Sendable, Codable, CaseIterable {
    case user = "USER"
    case admin = "ADMIN"
}

/// A user as stored.
public struct Account: Sendable, Equatable {
    public var id: UUID
    public var email: String
    public var role: Role
    public var passwordHash: String
    public var emailVerifiedAt: Date?
    public var suspendedAt: Date?
    public var createdAt: Date
}

/// Why an email or password was refused; `code` is stable (for API error codes), `message`
/// says what to change.
public struct AccountRuleViolation: Error, Sendable, Equatable, CustomStringConvertible {
    public var code: String
    public var message: String
    public var description: String { self.message }
}

public enum EmailAddress {
    /// Trims and lower-cases an address, or says why it is not one.
    public static func normalize(_ raw: String) throws -> String {
        let email = raw.trimmingCharacters(in: .whitespacesAndNewlines).lowercased()
        let parts = email.split(separator: "@", omittingEmptySubsequences: false)
        guard email.utf8.count <= 254, parts.count == 2, !parts[0].isEmpty, parts[0].utf8.count <= 64,
              parts[1].contains("."), !parts[1].hasPrefix("."), !parts[1].hasSuffix("."),
              !email.contains(where: { $0.isWhitespace }) else {
            throw AccountRuleViolation(code: "invalid_email", message: "not a valid email address")
        }
        return email
    }
}

/// What a password must be: 10 to 72 bytes (bcrypt ignores bytes past 72, so longer ones are
/// refused rather than silently cut), not only whitespace, not the email, not a well-known
/// password. No composition rules (NIST SP 800-63B).
public enum PasswordPolicy {
    public static let minimumLength = 10
    public static let maximumBytes = 72

    public static func check(_ password: String, email: String? = nil) throws {
        guard password.count >= minimumLength else {
            throw AccountRuleViolation(code: "password_too_short", message: "password must have at least \(minimumLength) characters")
        }
        guard password.utf8.count <= maximumBytes else {
            throw AccountRuleViolation(code: "password_too_long", message: "password must be at most \(maximumBytes) bytes")
        }
        guard !password.allSatisfy(\.isWhitespace) else {
            throw AccountRuleViolation(code: "password_blank", message: "password must not be only spaces")
        }
        let lower = password.lowercased()
        if let email, lower == email.lowercased() || lower == email.lowercased().split(separator: "@").first.map(String.init) {
            throw AccountRuleViolation(code: "password_is_email", message: "password must not be the email address")
        }
        guard !commonPasswords.contains(lower) else {
            throw AccountRuleViolation(code: "password_common", message: "password is too common")
        }
    }

    static let commonPasswords: Set<String> = [
        "1234567890", "12345678910", "123456789a", "password123", "password12", "password1234", "qwertyuiop",
        "1q2w3e4r5t", "iloveyou12", "abcdefghij", "0123456789", "qwerty1234", "1qaz2wsx3edc", "passw0rd123",
        "letmein123", "welcome123", "administrator", "adminadmin", "changeme123", "aaaaaaaaaa", "1111111111",
    ]
}
