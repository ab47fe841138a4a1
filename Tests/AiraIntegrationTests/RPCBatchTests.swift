import AiraAMQP
import AiraMessaging
import Foundation
import Synchronization
import Testing

/// Batched RPC (RPCBatch) through the real broker: many calls share request messages, each gets
/// its own answer, slow answers come back on their own, and a bad request in a batch is refused
/// alone.
@Suite("RPC batches", .enabled(if: TestServers.available))
struct RPCBatchTests {
    final class Seen: Sendable {
        let batches = Mutex<[Int]>([])
        /// Each call's text → what its context said (request id, the trace id of its traceparent, message id).
        let calls = Mutex<[String: (requestID: String?, trace: Substring, messageID: String)]>([:])
        func record(_ n: Int) { self.batches.withLock { $0.append(n) } }
    }

    func serve(_ h: MessagingHarness, seen: Seen) -> (QueueSpec, RunningServices) {
        let q = uniqueName("rpc-batch")
        let spec = QueueSpec(name: q, bindings: ["\(q).call"], kind: .rpc, maxLength: 1000)
        var routes = RPCRoutes()
        routes.on(EchoRequest.self) { request, _ in EchoResponse(echoed: request.text.uppercased()) }
        routes.onBatch(EchoRequest.self) { calls in
            seen.record(calls.count)
            seen.calls.withLock { seen in
                for call in calls {
                    seen[call.request.text] = (call.context.requestID, call.context.traceparent.dropFirst(3).prefix(32), call.context.messageID)
                }
            }
            // A batch holding a "hold-batch" request answers nothing (so keeps its lane slot) for 800 ms.
            if calls.contains(where: { $0.request.text == "hold-batch" }) { try? await Task.sleep(for: .milliseconds(800)) }
            return calls.map { call -> RPCBatch.Outcome<EchoResponse> in
                let request = call.request
                if request.text == "forbidden" { return .answer(.failure(RPCErrorReply(code: "forbidden", message: "not allowed"))) }
                if request.text == "broken" { return .answer(.failure(TransientError(code: "redis_down", "redis at 10.0.0.7 said no"))) }
                guard let delay = request.delayMilliseconds else { return .answer(.success(EchoResponse(echoed: request.text.uppercased()))) }
                return .later {
                    try await Task.sleep(for: .milliseconds(delay))
                    return EchoResponse(echoed: "LATE " + request.text.uppercased())
                }
            }
        }
        let server = RPCServer(spec: spec, routes: routes, connection: h.connection, publisher: h.publisher,
                               options: ConsumerOptions(concurrency: 8, prefetch: 16), logger: TestServers.logger)
        return (spec, RunningServices([server]))
    }

    /// Runs `body` with a client of a batch server on a queue of its own; stops and removes both after.
    func withServer(seen: Seen = Seen(), _ body: (RPCClient, QueueSpec, MessagingHarness) async throws -> Void) async throws {
        let h = try await MessagingHarness.make()
        let (spec, services) = serve(h, seen: seen)
        #expect(try await h.waitForConsumers(spec.name))
        let client = try await RPCClient.open(on: h.connection)
        do {
            try await body(client, spec, h)
        } catch {
            await services.stop()
            await h.tearDown(spec)
            throw error
        }
        await services.stop()
        await h.tearDown(spec)
    }

    @Test("300 concurrent calls share messages; each gets its own answer or its own typed error")
    func manyCalls() async throws {
        let seen = Seen()
        try await self.withServer(seen: seen) { client, spec, h in
            let options = RPCBatch.Options(maxBatch: 64, parallel: 1)
            try await withThrowingTaskGroup(of: Void.self) { group in
                for i in 0..<300 {
                    group.addTask {
                        let text = i % 50 == 7 ? "forbidden" : "n\(i)"
                        do {
                            let r = try await client.call(EchoRequest(text: text), routingKey: spec.bindings[0], expecting: EchoResponse.self,
                                                          timeout: .seconds(10), batching: options)
                            #expect(text != "forbidden" && r.echoed == "N\(i)")
                        } catch RPCCallError.remote(let reply) {
                            #expect(text == "forbidden" && reply.code == "forbidden")
                        }
                    }
                }
                try await group.waitForAll()
            }
            let batches = seen.batches.withLock { $0 }
            #expect(batches.reduce(0, +) == 300)
            #expect(batches.count < 300 && batches.allSatisfy { $0 <= 64 }, "batch sizes: \(batches)")
        }
    }

    @Test("a slow request answers on its own: the quick ones of its batch and the batches behind it do not wait")
    func slowAnswerAlone() async throws {
        try await self.withServer { client, spec, h in
            let options = RPCBatch.Options(maxBatch: 64, parallel: 1)
            let call: @Sendable (EchoRequest) async throws -> (String, Duration) = { request in
                let started = ContinuousClock.now
                let r = try await client.call(request, routingKey: spec.bindings[0], expecting: EchoResponse.self, timeout: .seconds(10),
                                              batching: options)
                return (r.echoed, ContinuousClock.now - started)
            }
            async let slow = call(EchoRequest(text: "slow", delayMilliseconds: 2000))
            try await Task.sleep(for: .milliseconds(50))
            // One lane slot (parallel 1): these go once the slow one's batch has given its slot back.
            let quick = try await withThrowingTaskGroup(of: (String, Duration).self) { group in
                for i in 0..<20 { group.addTask { try await call(EchoRequest(text: "q\(i)")) } }
                return try await group.reduce(into: []) { $0.append($1) }
            }
            #expect(quick.count == 20 && quick.allSatisfy { $0.0.hasPrefix("Q") })
            #expect(quick.allSatisfy { $0.1 < .milliseconds(1500) }, "quick calls took \(quick.map(\.1))")
            let (text, took) = try await slow
            #expect(text == "LATE SLOW" && took >= .milliseconds(2000))
        }
    }

    @Test("a lane takes new options at once: with more batches allowed out, a waiting call goes without waiting for the slot")
    func adoptsOptions() async throws {
        try await self.withServer { client, spec, h in
            let one = RPCBatch.Options(maxBatch: 64, parallel: 1), two = RPCBatch.Options(maxBatch: 64, parallel: 2)
            let call: @Sendable (RPCBatch.Options) async throws -> Duration = { options in
                let started = ContinuousClock.now
                _ = try await client.call(EchoRequest(text: "hold-batch"), routingKey: spec.bindings[0], expecting: EchoResponse.self,
                                          timeout: .seconds(10), batching: options)
                return ContinuousClock.now - started
            }
            async let first = call(one) // holds the only slot for 800 ms
            try await Task.sleep(for: .milliseconds(100))
            async let second = call(one) // waits for the slot…
            try await Task.sleep(for: .milliseconds(100))
            async let third = call(two) // …until this call allows two batches out: it goes now (~900 ms, not ~1,500)
            let (a, b, _) = try await (first, second, third)
            #expect(a >= .milliseconds(800))
            #expect(b < .milliseconds(1200), "the waiting call took \(b): it waited for the first batch")
        }
    }

    @Test("a request of a batch that does not decode is refused alone; the others are answered")
    func badItem() async throws {
        try await self.withServer { client, spec, h in
            // A batch of its own, sent through the lane: the caller of the bad one gets bad_request.
            struct Wrong: MessageContract { static let messageType = EchoRequest.messageType; var unrelated: Int }
            let options = RPCBatch.Options(maxBatch: 64, parallel: 1)
            async let blocker = client.call(EchoRequest(text: "hold", delayMilliseconds: 300), routingKey: spec.bindings[0],
                                            expecting: EchoResponse.self, timeout: .seconds(10), batching: options)
            try await Task.sleep(for: .milliseconds(50))
            async let good = client.call(EchoRequest(text: "fine"), routingKey: spec.bindings[0], expecting: EchoResponse.self,
                                         timeout: .seconds(10), batching: options)
            await #expect {
                _ = try await client.call(Wrong(unrelated: 1), routingKey: spec.bindings[0], expecting: EchoResponse.self,
                                          timeout: .seconds(10), batching: options)
            } throws: { error in
                guard case RPCCallError.remote(let reply) = error else { return false }
                return reply.code == RPCErrorReply.badRequestCode && reply.message.contains("missing field 'text'")
            }
            #expect(try await good.echoed == "FINE")
            #expect(try await blocker.echoed == "LATE HOLD")
            // A batch message that is not an array at all is dead-lettered like any undecodable request.
            await #expect(throws: RPCCallError.self) {
                _ = try await client.call(NotABatch(), routingKey: spec.bindings[0], expecting: EchoResponse.self, timeout: .seconds(5))
            }
            #expect(try await eventually { try await h.depth(spec.deadLetterQueue) == 1 })
        }
    }
}

extension RPCBatchTests {
    @Test("each call of a batch carries its own request id and trace; errors map as for a single call")
    func idsAndErrors() async throws {
        let seen = Seen()
        try await self.withServer(seen: seen) { client, spec, h in
            let options = RPCBatch.Options(maxBatch: 64, parallel: 1)
            let traces = (0..<20).map { _ in TraceParent.random() }
            try await withThrowingTaskGroup(of: Void.self) { group in
                for i in 0..<20 {
                    group.addTask {
                        _ = try await client.call(EchoRequest(text: "c\(i)"), routingKey: spec.bindings[0], expecting: EchoResponse.self,
                                                  timeout: .seconds(10), batching: options,
                                                  requestID: i == 5 ? nil : "req-\(i)", traceparent: traces[i])
                    }
                }
                try await group.waitForAll()
            }
            let calls = seen.calls.withLock { $0 }
            #expect(seen.batches.withLock { $0.count } < 20, "the calls shared messages")
            for i in 0..<20 {
                let call = try #require(calls["c\(i)"])
                #expect(call.requestID == (i == 5 ? nil : "req-\(i)"))
                #expect(call.trace == traces[i].dropFirst(3).prefix(32), "call \(i) continues its own trace")
                #expect(call.messageID.contains("#"), "a call of a batch has an id of its own: \(call.messageID)")
            }
            #expect(Set(calls.values.map(\.messageID)).count == 20)
            // A transient failure is answered `unavailable` without its text (which may name servers).
            await #expect {
                _ = try await client.call(EchoRequest(text: "broken"), routingKey: spec.bindings[0], expecting: EchoResponse.self,
                                          timeout: .seconds(10), batching: options)
            } throws: { error in
                guard case RPCCallError.remote(let reply) = error else { return false }
                return reply.code == RPCErrorReply.unavailableCode && !reply.message.contains("10.0.0.7")
            }
        }
    }

    @Test("a cancelled caller stops waiting at once, whether its batch has left or not; the others are answered")
    func cancellation() async throws {
        try await self.withServer { client, spec, h in
            let options = RPCBatch.Options(maxBatch: 64, parallel: 1)
            let call: @Sendable (String, Int?) async throws -> String = { text, delay in
                try await client.call(EchoRequest(text: text, delayMilliseconds: delay), routingKey: spec.bindings[0],
                                      expecting: EchoResponse.self, timeout: .seconds(10), batching: options).echoed
            }
            // Out: a batch holding the only slot for 800 ms. Waiting: a call queued behind it.
            let out = Task { try await call("hold-batch", nil) }
            try await Task.sleep(for: .milliseconds(100))
            let queued = Task { try await call("queued", nil) }
            try await Task.sleep(for: .milliseconds(100))
            let slowOut = Task { try await call("slow", 3000) }
            for task in [queued, out] {
                let started = ContinuousClock.now
                task.cancel()
                await #expect(throws: CancellationError.self) { _ = try await task.value }
                #expect(ContinuousClock.now - started < .milliseconds(300), "a cancelled call ended its wait at once")
            }
            // The lane still works: the slot comes back with the held batch's reply, and the slow call is answered.
            #expect(try await call("after", nil) == "AFTER")
            #expect(try await slowOut.value == "LATE SLOW")
        }
    }
}

/// A body of the batch type that is not a JSON array.
struct NotABatch: MessageContract {
    static let messageType = EchoRequest.messageType + RPCBatch.typeSuffix
    var text = "not an array"
}
