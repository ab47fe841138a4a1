import AiraAMQP
import AiraContracts
import AiraCore
import AiraMessaging
import AiraPostgres
import AiraServiceKit
import Foundation
import Testing

/// A development SMTP server (scripts/lib/smtp_server.py, aiosmtpd) of the test's own, storing
/// what it accepts in a folder.
final class SMTPServerProcess: @unchecked Sendable {
    let process = Process()
    let port: Int
    let directory: URL

    /// `tls`: offer and require STARTTLS (a self-signed certificate made with openssl); `user`:
    /// require AUTH with that user and password.
    init(tls: Bool = false, user: (name: String, password: String)? = nil) throws {
        guard let python = TestServers.environment["AIRA_PYTHON"], let script = TestServers.environment["AIRA_SMTP_SERVER_SCRIPT"] else {
            throw SMTPServerError.notConfigured
        }
        self.port = try freePort()
        self.directory = FileManager.default.temporaryDirectory.appendingPathComponent("aira-mail-\(UUID().uuidString.prefix(8))")
        self.process.executableURL = URL(fileURLWithPath: python)
        var arguments = [script, "--port", "\(self.port)", "--dir", self.directory.path]
        if tls {
            try FileManager.default.createDirectory(at: self.directory, withIntermediateDirectories: true)
            let (cert, key) = (self.directory.appendingPathComponent("cert.pem").path, self.directory.appendingPathComponent("key.pem").path)
            let openssl = Process()
            openssl.executableURL = URL(fileURLWithPath: "/usr/bin/openssl")
            openssl.arguments = ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=localhost",
                                 "-keyout", key, "-out", cert]
            openssl.standardError = FileHandle.nullDevice
            try openssl.run()
            openssl.waitUntilExit()
            arguments += ["--tls-cert", cert, "--tls-key", key]
        }
        if let user { arguments += ["--user", user.name, "--password", user.password] }
        self.process.arguments = arguments
        self.process.standardOutput = FileHandle.nullDevice
        try self.process.run()
    }

    enum SMTPServerError: Error { case notConfigured }

    /// Waits until the server accepts connections.
    func waitUntilUp() async -> Bool {
        await eventually(timeout: .seconds(15), every: .milliseconds(100)) {
            let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            defer { close(fd) }
            var addr = sockaddr_in()
            addr.sin_family = sa_family_t(AF_INET)
            addr.sin_addr.s_addr = inet_addr("127.0.0.1")
            addr.sin_port = UInt16(self.port).bigEndian
            return withUnsafePointer(to: &addr) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0 }
            }
        }
    }

    struct Mail: Decodable {
        var rcptTo: [String]
        var subject: String
        var messageId: String
        var text: String
        var html: String
        var tls: Bool
        var authenticatedAs: String?
    }

    /// Every mail received so far.
    var mails: [Mail] {
        let files = ((try? FileManager.default.contentsOfDirectory(atPath: self.directory.path)) ?? []).filter { $0.hasSuffix(".json") }.sorted()
        return files.compactMap { try? JSONDecoder().decode(Mail.self, from: Data(contentsOf: self.directory.appendingPathComponent($0))) }
    }

    func mails(to address: String) -> [Mail] { self.mails.filter { $0.rcptTo.contains(address) } }

    func stop() {
        if self.process.isRunning { kill(self.process.processIdentifier, SIGTERM) }
        for _ in 0..<50 where self.process.isRunning { usleep(100_000) }
        if self.process.isRunning { kill(self.process.processIdentifier, SIGKILL) }
        try? FileManager.default.removeItem(at: self.directory)
    }
}

@Suite("Email worker against a real SMTP server", .serialized, .enabled(if: TestServers.available))
struct EmailWorkerTests {
    static func withMail(tls: Bool = false, user: (name: String, password: String)? = nil, worker extra: [String: String] = [:],
                         _ body: (ServiceStack, SMTPServerProcess) async throws -> Void) async throws {
        let smtp = try SMTPServerProcess(tls: tls, user: user)
        defer { smtp.stop() }
        try #require(await smtp.waitUntilUp(), "the SMTP server did not start")
        try await ServiceStack.with { stack in
            try stack.startWorker("aira-email-worker", name: "mail", environment: [
                "AIRA_SMTP_HOST": "127.0.0.1", "AIRA_SMTP_PORT": "\(smtp.port)", "AIRA_RETRY_TIERS": "300ms", "AIRA_MAX_ATTEMPTS": "4",
            ].merging(extra) { $1 })
            try await body(stack, smtp)
        }
    }

    /// Publishes a mail job as aira-auth does (optionally with a fixed message id).
    static func publish(_ mail: EmailMessage, messageID: String? = nil) async throws -> String {
        let connection = try await TestServers.connect()
        defer { Task { await connection.close() } }
        let publisher = try await MessagePublisher.open(on: connection)
        try await EmailMessage.queue.declare(on: publisher.channel)
        return try await publisher.publish(mail, routingKey: EmailMessage.routingKey, messageID: messageID)
    }

    @Test("signup → verification mail with a working link → welcome mail with a UTF-8 subject")
    func verificationMail() async throws {
        try await Self.withMail { stack, smtp in
            let user = try await stack.signup("mail")
            var mail: SMTPServerProcess.Mail?
            let received = await eventually(timeout: .seconds(30), every: .milliseconds(100)) {
                mail = smtp.mails(to: user.email).first
                return mail != nil
            }
            try #require(received, "no verification mail; worker log:\n\(stack.workers[0].process.log.suffix(3000))")
            #expect(mail?.subject == "Confirm your email address for Aira")
            let text = try #require(mail?.text)
            let link = try #require(text.split(whereSeparator: \.isWhitespace).first { $0.contains("token=ev_") })
            let token = try #require(link.split(separator: "token=").last)
            #expect(mail?.html.contains(String(token)) == true)
            #expect(mail?.messageId.hasSuffix("@aira.localhost>") == true)

            let verified = try await stack.call("GET", "/api/auth/verify?token=\(token)")
            #expect(verified.status == 200, "\(verified)")
            #expect(verified.json["emailVerified"] as? Bool == true)
            #expect(try await stack.call("GET", "/api/auth/verify?token=\(token)").status == 401, "the link works once")

            var welcome: SMTPServerProcess.Mail?
            let came = await eventually(timeout: .seconds(30), every: .milliseconds(100)) {
                welcome = smtp.mails(to: user.email).first { $0.subject.hasPrefix("Welcome") }
                return welcome != nil
            }
            try #require(came)
            #expect(welcome?.subject == "Welcome to Aira ✨")
            #expect(welcome?.text.contains(user.email) == true)
            #expect(welcome?.tls == false, "the plain development server offers no STARTTLS")
        }
    }

    @Test("STARTTLS and AUTH: a server that requires both gets the mail over TLS from the configured user")
    func startTLSAndAuth() async throws {
        try await Self.withMail(tls: true, user: ("aira", "s3cret"), worker: [
            "AIRA_SMTP_TLS": "required", "AIRA_SMTP_TLS_VERIFY": "false", "AIRA_SMTP_USERNAME": "aira", "AIRA_SMTP_PASSWORD": "s3cret",
        ]) { stack, smtp in
            let to = "tls-\(UUID().uuidString.prefix(8).lowercased())@example.com"
            _ = try await Self.publish(EmailMessage(to: to, template: "welcome", parameters: ["email": to]))
            var mail: SMTPServerProcess.Mail?
            let received = await eventually(timeout: .seconds(30), every: .milliseconds(100)) {
                mail = smtp.mails(to: to).first
                return mail != nil
            }
            try #require(received, "worker log:\n\(stack.workers[0].process.log.suffix(3000))")
            #expect(mail?.tls == true)
            #expect(mail?.authenticatedAs == "aira")
        }
    }

    @Test("SMTP 451 → retried and delivered once; 550 → dead letter with the server's reply; a replayed message is not sent again")
    func failuresAndDuplicates() async throws {
        try await Self.withMail { stack, smtp in
            let tag = UUID().uuidString.prefix(8).lowercased()
            let flaky = "flaky-\(tag)+451@example.com"
            let refused = "gone-\(tag)+550@example.com"
            let once = "once-\(tag)@example.com"
            _ = try await Self.publish(EmailMessage(to: flaky, template: "welcome", parameters: ["email": flaky]))
            let refusedID = try await Self.publish(EmailMessage(to: refused, template: "welcome", parameters: ["email": refused]))
            let onceID = "test-once-\(tag)"
            _ = try await Self.publish(EmailMessage(to: once, template: "welcome", parameters: ["email": once]), messageID: onceID)

            let delivered = await eventually(timeout: .seconds(30), every: .milliseconds(100)) {
                !smtp.mails(to: flaky).isEmpty && !smtp.mails(to: once).isEmpty
            }
            try #require(delivered, "worker log:\n\(stack.workers[0].process.log.suffix(3000))")
            // The same message again (a redelivery or a DLQ replay): recorded as sent, so not sent.
            _ = try await Self.publish(EmailMessage(to: once, template: "welcome", parameters: ["email": once]), messageID: onceID)

            let letter = try #require(try await takeDeadLetter(from: "email.send.dlq") { $0.messageID == refusedID })
            #expect(letter.errorType == "smtp_550")
            #expect(letter.error?.contains("550 5.1.1 mailbox unavailable") == true, "\(letter.error ?? "-")")
            #expect(letter.attempts == 1, "a 5xx is final: no retries")

            try await Task.sleep(for: .seconds(2))
            #expect(smtp.mails(to: flaky).count == 1, "451 then delivered exactly once")
            #expect(smtp.mails(to: once).count == 1, "a replayed message is not sent twice")
            #expect(smtp.mails(to: refused).isEmpty)
            let skipped = try await stack.metric(port: stack.workers[0].port, "aira_email_duplicates_skipped_total")
            #expect(skipped >= 1)
        }
    }
}

@Suite("Audit writer", .serialized, .enabled(if: TestServers.available))
struct AuditWriterTests {
    static func publish(_ events: [(id: String, event: AuditEvent)]) async throws {
        let connection = try await TestServers.connect()
        defer { Task { await connection.close() } }
        let publisher = try await MessagePublisher.open(on: connection)
        try await AuditEvent.queue.declare(on: publisher.channel)
        try await withThrowingTaskGroup(of: Void.self) { group in
            for chunk in stride(from: 0, to: events.count, by: 500) {
                let part = events[chunk..<min(chunk + 500, events.count)]
                group.addTask {
                    for e in part { _ = try await publisher.publish(e.event, routingKey: e.event.routingKey, messageID: e.id) }
                }
            }
            try await group.waitForAll()
        }
    }

    static func stored(type: String) async throws -> (rows: Int, distinct: Int) {
        let db = PostgresClient(configuration: PostgresConfiguration(url: TestServers.databaseURL!, poolSize: 1))
        defer { Task { await db.shutdown() } }
        let row = try await db.query("SELECT count(*) AS n, count(DISTINCT message_id) AS d FROM audit_log WHERE type = \(type)").first
        return (try row?.decode("n") ?? 0, try row?.decode("d") ?? 0)
    }

    /// Publishes one message for the writer (bytes of `type`, as they are); returns its message id.
    @discardableResult
    static func publish(body: [UInt8], type: String) async throws -> String {
        let connection = try await TestServers.connect()
        defer { Task { await connection.close() } }
        let publisher = try await MessagePublisher.open(on: connection)
        try await AuditEvent.queue.declare(on: publisher.channel)
        let id = MessageID.random()
        try await publisher.publishRaw(exchange: AiraExchange.name, routingKey: AuditBatch.routingKey, body: body,
                                       properties: MessagePublisher.properties(type: type, messageID: id, correlationID: nil,
                                                                              traceparent: nil))
        return id
    }

    @discardableResult
    static func publish(batch: AuditBatch) async throws -> String {
        try await Self.publish(body: batch.encoded(), type: AuditBatch.messageType)
    }

    /// Records `events` through an AuditTrail from 500 concurrent callers, as services do; returns
    /// how many messages that added to the writer's queue.
    static func record(_ events: [AuditEvent]) async throws -> Int {
        let connection = try await TestServers.connect()
        defer { Task { await connection.close() } }
        let publisher = try await MessagePublisher.open(on: connection)
        try await AuditEvent.queue.declare(on: publisher.channel)
        let before = try await publisher.channel.inspectQueue(AuditEvent.queue.name).messageCount
        let trail = AuditTrail(publisher: publisher, logger: TestServers.logger)
        let running = Task { try await trail.run() }
        defer { running.cancel() }
        try await withThrowingTaskGroup(of: Void.self) { group in
            for start in 0..<500 {
                group.addTask { for i in stride(from: start, to: events.count, by: 500) { try await trail.record(events[i]) } }
            }
            try await group.waitForAll()
        }
        return Int(try await publisher.channel.inspectQueue(AuditEvent.queue.name).messageCount) - Int(before)
    }

    @Test("every event is stored once, batched or single: duplicates and a writer killed mid-batch (redelivery) change nothing")
    func storedOnce() async throws {
        try await ServiceStack.migrate()
        let type = "test_\(UUID().uuidString.prefix(8).lowercased())"
        let user = UUID()
        let events = (0..<20_000).map { i in
            (id: "\(type)-\(i)", event: AuditEvent(id: "\(type)-\(i)", type: type, userId: user, ip: "10.0.0.1",
                                                   attributes: ["n": "\(i)", "quote": "it's \"fine\"\t\\"]))
        }
        // Even events as single messages (keyed by message id), odd ones through an AuditTrail
        // (batches, keyed by event id); then a quarter of each again with the same ids (a replay).
        let single = events.enumerated().filter { $0.offset % 2 == 0 }.map(\.element)
        let batched = events.enumerated().filter { $0.offset % 2 == 1 }.map(\.element.event)
        try await Self.publish(single)
        let messages = try await Self.record(batched)
        #expect(messages > 0 && messages <= batched.count / 10, "10,000 events recorded by 500 callers went out in \(messages) messages")
        try await Self.publish(Array(single.prefix(2500)))
        try await Self.publish(batch: AuditBatch(events: Array(batched.prefix(2500))))

        let first = try WorkerProcess(executable: "aira-audit-writer", name: "audit-a", environment: ["AIRA_AUDIT_BATCH_SIZE": "200"])
        let started = await eventually(timeout: .seconds(30), every: .milliseconds(5)) { ((try? await Self.stored(type: type).rows) ?? 0) > 0 }
        try #require(started, "\(first.log.suffix(2000))")
        first.kill9() // mid-stream: committed batches whose acks never left are delivered again
        _ = await first.waitForExit(timeout: .seconds(5))
        let afterKill = try await Self.stored(type: type).rows
        #expect(afterKill < 20_000, "the writer was killed before it finished")

        let second = try WorkerProcess(executable: "aira-audit-writer", name: "audit-b", environment: ["AIRA_AUDIT_BATCH_SIZE": "500"])
        defer { second.terminate() }
        let all = await eventually(timeout: .seconds(60), every: .milliseconds(100)) { ((try? await Self.stored(type: type).rows) ?? 0) >= 20_000 }
        try #require(all, "\(second.log.suffix(2000))")
        try await Task.sleep(for: .seconds(1))
        let (rows, distinct) = try await Self.stored(type: type)
        #expect(rows == 20_000 && distinct == 20_000)

        let db = PostgresClient(configuration: PostgresConfiguration(url: TestServers.databaseURL!, poolSize: 1))
        defer { Task { await db.shutdown() } }
        let sample = try await db.query("SELECT user_id, ip, attributes->>'quote' AS q, attributes->>'n' AS n FROM audit_log WHERE message_id = \(type + "-17")").first
        #expect(try sample?.decode("user_id", as: UUID.self) == user)
        #expect(try sample?.decode("q", as: String.self) == "it's \"fine\"\t\\")
        #expect(try sample?.decode("n", as: String.self) == "17")
        second.terminate()
        #expect(await second.waitForExit(timeout: .seconds(15)) == 0, "graceful stop")
    }

    @Test("a batch with a bad event stores the others and dead-letters naming it; a batch without ids dead-letters")
    func badBatches() async throws {
        try await ServiceStack.migrate()
        let writer = try WorkerProcess(executable: "aira-audit-writer", name: "audit-d")
        defer { writer.terminate() }
        let type = "test_\(UUID().uuidString.prefix(8).lowercased())"
        let good = (0..<3).map { AuditEvent(id: "\(type)-\($0)", type: type, userId: nil) }
        let bad = AuditEvent(id: "\(type)-bad", type: "", userId: nil)
        let mixed = try await Self.publish(batch: AuditBatch(events: [good[0], bad, good[1], good[2]]))
        let letter = try #require(try await takeDeadLetter(from: "audit.events.dlq") { $0.messageID == mixed }, "\(writer.log.suffix(2000))")
        #expect(letter.errorType == "invalid_event")
        #expect(letter.error?.contains("\(type)-bad") == true, "\(letter.error ?? "")")
        #expect(try await Self.stored(type: type).rows == 3)

        // No ids: nothing to store the events by.
        let anonymous = Array(#"[{"type":"\#(type)","at":"2026-11-22T00:00:00Z","attributes":{}}]"#.utf8)
        let id = try await Self.publish(body: anonymous, type: AuditBatch.messageType)
        let anon = try #require(try await takeDeadLetter(from: "audit.events.dlq") { $0.messageID == id }, "\(writer.log.suffix(2000))")
        #expect(anon.errorType == "decoding_failed")
        #expect(anon.error?.contains("has no id") == true, "\(anon.error ?? "")")
        #expect(try await Self.stored(type: type).rows == 3)
    }

    @Test("an event that is not an audit event dead-letters with the reason")
    func unknownMessage() async throws {
        let writer = try WorkerProcess(executable: "aira-audit-writer", name: "audit-c")
        defer { writer.terminate() }
        let connection = try await TestServers.connect()
        defer { Task { await connection.close() } }
        let publisher = try await MessagePublisher.open(on: connection)
        try await AuditEvent.queue.declare(on: publisher.channel)
        let id = "bad-\(UUID().uuidString.prefix(8))"
        try await publisher.publishRaw(exchange: AiraExchange.name, routingKey: "audit.test_bad", body: Array(#"{"type": 42}"#.utf8),
                                       properties: MessagePublisher.properties(type: AuditEvent.messageType, messageID: id,
                                                                              correlationID: nil, traceparent: nil, headers: [:]))
        let found = try await takeDeadLetter(from: "audit.events.dlq") { $0.messageID == id }
        let letter = try #require(found, "\(writer.log.suffix(2000))")
        #expect(letter.errorType == "decoding_failed")
    }
}
