import AiraCore
import AiraAMQP
import AiraMessaging
import Foundation
import Testing

@Suite("Consumer runtime: retries, dead letters, shutdown", .enabled(if: TestServers.available))
struct ConsumerRuntimeTests {
    func spec(_ name: String, tiers: [Duration] = [.milliseconds(200), .milliseconds(400)], maxAttempts: Int = 4) -> QueueSpec {
        let q = uniqueName(name)
        return QueueSpec(name: q, bindings: ["\(q).key"], retry: RetryPolicy(tiers: tiers, maxAttempts: maxAttempts))
    }

    @Test("publish through the exchange, consume, ack")
    func roundTrip() async throws {
        let h = try await MessagingHarness.make()
        let spec = spec("rt")
        let recorder = Recorder()
        let services = RunningServices([h.consumer(spec, recorder: recorder)])
        try await h.admin.declareExchange(AiraExchange.name)
        #expect(try await h.waitForConsumers(spec.name))
        for i in 0..<50 {
            try await h.publisher.publish(TestJob(id: "j\(i)", action: "ok"), routingKey: spec.bindings[0])
        }
        #expect(try await eventually { recorder.succeededIDs.count == 50 })
        #expect(try await eventually { try await h.depth(spec.name) == 0 })
        await services.stop()
        await h.tearDown(spec)
    }

    @Test("a publish to an unroutable key fails loudly")
    func unroutable() async throws {
        let h = try await MessagingHarness.make()
        await #expect {
            try await h.publisher.publish(TestJob(id: "x", action: "ok"), routingKey: uniqueName("nobody"))
        } throws: { error in
            if case AMQPError.unroutable = error { return true }
            return false
        }
        await h.tearDown()
    }

    @Test("transient failures go through the retry tiers and then succeed")
    func retryThenSucceed() async throws {
        let h = try await MessagingHarness.make()
        let spec = spec("retry")
        let recorder = Recorder()
        let services = RunningServices([h.consumer(spec, recorder: recorder)])
        #expect(try await h.waitForConsumers(spec.name))
        let started = ContinuousClock.now
        try await h.publisher.publish(TestJob(id: "r1", action: "fail-first-2"), routingKey: spec.bindings[0])
        #expect(try await eventually(timeout: .seconds(15)) { recorder.succeededIDs == ["r1"] })
        let elapsed = ContinuousClock.now - started
        // Two failures: waits of 200 ms (tier 1) and 400 ms (tier 2).
        #expect(elapsed >= .milliseconds(600))
        #expect(recorder.attempts("r1") == [0, 1, 2])
        #expect(try await h.depth(spec.deadLetterQueue) == 0)
        await services.stop()
        await h.tearDown(spec)
    }

    @Test("max attempts → DLQ with every reason header")
    func exhausted() async throws {
        let h = try await MessagingHarness.make()
        let spec = spec("exhausted", tiers: [.milliseconds(100)], maxAttempts: 3)
        let recorder = Recorder()
        let services = RunningServices([h.consumer(spec, recorder: recorder)])
        #expect(try await h.waitForConsumers(spec.name))
        let before = Date()
        let id = try await h.publisher.publish(TestJob(id: "e1", action: "transient"), routingKey: spec.bindings[0],
                                               correlationID: "corr-e1")
        #expect(try await eventually { try await h.depth(spec.deadLetterQueue) == 1 })
        #expect(recorder.count("e1") == 3)
        await services.stop()

        let dead = try #require(try await h.take(spec.deadLetterQueue))
        let headers = dead.properties.headers
        #expect(dead.properties.messageID == id)
        #expect(dead.properties.correlationID == "corr-e1")
        #expect(dead.properties.type == TestJob.messageType)
        #expect(headers[AiraHeader.attempts]?.intValue == 3)
        #expect(headers[AiraHeader.error]?.stringValue == "downstream unavailable (test)")
        #expect(headers[AiraHeader.errorType]?.stringValue == "test_transient")
        #expect(headers[AiraHeader.disposition]?.stringValue == "retries_exhausted")
        #expect(headers[AiraHeader.originalRoutingKey]?.stringValue == spec.bindings[0])
        #expect(headers[AiraHeader.queue]?.stringValue == spec.name)
        #expect(headers[AiraHeader.traceparent]?.stringValue.map(TraceParent.isValid) == true)
        let first = try #require(headers[AiraHeader.firstFailedAt]?.stringValue.flatMap(parseISO8601))
        let last = try #require(headers[AiraHeader.lastFailedAt]?.stringValue.flatMap(parseISO8601))
        #expect(first >= before.addingTimeInterval(-1) && first <= last)
        #expect(last.timeIntervalSince(first) >= 0.2) // two 100 ms tiers between first and last failure
        #expect(headers["x-death"] == nil)
        #expect(try MessageCoding.decode(TestJob.self, from: dead.body) == TestJob(id: "e1", action: "transient"))
        await h.tearDown(spec)
    }

    @Test("permanent errors, undecodable bodies and unknown types go to the DLQ at once")
    func permanent() async throws {
        let h = try await MessagingHarness.make()
        let spec = spec("permanent")
        let recorder = Recorder()
        let services = RunningServices([h.consumer(spec, recorder: recorder)])
        #expect(try await h.waitForConsumers(spec.name))
        try await h.publisher.publish(TestJob(id: "p1", action: "permanent"), routingKey: spec.bindings[0])
        let garbage = MessagePublisher.properties(type: TestJob.messageType, messageID: "garbage-1", correlationID: nil, traceparent: nil)
        try await h.publisher.publishRaw(exchange: AiraExchange.name, routingKey: spec.bindings[0],
                                         body: Array("{\"id\": 7".utf8), properties: garbage)
        let missing = MessagePublisher.properties(type: TestJob.messageType, messageID: "missing-1", correlationID: nil, traceparent: nil)
        try await h.publisher.publishRaw(exchange: AiraExchange.name, routingKey: spec.bindings[0],
                                         body: Array("{\"id\": \"x\"}".utf8), properties: missing)
        let unknown = MessagePublisher.properties(type: "test.other.v9", messageID: "unknown-1", correlationID: nil, traceparent: nil)
        try await h.publisher.publishRaw(exchange: AiraExchange.name, routingKey: spec.bindings[0],
                                         body: Array("{}".utf8), properties: unknown)
        #expect(try await eventually { try await h.depth(spec.deadLetterQueue) == 4 })
        await services.stop()
        #expect(recorder.count("p1") == 1)

        var byID: [String: AMQPTable] = [:]
        for _ in 0..<4 {
            let d = try #require(try await h.take(spec.deadLetterQueue))
            byID[d.properties.messageID ?? ""] = d.properties.headers
        }
        #expect(byID.values.allSatisfy { $0[AiraHeader.disposition]?.stringValue == "permanent" })
        #expect(byID.values.allSatisfy { $0[AiraHeader.attempts]?.intValue == 1 })
        #expect(byID["garbage-1"]?[AiraHeader.errorType]?.stringValue == "decoding_failed")
        #expect(byID["missing-1"]?[AiraHeader.errorType]?.stringValue == "decoding_failed")
        #expect(byID["missing-1"]?[AiraHeader.error]?.stringValue?.contains("missing field 'action'") == true)
        #expect(byID["unknown-1"]?[AiraHeader.errorType]?.stringValue == "unknown_message_type")
        #expect(byID["unknown-1"]?[AiraHeader.error]?.stringValue?.contains("test.other.v9") == true)
        let p1 = try #require(byID.first { $0.value[AiraHeader.errorType]?.stringValue == "test_invalid" })
        #expect(p1.value[AiraHeader.error]?.stringValue == "job is invalid (test)")
        await h.tearDown(spec)
    }

    @Test("a retry of queue A never reaches queue B bound to the same key")
    func retryIsolation() async throws {
        let h = try await MessagingHarness.make()
        let key = uniqueName("shared.key")
        let a = QueueSpec(name: uniqueName("iso.a"), bindings: [key], retry: RetryPolicy(tiers: [.milliseconds(100)], maxAttempts: 3))
        let b = QueueSpec(name: uniqueName("iso.b"), bindings: [key], retry: RetryPolicy(tiers: [.milliseconds(100)], maxAttempts: 3))
        struct Split: MessageHandler {
            let recorder: Recorder
            let failOnce: Bool
            func handle(_ job: TestJob, context: MessageContext) async throws {
                let n = self.recorder.handled(job.id, attempt: context.attempts)
                if self.failOnce && n == 1 { throw TransientError(code: "t", "first attempt fails") }
                self.recorder.succeeded(job.id)
            }
        }
        let ra = Recorder(), rb = Recorder()
        let ca = QueueConsumer(spec: a, handler: Split(recorder: ra, failOnce: true), connection: h.connection, publisher: h.publisher, logger: TestServers.logger)
        let cb = QueueConsumer(spec: b, handler: Split(recorder: rb, failOnce: false), connection: h.connection, publisher: h.publisher, logger: TestServers.logger)
        let services = RunningServices([ca, cb])
        #expect(try await h.waitForConsumers(a.name, b.name))
        try await h.publisher.publish(TestJob(id: "shared", action: "ok"), routingKey: key)
        #expect(try await eventually { ra.succeededIDs == ["shared"] })
        try await Task.sleep(for: .milliseconds(500)) // time for a stray copy to show up
        #expect(ra.count("shared") == 2)
        #expect(rb.count("shared") == 1)
        await services.stop()
        await h.tearDown(a, b)
    }

    @Test("a consumer whose queue is deleted under it declares it again and goes on")
    func queueDeleted() async throws {
        let h = try await MessagingHarness.make()
        let spec = spec("deleted")
        let recorder = Recorder()
        let services = RunningServices([h.consumer(spec, recorder: recorder)])
        #expect(try await h.waitForConsumers(spec.name))
        try await h.admin.deleteQueue(spec.name) // the broker cancels the consumer
        #expect(try await h.waitForConsumers(spec.name, timeout: .seconds(15)), "not set up again")
        try await h.publisher.publish(TestJob(id: "after", action: "ok"), routingKey: spec.bindings[0])
        #expect(try await eventually { recorder.succeededIDs == ["after"] })
        await services.stop()
        await h.tearDown(spec)
    }

    @Test("graceful shutdown lets in-flight handlers finish and acks them")
    func gracefulShutdown() async throws {
        let h = try await MessagingHarness.make()
        let spec = spec("drain")
        let recorder = Recorder()
        let services = RunningServices([h.consumer(spec, recorder: recorder)])
        #expect(try await h.waitForConsumers(spec.name))
        for i in 0..<3 {
            try await h.publisher.publish(TestJob(id: "slow\(i)", action: "sleep", sleepMilliseconds: 800), routingKey: spec.bindings[0])
        }
        #expect(try await eventually { (0..<3).allSatisfy { recorder.count("slow\($0)") == 1 } })
        await services.stop() // returns only after the handlers finished
        #expect(Set(recorder.succeededIDs) == ["slow0", "slow1", "slow2"])
        // Acked before the connection closed: nothing is left to redeliver.
        #expect(try await eventually { try await h.depth(spec.name) == 0 })
        await h.tearDown(spec)
    }
}
