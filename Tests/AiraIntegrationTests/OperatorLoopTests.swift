import AiraAMQP
import AiraContracts
import AiraMessaging
import AiraPostgres
import Foundation
import Synchronization
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import Testing

/// `scripts/run` as an operator uses it (docs/operations.md), on a stack of the test's own: a
/// RabbitMQ vhost, ports, run, log, mail and media folders of its own, the executables scripts/test
/// built (`AIRA_BIN_DIR`).
final class LocalRun: @unchecked Sendable {
    let vhost = "aira-ops-\(UUID().uuidString.prefix(8).lowercased())"
    let directory: URL
    let portBase: Int
    let amqpURL: String
    private let management: (base: String, authorization: String)

    init() async throws {
        self.directory = FileManager.default.temporaryDirectory.appendingPathComponent("aira-run-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: self.directory, withIntermediateDirectories: true)
        self.portBase = try Self.freePortBase()
        let base = TestServers.amqpURL ?? "amqp://guest:guest@127.0.0.1:5672/"
        self.amqpURL = (base.hasSuffix("/") ? base : base + "/") + self.vhost
        let url = URLComponents(string: TestServers.environment["AIRA_RABBITMQ_MANAGEMENT_URL"] ?? "http://guest:guest@127.0.0.1:15672")!
        self.management = ("http://\(url.host ?? "127.0.0.1"):\(url.port ?? 15672)",
                           "Basic " + Data("\(url.user ?? "guest"):\(url.password ?? "guest")".utf8).base64EncodedString())
        try await self.managementCall("PUT", "/api/vhosts/\(self.vhost)")
        try await self.managementCall("PUT", "/api/permissions/\(self.vhost)/guest", body: #"{"configure":".*","write":".*","read":".*"}"#)
    }

    /// A base with the ports this test's stack uses (base+3…+9 and the extra instances' base+20…+25) free.
    static func freePortBase() throws -> Int {
        for _ in 0..<50 {
            let base = Int.random(in: 100...190) * 200
            let ports = Array(base + 3...base + 9) + Array(base + 20...base + 25)
            if ports.allSatisfy(portIsFree) { return base }
        }
        throw RunError.noPorts
    }

    static func portIsFree(_ port: Int) -> Bool {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        addr.sin_port = UInt16(port).bigEndian
        return withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0 }
        }
    }

    enum RunError: Error { case noPorts, management(String), status(String) }

    @discardableResult
    func managementCall(_ method: String, _ path: String, body: String? = nil) async throws -> Data {
        var request = URLRequest(url: URL(string: self.management.base + path)!)
        request.httpMethod = method
        request.setValue(self.management.authorization, forHTTPHeaderField: "Authorization")
        request.setValue("application/json", forHTTPHeaderField: "Content-Type")
        request.httpBody = body.map { Data($0.utf8) }
        let (data, response) = try await URLSession.shared.data(for: request)
        let status = (response as? HTTPURLResponse)?.statusCode ?? 0
        guard (200..<300).contains(status) else { throw RunError.management("\(method) \(path): \(status) \(String(decoding: data, as: UTF8.self))") }
        return data
    }

    var environment: [String: String] {
        var env = TestServers.environment
        env["AIRA_AMQP_URL"] = self.amqpURL
        env["AIRA_RUN_DIR"] = self.directory.appendingPathComponent("run").path
        env["AIRA_LOG_DIR"] = self.directory.appendingPathComponent("logs").path
        env["AIRA_RUN_MAIL_DIR"] = self.directory.appendingPathComponent("mail").path
        env["AIRA_MEDIA_DIR"] = self.directory.appendingPathComponent("media").path
        env["AIRA_RUN_PORT_BASE"] = "\(self.portBase)"
        env["AIRA_RUN_SMTP_PORT"] = "\(self.portBase + 9)"
        env["AIRA_SHUTDOWN_TIMEOUT"] = "5s"
        env["AIRA_LOG_LEVEL"] = "notice"
        return env
    }

    var supervisorLog: String {
        (try? String(contentsOf: self.directory.appendingPathComponent("logs/supervisor.log"), encoding: .utf8)) ?? ""
    }

    /// Runs `scripts/run ARGS` to its end (within `timeout`); its exit status and output.
    func run(_ arguments: [String], environment extra: [String: String] = [:], timeout: Duration = .seconds(180)) async throws -> (status: Int32, output: String) {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let output = self.directory.appendingPathComponent("out-\(UUID().uuidString.prefix(6)).txt")
        FileManager.default.createFile(atPath: output.path, contents: nil)
        let handle = try FileHandle(forWritingTo: output)
        defer { try? handle.close() }
        // posix_spawn and waitpid, not Foundation's Process: its exit monitoring missed some of
        // these short-lived children (a reaped-never `bash` left the test waiting).
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_adddup2(&actions, handle.fileDescriptor, 1)
        posix_spawn_file_actions_adddup2(&actions, handle.fileDescriptor, 2)
        let argv = ["/bin/bash", root.appendingPathComponent("scripts/run").path] + arguments
        let envp = self.environment.merging(extra) { $1 }.map { "\($0.key)=\($0.value)" }
        var pid: pid_t = 0
        let cArgv = argv.map { strdup($0) } + [nil]
        let cEnvp = envp.map { strdup($0) } + [nil]
        defer { (cArgv + cEnvp).forEach { free($0) } }
        let spawned = posix_spawn(&pid, "/bin/bash", &actions, nil, cArgv, cEnvp)
        guard spawned == 0 else { throw RunError.status("posix_spawn: \(spawned)") }
        let deadline = ContinuousClock.now + timeout
        var status: Int32 = 0
        while waitpid(pid, &status, WNOHANG) == 0 {
            if ContinuousClock.now > deadline {
                kill(pid, SIGKILL)
                waitpid(pid, &status, 0)
                break
            }
            try await Task.sleep(for: .milliseconds(50))
        }
        let exitStatus: Int32 = (status & 0x7f) == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
        return (exitStatus, (try? String(contentsOf: output, encoding: .utf8)) ?? "")
    }

    /// `scripts/run status --json`.
    func status() async throws -> RunStatus {
        let (_, output) = try await self.run(["status", "--json"], timeout: .seconds(30))
        guard let data = output.data(using: .utf8), let status = try? JSONDecoder().decode(RunStatus.self, from: data) else {
            throw RunError.status(output)
        }
        return status
    }

    func instances(_ service: String) async throws -> [RunStatus.Instance] {
        try await self.status().instances.filter { $0.service == service }
    }

    /// A connection to the stack's vhost.
    func connect() async throws -> AMQPConnection {
        var c = try AMQPConfiguration(url: self.amqpURL, connectionName: "aira-test-ops")
        c.reconnectBackoff = .milliseconds(100)
        return try await AMQPConnection.connect(configuration: c, logger: TestServers.logger)
    }

    /// Stops whatever the test started (the test's own stop comes first; this is the safety net).
    func tearDown() async {
        _ = try? await self.run(["stop"], timeout: .seconds(120))
        _ = try? await self.managementCall("DELETE", "/api/vhosts/\(self.vhost)")
        try? FileManager.default.removeItem(at: self.directory)
    }

    static func with(_ body: (LocalRun) async throws -> Void) async throws {
        let run = try await LocalRun()
        do {
            try await body(run)
        } catch {
            Issue.record("supervisor log:\n\(run.supervisorLog.suffix(3000))")
            await run.tearDown()
            throw error
        }
        await run.tearDown()
    }
}

/// Raised once, read from any task.
final class Flag: Sendable {
    private let raised = Atomic<Bool>(false)
    var isRaised: Bool { self.raised.load(ordering: .relaxed) }
    func raise() { self.raised.store(true, ordering: .relaxed) }
}

/// What `scripts/run status --json` prints.
struct RunStatus: Decodable {
    struct Supervisor: Decodable { var running: Bool; var pid: Int32? }
    struct Instance: Decodable {
        var service: String
        var instance: String
        var port: Int
        var state: String
        var pid: Int32?
        var restarts: Int
        var alive: Bool
        var ready: String
        var queues: [String]
        var last_exit: String?
    }
    struct Queue: Decodable { var queue: String; var depth: Int; var consumers: Int; var consumed_by: [String] }
    var supervisor: Supervisor
    var instances: [Instance]
    var queues: [Queue]
}

@Suite("scripts/run: supervise, scale, status, stop", .serialized, .enabled(if: TestServers.available && TestServers.environment["AIRA_BIN_DIR"] != nil))
struct OperatorLoopTests {
    /// Publishes `count` events at a steady pace, or fewer if `until` is raised first; returns how many were confirmed.
    @discardableResult
    static func publishAudit(_ run: LocalRun, type: String, count: Int, perSecond: Int, until: Flag = Flag()) async throws -> Int {
        let connection = try await run.connect()
        defer { Task { await connection.close() } }
        let publisher = try await MessagePublisher.open(on: connection)
        try await AuditEvent.queue.declare(on: publisher.channel)
        let start = ContinuousClock.now
        for i in 0..<count {
            if until.isRaised { return i }
            // Confirmed one by one, at a steady pace: a stream, not a burst.
            let event = AuditEvent(id: "\(type)-\(i)", type: type, userId: nil)
            _ = try await publisher.publish(event, routingKey: event.routingKey, messageID: event.id)
            let due = start + .milliseconds(i * 1000 / perSecond)
            if ContinuousClock.now < due { try await Task.sleep(until: due) }
        }
        return count
    }

    static func publishMail(_ run: LocalRun, tag: String, count: Int, perSecond: Int, until: Flag) async throws -> Int {
        let connection = try await run.connect()
        defer { Task { await connection.close() } }
        let publisher = try await MessagePublisher.open(on: connection)
        try await EmailMessage.queue.declare(on: publisher.channel)
        let start = ContinuousClock.now
        for i in 0..<count {
            if until.isRaised { return i }
            let to = "\(tag)-\(i)@example.com"
            _ = try await publisher.publish(EmailMessage(to: to, template: "welcome", parameters: ["email": to]),
                                            routingKey: EmailMessage.routingKey, messageID: "\(tag)-\(i)")
            let due = start + .milliseconds(i * 1000 / perSecond)
            if ContinuousClock.now < due { try await Task.sleep(until: due) }
        }
        return count
    }

    /// Mails the development SMTP server stored, per recipient.
    static func mails(_ run: LocalRun, tag: String) -> [String: Int] {
        let dir = run.directory.appendingPathComponent("mail")
        var counts: [String: Int] = [:]
        for file in (try? FileManager.default.contentsOfDirectory(atPath: dir.path)) ?? [] where file.hasSuffix(".json") {
            guard let data = try? Data(contentsOf: dir.appendingPathComponent(file)),
                  let mail = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
                  let to = mail["rcptTo"] as? [String] else { continue }
            for r in to where r.hasPrefix(tag) { counts[r, default: 0] += 1 }
        }
        return counts
    }

    @Test("a worker killed with SIGKILL is restarted and consuming again within seconds; one that keeps crashing is left down and reported")
    func killedWorkerComesBack() async throws {
        try await LocalRun.with { run in
            let up = try await run.run(["--detach", "--only", "audit-writer"])
            try #require(up.status == 0, "scripts/run --detach failed:\n\(up.output.suffix(3000))")
            let before = try #require(try await run.instances("audit-writer").first)
            #expect(before.queues == ["audit.events"], "\(before)")
            let pid = try #require(before.pid)

            kill(pid, SIGKILL)
            let killed = ContinuousClock.now
            var after: RunStatus.Instance?
            let back = try await eventually(timeout: .seconds(15), every: .milliseconds(200)) {
                after = try await run.instances("audit-writer").first
                return after.map { $0.alive && $0.pid != pid && $0.queues == ["audit.events"] } ?? false
            }
            try #require(back, "not back: \(String(describing: after))\n\(run.supervisorLog)")
            print("audit-writer consuming again \(ContinuousClock.now - killed) after SIGKILL")
            #expect(after?.restarts == 1)
            #expect(run.supervisorLog.contains("aira-audit-writer#1 exited unexpectedly (killed by SIGKILL"))

            // Consuming, not just running: events published now are stored.
            let type = "ops_back_\(UUID().uuidString.prefix(6).lowercased())"
            try await Self.publishAudit(run, type: type, count: 200, perSecond: 2000)
            let stored = try await eventually(timeout: .seconds(20), every: .milliseconds(200)) {
                try await AuditWriterTests.stored(type: type).rows == 200
            }
            #expect(stored)

            // An operator's restart (after a fix): a new process, consuming when the command returns.
            let current = try #require(try await run.instances("audit-writer").first?.pid)
            let restart = try await run.run(["restart", "audit-writer"])
            #expect(restart.status == 0, "\(restart.output)")
            let restarted = try #require(try await run.instances("audit-writer").first)
            #expect(restarted.pid != current && restarted.alive && restarted.queues == ["audit.events"], "\(restarted)")

            let stop = try await run.run(["stop"])
            #expect(stop.status == 0, "\(stop.output)")
            #expect(stop.output.contains("aira-audit-writer#1"))
        }

        // A worker that cannot start (a bad variable: exit 1 at once) is restarted with backoff,
        // then left down as failed, and both status and the log say so.
        try await LocalRun.with { run in
            let env = ["AIRA_CONCURRENCY": "many", "AIRA_RUN_RESTART_BACKOFF": "200ms", "AIRA_RUN_MAX_CRASHES": "3",
                       "AIRA_RUN_READY_TIMEOUT": "10"]
            let up = try await run.run(["--detach", "--only", "audit-writer"], environment: env)
            #expect(up.status != 0, "scripts/run reported success for a worker that cannot start")
            var instance: RunStatus.Instance?
            let failed = try await eventually(timeout: .seconds(15), every: .milliseconds(200)) {
                instance = try await run.instances("audit-writer").first
                return instance?.state == "failed"
            }
            try #require(failed, "\(String(describing: instance))")
            #expect(instance?.restarts == 2)
            #expect(instance?.last_exit == "exit 1")
            #expect(run.supervisorLog.contains("FAILED aira-audit-writer#1: exit 1"))
            let status = try await run.run(["status"])
            #expect(status.status == 1, "status exits 1 while an instance is down")
            #expect(status.output.contains("failed (exit 1)"), "\(status.output)")
            let stop = try await run.run(["stop"])
            #expect(stop.status == 0)
            #expect(stop.output.contains("aira-audit-writer#1: was not running (failed"), "\(stop.output)")
        }
    }

    @Test("stop after the supervisor and one instance were killed stops every other instance, and never a process it did not start")
    func stopAfterKill() async throws {
        try await LocalRun.with { run in
            let up = try await run.run(["--detach", "--only", "audit-writer,email-worker", "--scale", "audit-writer=2"])
            try #require(up.status == 0, "scripts/run --detach failed:\n\(up.output.suffix(3000))")
            let status = try await run.status()
            #expect(status.instances.map(\.instance).sorted() == ["aira-audit-writer#1", "aira-audit-writer#2",
                                                                   "aira-email-worker#1", "smtp-dev#1"])
            let supervisor = try #require(status.supervisor.pid)
            let victim = try #require(status.instances.first { $0.instance == "aira-audit-writer#2" }?.pid)
            let others = status.instances.filter { $0.instance != "aira-audit-writer#2" }.compactMap(\.pid)
            kill(supervisor, SIGKILL)
            kill(victim, SIGKILL)

            // A process scripts/run did not start, under a pid the state file claims (a pid reused
            // after its instance died): the recorded start time differs, so stop leaves it alone.
            let stranger = Process()
            stranger.executableURL = URL(fileURLWithPath: "/bin/sleep")
            stranger.arguments = ["60"]
            try stranger.run()
            defer { stranger.terminate() }
            let stateURL = run.directory.appendingPathComponent("run/supervisor.json")
            var state = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: stateURL)) as? [String: Any])
            var instances = try #require(state["instances"] as? [[String: Any]])
            var fake = instances[0]
            fake["instance"] = "aira-audit-writer#9"
            fake["pid"] = Int(stranger.processIdentifier)
            fake["pid_start"] = 12345
            instances.append(fake)
            state["instances"] = instances
            try JSONSerialization.data(withJSONObject: state).write(to: stateURL)

            let stop = try await run.run(["stop"])
            #expect(stop.status == 0, "\(stop.output)")
            #expect(stop.output.contains("the supervisor is not running"))
            #expect(stop.output.contains("aira-audit-writer#2: was not running"), "\(stop.output)")
            for name in ["aira-audit-writer#1", "aira-email-worker#1", "smtp-dev#1"] {
                #expect(stop.output.contains("\(name) (pid"), "\(name) not reported stopped:\n\(stop.output)")
            }
            for pid in others {
                // Exited (a zombie of a dead parent counts: it no longer runs).
                let gone = await eventually(timeout: .seconds(10), every: .milliseconds(100)) {
                    let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8)
                    return stat == nil || stat!.split(separator: ")").last!.dropFirst().hasPrefix("Z")
                }
                #expect(gone, "pid \(pid) still runs")
            }
            #expect(stranger.isRunning, "stop killed a process it did not start")
            let again = try await run.run(["stop"])
            #expect(again.status == 0)
            #expect(again.output.contains("nothing to stop"), "\(again.output)")
        }
    }

    @Test("scaling audit writers and email workers up and down under a stream of messages loses none and doubles none")
    func scaleUnderLoad() async throws {
        try await LocalRun.with { run in
            let up = try await run.run(["--detach", "--only", "audit-writer,email-worker"])
            try #require(up.status == 0, "scripts/run --detach failed:\n\(up.output.suffix(3000))")
            let type = "ops_scale_\(UUID().uuidString.prefix(6).lowercased())"
            let tag = "ops-\(UUID().uuidString.prefix(6).lowercased())"
            // Both streams run until every scaling step is done (at most 20,000 events and 1,000 mails).
            let scaled = Flag()
            async let audit = Self.publishAudit(run, type: type, count: 20_000, perSecond: 400, until: scaled)
            async let mail = Self.publishMail(run, tag: tag, count: 1_000, perSecond: 12, until: scaled)

            var steps: [String] = []
            for (service, count) in [("audit-writer", 3), ("email-worker", 3), ("audit-writer", 1), ("email-worker", 0),
                                     ("email-worker", 2), ("audit-writer", 2), ("email-worker", 1), ("audit-writer", 1)] {
                try await Task.sleep(for: .seconds(1.5))
                let r = try await run.run(["scale", service, "\(count)"])
                #expect(r.status == 0, "scale \(service) \(count): \(r.output)")
                steps.append("scale \(service) \(count): \(r.output.split(separator: "\n").last ?? "")")
                let n = try await run.instances(service).count
                #expect(n == count, "scale \(service) \(count) left \(n) instances")
            }
            scaled.raise()
            let (events, mails) = (try await audit, try await mail)
            #expect(events >= 2_000 && events < 20_000 && mails >= 50 && mails < 1_000,
                    "the streams ended before the scaling did: \(events) events, \(mails) mails")

            let stored = try await eventually(timeout: .seconds(60), every: .milliseconds(250)) {
                try await AuditWriterTests.stored(type: type).rows >= events
            }
            let rows = try await AuditWriterTests.stored(type: type)
            #expect(stored && rows.rows == events && rows.distinct == events, "\(rows) of \(events); \(steps)")
            let delivered = await eventually(timeout: .seconds(60), every: .milliseconds(250)) {
                Self.mails(run, tag: tag).count >= mails
            }
            let counts = Self.mails(run, tag: tag)
            #expect(delivered && counts.count == mails, "\(counts.count) of \(mails) mails; \(steps)")
            #expect(counts.values.allSatisfy { $0 == 1 }, "doubled: \(counts.filter { $0.value > 1 })")
            // Drained (the management API's figures trail by up to its 5 s statistics interval).
            var queues: [RunStatus.Queue] = []
            let drained = try await eventually(timeout: .seconds(20), every: .milliseconds(500)) {
                queues = try await run.status().queues.filter { ["audit.events", "email.send"].contains($0.queue) }
                return queues.count == 2 && queues.allSatisfy { $0.depth == 0 }
            }
            #expect(drained, "\(queues)")
            print("scale under load: \(events) events and \(mails) mails while: \(steps.joined(separator: "; "))")
            let stop = try await run.run(["stop"])
            #expect(stop.status == 0, "\(stop.output)")
        }
    }
}
