import AiraAMQP
import AiraContracts
import AiraMessaging
import AiraPostgres
import AiraWorkload
import Foundation
import Synchronization
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import Testing

extension LocalRun {
    /// A stack for one test, torn down afterwards; the supervisor's log goes into a failure.
    static func with(_ body: (LocalRun) async throws -> Void) async throws {
        let run = try await LocalRun(environment: TestServers.environment)
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

@Suite("scripts/run: supervise, scale, status, stop", .serialized, .enabled(if: TestServers.available && TestServers.environment["AIRA_BIN_DIR"] != nil))
struct OperatorLoopTests {
    /// Work for the stack: its audit events or mails, counted where they land.
    static func work(_ kind: Workload.Kind, _ run: LocalRun, database: PostgresClient) -> Workload {
        Workload(kind: kind, tag: "ops_\(kind.rawValue)_\(UUID().uuidString.prefix(6).lowercased())", database: database,
                 mediaRoot: run.directory.appendingPathComponent("media"), mailDirectory: run.directory.appendingPathComponent("mail"))
    }

    /// Publishes `count` pieces of work at a steady pace, each confirmed before the next (a
    /// stream, not a burst), or fewer if `until` is raised first; returns how many.
    @discardableResult
    static func stream(_ work: Workload, _ run: LocalRun, count: Int, perSecond: Int, until: Flag = Flag()) async throws -> Int {
        let connection = try await run.connect()
        defer { Task { await connection.close() } }
        let publisher = try await MessagePublisher.open(on: connection)
        let start = ContinuousClock.now
        for i in 0..<count {
            if until.isRaised { return i }
            try await work.publish(i, on: publisher)
            let due = start + .milliseconds(i * 1000 / perSecond)
            if ContinuousClock.now < due { try await Task.sleep(until: due) }
        }
        return count
    }

    static func database() -> PostgresClient {
        PostgresClient(configuration: PostgresConfiguration(url: TestServers.databaseURL!, poolSize: 1))
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
            let db = Self.database()
            defer { Task { await db.shutdown() } }
            let events = Self.work(.audit, run, database: db)
            try await Self.stream(events, run, count: 200, perSecond: 2000)
            let stored = try await eventually(timeout: .seconds(20), every: .milliseconds(200)) {
                try await events.effects().distinct == 200
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
            let db = Self.database()
            defer { Task { await db.shutdown() } }
            let (auditWork, mailWork) = (Self.work(.audit, run, database: db), Self.work(.email, run, database: db))
            // Both streams run until every scaling step is done (at most 20,000 events and 1,000 mails).
            let scaled = Flag()
            async let audit = Self.stream(auditWork, run, count: 20_000, perSecond: 400, until: scaled)
            async let mail = Self.stream(mailWork, run, count: 1_000, perSecond: 12, until: scaled)

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
                try await auditWork.effects().distinct >= events
            }
            let rows = try await auditWork.effects()
            #expect(stored && rows.distinct == events, "\(rows) of \(events) events; \(steps)")
            let delivered = try await eventually(timeout: .seconds(60), every: .milliseconds(250)) {
                try await mailWork.effects().distinct >= mails
            }
            try await Task.sleep(for: .seconds(1))  // a mail sent twice would land after its first copy
            let sent = try await mailWork.effects()
            #expect(delivered && sent.distinct == mails, "\(sent) of \(mails) mails; \(steps)")
            #expect(sent.duplicated == 0, "mails sent twice: \(sent)")
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
