import AiraAMQP
import AiraMessaging
import AiraRedis
import Foundation
import Testing

@Suite("Worker processes: scaling, crashes, SIGTERM", .enabled(if: TestServers.available))
struct WorkerProcessTests {
    let redis: RedisClient

    init() throws {
        redis = RedisClient(configuration: try RedisConfiguration(url: TestServers.redisURL!))
    }

    /// A queue for worker processes, and the Redis key prefix they record under.
    func workerQueue(_ name: String, deliveryLimit: Int = 5) -> (QueueSpec, String) {
        let queue = uniqueName(name)
        let spec = QueueSpec(name: queue, bindings: ["\(queue).key"], retry: RetryPolicy(tiers: [.milliseconds(200)], maxAttempts: 3),
                             deliveryLimit: deliveryLimit)
        return (spec, "aira-test:\(queue)")
    }

    func cleanup(_ key: String) async {
        _ = try? await redis.send(["DEL", "\(key):done", "\(key):started", "\(key):by-worker"])
    }

    @Test("two worker processes on one queue share its messages")
    func competingConsumers() async throws {
        let h = try await MessagingHarness.make()
        let (spec, key) = workerQueue("compete")
        let queue = spec.name
        let a = try WorkerProcess(queue: queue, key: key, worker: "a")
        let b = try WorkerProcess(queue: queue, key: key, worker: "b")
        #expect(try await h.waitForConsumers(queue, count: 2, timeout: .seconds(30)), "workers did not start:\n\(a.log)\n\(b.log)")
        for i in 0..<200 {
            try await h.publisher.publish(TestJob(id: "m\(i)", action: "sleep", sleepMilliseconds: 5), routingKey: spec.bindings[0])
        }
        #expect(try await eventually(timeout: .seconds(30)) { try await redis.scard("\(key):done") == 200 })
        let byWorker = try await redis.hgetall("\(key):by-worker")
        let counts = byWorker.mapValues { Int($0) ?? 0 }
        #expect(counts.values.reduce(0, +) == 200)
        #expect((counts["a"] ?? 0) > 20 && (counts["b"] ?? 0) > 20, "work was not shared: \(counts)")
        a.terminate(); b.terminate()
        #expect(await a.waitForExit() == 0)
        #expect(await b.waitForExit() == 0)
        await cleanup(key)
        await h.tearDown(spec)
    }

    @Test("a consumer killed mid-message: the message is redelivered and handled")
    func crashRedelivery() async throws {
        let h = try await MessagingHarness.make()
        let (spec, key) = workerQueue("crash")
        let queue = spec.name
        let first = try WorkerProcess(queue: queue, key: key, worker: "first")
        #expect(try await h.waitForConsumers(queue, timeout: .seconds(30)), "worker did not start:\n\(first.log)")
        try await h.publisher.publish(TestJob(id: "fragile", action: "crash-once"), routingKey: spec.bindings[0])
        #expect(await first.waitForExit(timeout: .seconds(15)) == 3, "worker should crash:\n\(first.log)")
        #expect(try await redis.scard("\(key):done") == 0)

        let second = try WorkerProcess(queue: queue, key: key, worker: "second")
        #expect(try await eventually(timeout: .seconds(30)) { try await redis.sismember("\(key):done", "fragile") },
                "not redelivered:\n\(second.log)")
        #expect(try await h.depth(spec.deadLetterQueue) == 0)
        second.terminate()
        #expect(await second.waitForExit() == 0)
        await cleanup(key)
        await h.tearDown(spec)
    }

    @Test("a message that keeps killing consumers ends in the DLQ via the delivery limit")
    func poisonMessage() async throws {
        let h = try await MessagingHarness.make()
        let (spec, key) = workerQueue("poison", deliveryLimit: 2)
        let queue = spec.name
        try await spec.declare(on: h.admin)
        try await h.publisher.publish(TestJob(id: "poison", action: "crash"), routingKey: spec.bindings[0])
        try await h.publisher.publish(TestJob(id: "healthy", action: "ok"), routingKey: spec.bindings[0])

        var crashes = 0
        for round in 0..<6 {
            let w = try WorkerProcess(queue: queue, key: key, worker: "w\(round)", environment: ["AIRA_DELIVERY_LIMIT": "2", "AIRA_CONCURRENCY": "1", "AIRA_PREFETCH": "1"])
            // Either it crashes on the poison message, or it dead-letters it and lives on.
            _ = try await eventually(timeout: .seconds(20)) {
                if !w.isRunning { return true }
                return try await h.depth(spec.deadLetterQueue) == 1
            }
            if !w.isRunning {
                #expect(await w.waitForExit() == 3)
                crashes += 1
                continue
            }
            // It survived: the poison message must have been dead-lettered by now.
            #expect(try await eventually(timeout: .seconds(10)) { try await h.depth(spec.deadLetterQueue) == 1 }, "\(w.log)")
            #expect(try await eventually(timeout: .seconds(10)) { try await redis.sismember("\(key):done", "healthy") })
            w.terminate()
            _ = await w.waitForExit()
            break
        }
        #expect(crashes == 2, "the runtime should dead-letter on the third delivery")
        let dead = try #require(try await h.take(spec.deadLetterQueue))
        let headers = dead.properties.headers
        #expect(headers[AiraHeader.disposition]?.stringValue == "delivery_limit")
        #expect(headers[AiraHeader.errorType]?.stringValue == "delivery_limit")
        #expect(headers[AiraHeader.error]?.stringValue?.contains("delivered 3 times") == true)
        #expect(headers[AiraHeader.queue]?.stringValue == queue)
        #expect(try MessageCoding.decode(TestJob.self, from: dead.body).id == "poison")
        await cleanup(key)
        await h.tearDown(spec)
    }

    @Test("SIGTERM: in-flight messages finish and are acked, then the process exits 0")
    func sigtermDrains() async throws {
        let h = try await MessagingHarness.make()
        let (spec, key) = workerQueue("sigterm")
        let queue = spec.name
        let w = try WorkerProcess(queue: queue, key: key, worker: "drain", environment: ["AIRA_CONCURRENCY": "2", "AIRA_PREFETCH": "4"])
        #expect(try await h.waitForConsumers(queue, timeout: .seconds(30)), "worker did not start:\n\(w.log)")
        for i in 0..<4 {
            try await h.publisher.publish(TestJob(id: "slow\(i)", action: "sleep", sleepMilliseconds: 1500), routingKey: spec.bindings[0])
        }
        #expect(try await eventually { try await redis.scard("\(key):started") == 2 })
        w.terminate()
        #expect(await w.waitForExit(timeout: .seconds(20)) == 0, "\(w.log)")
        // The two in flight finished; the two prefetched but not started went back to the queue.
        let done = try await redis.smembers("\(key):done")
        #expect(done.count == 2)
        #expect(try await redis.scard("\(key):started") == 2)
        #expect(try await eventually { try await h.depth(queue) == 2 })
        #expect(w.log.contains("draining in-flight handlers"))
        await cleanup(key)
        await h.tearDown(spec)
    }

    @Test("a service whose HTTP port is taken exits 1 and says why (it used to hang with its siblings waiting)")
    func portTaken() async throws {
        // Start-up fails after the broker connection and the services are up: the group cancels
        // them, and every one must end (the audit trail's batcher waited for a graceful
        // shutdown that never came, so the process hung without listening).
        let stack = try await ServiceStack.start(auth: 0, gateways: 0)
        let taken = try ListeningSocket()
        for executable in ["aira-gateway", "aira-auth", "aira-gpt-proxy", "aira-mock-llm", "aira-audit-writer",
                           "aira-email-worker", "aira-thumbnail-worker", "aira-analyzer"] {
            let p = try WorkerProcess(executable: executable, name: "port-taken",
                                      environment: stack.environment.merging(["AIRA_HTTP_PORT": "\(taken.port)",
                                                                               "AIRA_ANALYZER_CATCH_UP_DAYS": "0"]) { $1 })
            let status = await p.waitForExit(timeout: .seconds(20))
            #expect(status == 1, "\(executable) did not exit 1 (\(status.map(String.init) ?? "still running")):\n\(p.log.suffix(2000))")
            #expect(p.log.contains("\(executable): cannot start") && p.log.contains("Address already in use"),
                    "\(executable):\n\(p.log.suffix(2000))")
        }
        withExtendedLifetime(taken) {}
        await stack.stop()
    }
}
