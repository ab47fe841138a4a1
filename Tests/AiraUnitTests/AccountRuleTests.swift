import AiraAccounts
import Testing

@Suite("Account rules")
struct AccountRuleTests {
    @Test("emails are trimmed and lower-cased, nonsense refused")
    func emails() throws {
        #expect(try EmailAddress.normalize("  Ada.Lovelace@Example.ORG ") == "ada.lovelace@example.org")
        for bad in ["", "ada", "ada@", "@example.org", "ada@example", "ada@@example.org", "a da@example.org", "ada@example.org."] {
            #expect(throws: AccountRuleViolation.self, "\(bad)") { try EmailAddress.normalize(bad) }
        }
    }

    @Test("passwords: 10 to 72 bytes, not blank, not the email, not common")
    func passwords() throws {
        try PasswordPolicy.check("correct horse battery", email: "ada@example.org")
        func code(_ p: String) -> String? {
            do { try PasswordPolicy.check(p, email: "adalovelace@example.org"); return nil }
            catch let v as AccountRuleViolation { return v.code } catch { return "?" }
        }
        #expect(code("short") == "password_too_short")
        #expect(code(String(repeating: "é", count: 40)) == "password_too_long") // 80 bytes
        #expect(code("          ") == "password_blank")
        #expect(code("adalovelace") == "password_is_email")
        #expect(code("Password123") == "password_common")
    }

    @Test("bcrypt hashes verify, off the cooperative pool")
    func bcrypt() async throws {
        let hasher = PasswordHasher(cost: 4)
        let hash = try await hasher.hash("correct horse battery")
        #expect(hash.hasPrefix("$2b$04$"))
        #expect(try await hasher.verify("correct horse battery", hash: hash))
        #expect(try await !hasher.verify("correct horse batterY", hash: hash))
    }
}
