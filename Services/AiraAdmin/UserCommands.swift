import AiraAccounts
import AiraCore
import AiraPostgres
import ArgumentParser
import Foundation

struct User: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Manage accounts.",
        subcommands: [CreateAdmin.self])

    struct CreateAdmin: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "create-admin",
            abstract: "Create an ADMIN account (the first admin), or promote an existing account with --promote.",
            discussion: "The password is read from standard input (first line), never from the command line.")

        @Option(help: "The admin's email address.") var email: String
        @Flag(help: "If the account exists, make it ADMIN instead of failing.") var promote = false
        @Option(name: .customLong("database-url"), help: "PostgreSQL URL (default: $AIRA_DATABASE_URL).") var databaseURL: String?
        @Option(help: "bcrypt cost (default: $AIRA_BCRYPT_COST or 10).") var bcryptCost: Int?

        func run() async throws {
            let env = EnvironmentReader()
            let email: String
            do { email = try EmailAddress.normalize(self.email) } catch { throw CLIError("--email: \(error)") }
            let database = adminDatabase(databaseURL)
            defer { Task { await database.shutdown() } }
            let store = AccountStore(database: database)

            let existing: Account?
            do {
                existing = try await store.find(email: email)
            } catch PostgresError.server(let state, _, _) where state == "42P01" {
                throw CLIError("the users table does not exist: run `aira-admin migrate` first")
            }
            if let existing {
                guard promote else { throw CLIError("\(email) already has an account (role \(existing.role.rawValue)); use --promote to make it ADMIN") }
                try await store.setRole(.admin, for: existing.id)
                print("promoted \(email) (\(existing.id.lowercasedString)) to ADMIN")
                return
            }
            print("password for \(email) (read from standard input): ", terminator: "")
            guard let password = readLine(strippingNewline: true), !password.isEmpty else {
                throw CLIError("no password given on standard input")
            }
            print("")
            do { try PasswordPolicy.check(password, email: email) } catch { throw CLIError("password refused: \(error)") }
            let cost = try bcryptCost ?? env.int("AIRA_BCRYPT_COST", default: 10, range: 4...31)
            guard (4...31).contains(cost) else { throw ValidationError("--bcrypt-cost must be 4...31") }
            let hash = try await PasswordHasher(cost: UInt8(cost)).hash(password)
            let account = try await store.create(email: email, passwordHash: hash, role: .admin, verified: true)
            print("created ADMIN \(account.email) (\(account.id.lowercasedString))")
        }
    }
}
