import AiraTokens
import ArgumentParser

struct Keys: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Manage the Ed25519 keys that sign and verify access tokens.",
        subcommands: [Generate.self])

    struct Generate: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Generate a signing key: prints AIRA_JWT_SIGNING_KEY (for aira-auth) and its public half for AIRA_JWT_PUBLIC_KEYS (for aira-gateway).",
            discussion: """
                Rotation: generate a key with a new --kid, add its public half to every gateway's AIRA_JWT_PUBLIC_KEYS \
                (comma-separated, next to the old one), restart the gateways, then switch aira-auth's AIRA_JWT_SIGNING_KEY. \
                Drop the old public key once the last token it signed has expired (AIRA_ACCESS_TOKEN_TTL).
                """)

        @Option(help: "The key id put in every token's header (letters, digits, '-', '_').") var kid: String
        @Flag(help: "Print shell `export` lines.") var export = false

        func run() async throws {
            guard !kid.isEmpty, kid.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "-" || $0 == "_" }) else {
                throw ValidationError("--kid must be letters, digits, '-' or '_'")
            }
            let key = try TokenKey.generate(kid: kid)
            let prefix = export ? "export " : ""
            print("\(prefix)AIRA_JWT_SIGNING_KEY=\(key.signingText ?? "")")
            print("\(prefix)AIRA_JWT_PUBLIC_KEYS=\(key.verifyingText)")
        }
    }
}
