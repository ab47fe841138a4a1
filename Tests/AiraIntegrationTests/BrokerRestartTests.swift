import AiraAMQP
import AiraMessaging
import Foundation
import Synchronization
import Testing

/// Restarts the broker's app (`rabbitmqctl stop_app` / `start_app`). It disturbs every other
/// test, so scripts/test runs it on its own, after the rest (AIRA_TEST_BROKER_RESTART=1).
@Suite("Broker restart under a consumer", .serialized,
       .enabled(if: TestServers.available && ProcessInfo.processInfo.environment["AIRA_TEST_BROKER_RESTART"] == "1"))
struct BrokerRestartTests {
    func rabbitmqctl(_ args: String...) throws {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: ProcessInfo.processInfo.environment["AIRA_RABBITMQCTL"] ?? "scripts/rabbitmqctl")
        p.arguments = args
        p.standardOutput = FileHandle.nullDevice
        try p.run()
        p.waitUntilExit()
        guard p.terminationStatus == 0 else { throw AMQPError.library(code: p.terminationStatus, "rabbitmqctl \(args)") }
    }

    @Test("the consumer reconnects and no confirmed message is lost")
    func restart() async throws {
        let h = try await MessagingHarness.make()
        let spec = QueueSpec(name: uniqueName("restart"), bindings: [uniqueName("restart.key")],
                             retry: RetryPolicy(tiers: [.milliseconds(200)], maxAttempts: 5), deliveryLimit: 10)
        let recorder = Recorder()
        let consumer = h.consumer(spec, recorder: recorder)
        let services = RunningServices([consumer])
        #expect(try await h.waitForConsumers(spec.name))

        let confirmed = Mutex<[String]>([])
        let failed = Mutex(0)
        // Publish steadily while the broker goes away and comes back; keep what was confirmed.
        let publishing = Task {
            for i in 0..<400 {
                let id = "p\(i)"
                do {
                    try await h.publisher.publish(TestJob(id: id, action: "ok"), routingKey: spec.bindings[0])
                    confirmed.withLock { $0.append(id) }
                } catch {
                    failed.withLock { $0 += 1 }
                    try? await Task.sleep(for: .milliseconds(50))
                }
                try? await Task.sleep(for: .milliseconds(10))
            }
        }
        try await Task.sleep(for: .milliseconds(800))
        try rabbitmqctl("stop_app")
        #expect(try await eventually { !h.connection.isConnected })
        try await Task.sleep(for: .seconds(1))
        try rabbitmqctl("start_app")
        try rabbitmqctl("await_startup")
        #expect(try await eventually(timeout: .seconds(30)) { h.connection.isConnected })
        await publishing.value

        let ids = confirmed.withLock { $0 }
        #expect(failed.withLock { $0 } > 0, "some publishes should have failed while the broker was down")
        #expect(ids.count > 100)
        #expect(try await eventually(timeout: .seconds(30)) { Set(ids).isSubset(of: Set(recorder.succeededIDs)) },
                "confirmed but never consumed: \(Set(ids).subtracting(recorder.succeededIDs).sorted().prefix(10))")
        #expect(try await h.waitForConsumers(spec.name))
        await services.stop()
        await h.tearDown(spec)
    }
}
