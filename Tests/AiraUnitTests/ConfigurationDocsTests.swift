import AiraCore
import AiraServiceKit
import Crypto
import Foundation
import Testing
@testable import aira_analyzer
@testable import aira_audit_writer
@testable import aira_auth
@testable import aira_email_worker
@testable import aira_gateway
@testable import aira_gpt_proxy
@testable import aira_thumbnail_worker

/// docs/configuration.md checked against what each service's configuration reads: every variable
/// read is documented for that service (in its section, the audit trail's, or "Every executable")
/// with the default the code uses, and every variable a service's section lists is read by it.
@Suite("Configuration matches docs/configuration.md")
struct ConfigurationDocsTests {
    /// A service, how to read its configuration, and what it needs set (its required variables).
    struct Subject: CustomTestStringConvertible, Sendable {
        var name: String
        var required: [String: String] = [:]
        var sections: [String]
        var read: @Sendable (EnvironmentReader) throws -> ServiceSettings
        var testDescription: String { self.name }
    }

    static let signingKey = "k1:" + Curve25519.Signing.PrivateKey().rawRepresentation.base64EncodedString()
    static let publicKey = "k1:" + Curve25519.Signing.PrivateKey().publicKey.rawRepresentation.base64EncodedString()
    static let trail = "Audit trail (aira-gateway, aira-auth, aira-gpt-proxy)"

    static let subjects: [Subject] = [
        Subject(name: GatewayConfiguration.serviceName, required: ["AIRA_JWT_PUBLIC_KEYS": publicKey],
                sections: [GatewayConfiguration.serviceName, trail]) { try GatewayConfiguration(environment: $0).settings },
        Subject(name: AuthConfiguration.serviceName, required: ["AIRA_JWT_SIGNING_KEY": signingKey],
                sections: [AuthConfiguration.serviceName, trail]) { try AuthConfiguration(environment: $0).settings },
        Subject(name: GPTProxyConfiguration.serviceName, sections: [GPTProxyConfiguration.serviceName, trail]) {
            try GPTProxyConfiguration(environment: $0).settings
        },
        Subject(name: AuditWriterConfiguration.serviceName, sections: [AuditWriterConfiguration.serviceName]) {
            try AuditWriterConfiguration(environment: $0).settings
        },
        Subject(name: EmailWorkerConfiguration.serviceName, sections: [EmailWorkerConfiguration.serviceName]) {
            try EmailWorkerConfiguration(environment: $0).settings
        },
        Subject(name: ThumbnailWorkerConfiguration.serviceName, sections: [ThumbnailWorkerConfiguration.serviceName]) {
            try ThumbnailWorkerConfiguration(environment: $0).settings
        },
        Subject(name: AnalyzerConfiguration.serviceName, sections: [AnalyzerConfiguration.serviceName]) {
            try AnalyzerConfiguration(environment: $0).settings
        },
    ]

    /// Defaults that depend on the machine or on another setting: the docs say the rule instead
    /// of a value (`one per core`, `the machine's zone`, `a quarter of …`).
    static let derivedDefaults: Set<String> = [
        "AIRA_INSTANCE", "AIRA_BCRYPT_THREADS", "AIRA_CREDENTIALS_CONCURRENCY", "AIRA_CREDENTIALS_PREFETCH",
        "AIRA_ANALYZER_TIMEZONE", "AIRA_ANALYSIS_PARALLEL_BATCHES", "AIRA_AUTH_CREDENTIALS_TARGET_LATENCY",
    ]

    /// One documented variable: its section and its default cell (or, for a row naming several
    /// variables with as many defaults, its own one).
    struct Row {
        var section: String
        var defaultCell: String
    }

    /// The tables of docs/configuration.md: section title → variable → row.
    static func documented() throws -> [String: [String: Row]] {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let text = try String(contentsOf: root.appendingPathComponent("docs/configuration.md"), encoding: .utf8)
        var sections: [String: [String: Row]] = [:]
        var section = ""
        for line in text.split(separator: "\n", omittingEmptySubsequences: false) {
            if line.hasPrefix("## ") {
                section = String(line.dropFirst(3))
                continue
            }
            guard line.hasPrefix("| `") else { continue }
            let cells = line.split(separator: "|", omittingEmptySubsequences: false).map { $0.trimmingCharacters(in: .whitespaces) }
            guard cells.count >= 4 else { continue }
            let names = Self.quoted(cells[1]).filter { $0.hasPrefix("AIRA_") }
            let defaults = Self.quoted(cells[2])
            for (i, name) in names.enumerated() {
                // `A`, `B` | `1`, `2`: each its own; otherwise the whole cell is each one's.
                let cell = names.count > 1 && defaults.count == names.count ? "`\(defaults[i])`" : cells[2]
                sections[section, default: [:]][name] = Row(section: section, defaultCell: cell)
            }
        }
        return sections
    }

    /// The cell gives `value`: literally, or as the same duration written another way (`60s` for `1m`).
    static func documents(_ value: String, _ cell: String) -> Bool {
        let given = Self.quoted(cell)
        if given.contains(value) { return true }
        guard value.last?.isLetter == true, let wanted = Self.durations(value) else { return false }
        return given.contains { Self.durations($0) == wanted }
    }

    static func durations(_ text: String) -> [Duration]? {
        let parts = text.split(separator: ",").map { EnvironmentReader.parseDuration(String($0)) }
        return parts.contains(nil) || parts.isEmpty ? nil : parts.compactMap { $0 }
    }

    static func quoted(_ cell: String) -> [String] {
        cell.split(separator: "`", omittingEmptySubsequences: false).enumerated().filter { $0.offset % 2 == 1 }.map { String($0.element) }
    }

    @Test("each variable read is documented with its default", arguments: subjects)
    func readsAreDocumented(_ subject: Subject) throws {
        let docs = try Self.documented()
        let reads = EnvironmentReader.Reads()
        let settings = try subject.read(EnvironmentReader(subject.required, recordingInto: reads))
        #expect(settings.name == subject.name)
        #expect(!reads.all.isEmpty)
        for read in reads.all {
            let row = (subject.sections + ["Every executable"]).lazy.compactMap { docs[$0]?[read.key] }.first
            guard let row else {
                Issue.record("\(subject.name) reads \(read.key), which docs/configuration.md does not list for it")
                continue
            }
            guard let value = read.defaultValue, !Self.derivedDefaults.contains(read.key) else { continue }
            #expect(Self.documents(value, row.defaultCell),
                    "\(subject.name): \(read.key) defaults to \(value), docs/configuration.md (\(row.section)) says \(row.defaultCell)")
        }
    }

    @Test("each variable a service's section lists is read by that service", arguments: subjects)
    func documentedAreRead(_ subject: Subject) throws {
        let docs = try Self.documented()
        let reads = EnvironmentReader.Reads()
        _ = try subject.read(EnvironmentReader(subject.required, recordingInto: reads))
        let keys = Set(reads.all.map(\.key))
        for section in subject.sections {
            let listed = try #require(docs[section], "docs/configuration.md has no section \(section)")
            for name in listed.keys.sorted() where !keys.contains(name) {
                Issue.record("docs/configuration.md (\(section)) lists \(name), which \(subject.name) does not read")
            }
        }
    }

    @Test("a bad value stops start-up naming the variable")
    func badValues() throws {
        let env = EnvironmentReader(["AIRA_JWT_PUBLIC_KEYS": Self.publicKey, "AIRA_RATE_LIMIT_READ": "lots",
                                     "AIRA_GPT_RPC_BATCH_PARALLEL": "auto"])
        #expect(throws: ConfigurationError.self) { try GatewayConfiguration(environment: env) }
        let parallel = try GatewayConfiguration(environment: EnvironmentReader(["AIRA_JWT_PUBLIC_KEYS": Self.publicKey,
                                                                                "AIRA_GPT_RPC_BATCH_PARALLEL": "8"]))
        #expect(parallel.gptBatchParallel == 8)
        #expect(try GatewayConfiguration(environment: EnvironmentReader(["AIRA_JWT_PUBLIC_KEYS": Self.publicKey])).gptBatchParallel == nil)
        do {
            _ = try AuthConfiguration(environment: EnvironmentReader([:]))
            Issue.record("aira-auth started without a signing key")
        } catch let error as ConfigurationError {
            #expect(error.key == "AIRA_JWT_SIGNING_KEY")
        }
        do {
            _ = try EmailWorkerConfiguration(environment: EnvironmentReader(["AIRA_SMTP_TLS": "sometimes"]))
            Issue.record("a bad AIRA_SMTP_TLS was accepted")
        } catch let error as ConfigurationError {
            #expect(error.key == "AIRA_SMTP_TLS" && error.value == "sometimes")
        }
        do {
            _ = try AuditWriterConfiguration(environment: EnvironmentReader(["AIRA_RPC_QUEUE_TYPE": "stream"]))
            Issue.record("a bad AIRA_RPC_QUEUE_TYPE was accepted")
        } catch let error as ConfigurationError {
            #expect(error.key == "AIRA_RPC_QUEUE_TYPE")
        }
    }
}
