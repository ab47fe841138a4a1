import AiraAMQP
import AiraMessaging
import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import Testing

struct EchoRequest: MessageContract {
    static let messageType = "test.echo.request.v1"
    var text: String
    var delayMilliseconds: Int?
}

struct EchoResponse: Codable, Sendable, Equatable {
    var echoed: String
}

struct EchoHandler: RPCHandler {
    let recorder: Recorder
    func handle(_ request: EchoRequest, context: MessageContext) async throws -> EchoResponse {
        _ = self.recorder.handled(request.text, attempt: context.attempts)
        if let d = request.delayMilliseconds { try await Task.sleep(for: .milliseconds(d)) }
        if request.text == "forbidden" { throw RPCErrorReply(code: "forbidden", message: "not allowed", details: ["why": "test"]) }
        if request.text == "flaky" && self.recorder.count("flaky") < 3 { throw TransientError(code: "flaky", "try again") }
        return EchoResponse(echoed: request.text.uppercased())
    }
}

@Suite("RPC over direct reply-to", .enabled(if: TestServers.available))
struct RPCTests {
    func serve(_ h: MessagingHarness, recorder: Recorder) -> (QueueSpec, RunningServices) {
        let q = uniqueName("rpc")
        let spec = QueueSpec(name: q, bindings: ["\(q).call"], kind: .rpc, retry: RetryPolicy(tiers: [.milliseconds(50)], maxAttempts: 5),
                             maxLength: 1000)
        let server = RPCServer(spec: spec, handler: EchoHandler(recorder: recorder), connection: h.connection,
                               publisher: h.publisher, options: ConsumerOptions(concurrency: 4, prefetch: 8), logger: TestServers.logger)
        return (spec, RunningServices([server]))
    }

    @Test("success, typed error, in-process retry")
    func successAndErrors() async throws {
        let h = try await MessagingHarness.make()
        let recorder = Recorder()
        let (spec, services) = serve(h, recorder: recorder)
        #expect(try await h.waitForConsumers(spec.name))
        let client = try await RPCClient.open(on: h.connection)

        let ok = try await client.call(EchoRequest(text: "hello"), routingKey: spec.bindings[0], expecting: EchoResponse.self, timeout: .seconds(5))
        #expect(ok == EchoResponse(echoed: "HELLO"))

        await #expect {
            _ = try await client.call(EchoRequest(text: "forbidden"), routingKey: spec.bindings[0], expecting: EchoResponse.self, timeout: .seconds(5))
        } throws: { error in
            guard case RPCCallError.remote(let reply) = error else { return false }
            return reply.code == "forbidden" && reply.details?["why"] == "test"
        }

        let flaky = try await client.call(EchoRequest(text: "flaky"), routingKey: spec.bindings[0], expecting: EchoResponse.self, timeout: .seconds(5))
        #expect(flaky == EchoResponse(echoed: "FLAKY"))
        #expect(recorder.count("flaky") == 3)

        // Many concurrent calls all get their own answer.
        try await withThrowingTaskGroup(of: Void.self) { group in
            for i in 0..<200 {
                group.addTask {
                    let r = try await client.call(EchoRequest(text: "n\(i)"), routingKey: spec.bindings[0], expecting: EchoResponse.self, timeout: .seconds(10))
                    #expect(r.echoed == "N\(i)")
                }
            }
            try await group.waitForAll()
        }
        #expect(client.inFlight == 0)
        await services.stop()
        await h.tearDown(spec)
    }

    @Test("deadline: the caller times out, and the server drops the expired request")
    func deadline() async throws {
        let h = try await MessagingHarness.make()
        let recorder = Recorder()
        let (spec, services) = serve(h, recorder: recorder)
        #expect(try await h.waitForConsumers(spec.name))
        let client = try await RPCClient.open(on: h.connection)

        let started = ContinuousClock.now
        await #expect {
            _ = try await client.call(EchoRequest(text: "slow", delayMilliseconds: 3000), routingKey: spec.bindings[0],
                                      expecting: EchoResponse.self, timeout: .milliseconds(300))
        } throws: { error in
            if case RPCCallError.timeout = error { return true }
            return false
        }
        // Well before the 3 s reply: the caller's deadline ended the call.
        #expect(ContinuousClock.now - started < .milliseconds(2500))

        // Let the slow handler finish (its reply goes nowhere), then occupy all 4 handlers and
        // queue a request whose deadline passes while it waits.
        try await Task.sleep(for: .milliseconds(2900))
        for i in 0..<4 {
            Task { _ = try? await client.call(EchoRequest(text: "busy\(i)", delayMilliseconds: 800), routingKey: spec.bindings[0],
                                              expecting: EchoResponse.self, timeout: .seconds(5)) }
        }
        #expect(try await eventually { (0..<4).allSatisfy { recorder.count("busy\($0)") == 1 } })
        await #expect(throws: RPCCallError.self) {
            _ = try await client.call(EchoRequest(text: "late"), routingKey: spec.bindings[0], expecting: EchoResponse.self, timeout: .milliseconds(200))
        }
        try await Task.sleep(for: .milliseconds(1200))
        #expect(recorder.count("late") == 0) // dropped unhandled: its caller had given up
        await services.stop()
        await h.tearDown(spec)
    }

    @Test("the connection is lost with calls in flight: they fail at once as unavailable, not at their timeout; later calls work")
    func connectionLostInFlight() async throws {
        let h = try await MessagingHarness.make()
        let recorder = Recorder()
        let (spec, services) = serve(h, recorder: recorder)
        #expect(try await h.waitForConsumers(spec.name))
        // The client on a connection of its own, which the broker then closes (as a broker
        // restart or a network cut would); the server keeps its connection.
        let name = uniqueName("rpc-client")
        let connection = try await TestServers.connect(name: name)
        let client = try await RPCClient.open(on: connection)
        #expect(try await client.call(EchoRequest(text: "before"), routingKey: spec.bindings[0], expecting: EchoResponse.self,
                                      timeout: .seconds(5)) == EchoResponse(echoed: "BEFORE"))

        // The management API lists a new connection only after its next statistics round: find it first.
        let target = try await connectionName(userProvided: name)

        let plain = Task {
            try await client.call(EchoRequest(text: "in-flight", delayMilliseconds: 10_000), routingKey: spec.bindings[0],
                                  expecting: EchoResponse.self, timeout: .seconds(30))
        }
        let streamed = Task {
            for try await _ in client.stream(EchoRequest(text: "streamed", delayMilliseconds: 10_000), routingKey: spec.bindings[0],
                                             partial: EchoResponse.self, expecting: EchoResponse.self, timeout: .seconds(30)) {}
        }
        #expect(try await eventually { recorder.count("in-flight") == 1 && recorder.count("streamed") == 1 })
        try await management("DELETE", "/api/connections/\(try #require(target.addingPercentEncoding(withAllowedCharacters: .alphanumerics)))")
        let closed = ContinuousClock.now
        for outcome in [await plain.result.map { _ in () }, await streamed.result] {
            guard case .failure(RPCCallError.unavailable(.connectionLost)) = outcome else {
                Issue.record("expected unavailable(connectionLost), got \(outcome)")
                continue
            }
        }
        #expect(ContinuousClock.now - closed < .seconds(2), "failed at the loss, not at the reply (10 s) or the timeout (30 s)")

        // The client reconnects by itself and calls work again.
        let again = await eventually(timeout: .seconds(15), every: .milliseconds(200)) {
            (try? await client.call(EchoRequest(text: "after"), routingKey: spec.bindings[0], expecting: EchoResponse.self,
                                    timeout: .seconds(2))) == EchoResponse(echoed: "AFTER")
        }
        #expect(again)
        await connection.close()
        await services.stop()
        await h.tearDown(spec)
    }

    /// A management API call.
    @discardableResult
    func management(_ method: String, _ path: String) async throws -> Data {
        try await brokerManagement(method, path)
    }

    /// The broker's name of the client connection called `name` (waits up to 20 s for it to be listed).
    func connectionName(userProvided name: String) async throws -> String {
        for _ in 0..<100 {
            let list = try JSONSerialization.jsonObject(with: try await management("GET", "/api/connections?columns=name,user_provided_name"))
            if let found = (list as? [[String: Any]])?.first(where: { $0["user_provided_name"] as? String == name })?["name"] as? String {
                return found
            }
            try await Task.sleep(for: .milliseconds(200))
        }
        throw AMQPError.notConnected
    }

    @Test("an RPC request queue is a quorum queue, declared again harmlessly; a classic declaration of it is refused")
    func quorumQueue() async throws {
        let h = try await MessagingHarness.make()
        let spec = QueueSpec(name: uniqueName("rpc.quorum"), bindings: [], kind: .rpc, maxLength: 100)
        try await spec.declare(on: h.admin)
        try await spec.declare(on: h.admin)  // what every (re)connecting process does
        let other = try await h.connection.openChannel()
        await #expect {
            // Every argument as declared, but the type.
            try await other.declareQueue(spec.name, options: .init(durable: true, arguments: [
                "x-queue-type": .string("classic"), "x-max-length": .int(100), "x-overflow": .string("reject-publish"),
                "x-delivery-limit": .int(QueueSpec.brokerDeliveryLimit)]))
        } throws: { error in
            guard case AMQPError.channelClosed(406, let text) = error else { return false }
            return text.contains("x-queue-type")
        }
        await h.tearDown(spec)
    }

    @Test("no server bound: a call fails fast as unavailable")
    func noServer() async throws {
        let h = try await MessagingHarness.make()
        let client = try await RPCClient.open(on: h.connection)
        let started = ContinuousClock.now
        await #expect {
            _ = try await client.call(EchoRequest(text: "x"), routingKey: uniqueName("nobody"), expecting: EchoResponse.self, timeout: .seconds(5))
        } throws: { error in
            guard case RPCCallError.unavailable(.unroutable) = error else { return false }
            return true
        }
        #expect(ContinuousClock.now - started < .seconds(1))
        await h.tearDown()
    }

    @Test("an undecodable request is dead-lettered and answered bad_request")
    func badRequest() async throws {
        let h = try await MessagingHarness.make()
        let recorder = Recorder()
        let (spec, services) = serve(h, recorder: recorder)
        #expect(try await h.waitForConsumers(spec.name))
        struct Wrong: MessageContract { static let messageType = EchoRequest.messageType; var unrelated: Int }
        let client = try await RPCClient.open(on: h.connection)
        await #expect {
            _ = try await client.call(Wrong(unrelated: 1), routingKey: spec.bindings[0], expecting: EchoResponse.self, timeout: .seconds(5))
        } throws: { error in
            guard case RPCCallError.remote(let reply) = error else { return false }
            return reply.code == RPCErrorReply.badRequestCode && reply.message.contains("missing field 'text'")
        }
        #expect(try await eventually { try await h.depth(spec.deadLetterQueue) == 1 })
        await services.stop()
        await h.tearDown(spec)
    }
}

struct CountRequest: MessageContract {
    static let messageType = "test.count.request.v1"
    var items: [String]
}

@Suite("RPC: several request types on one queue", .enabled(if: TestServers.available))
struct RPCRoutesTests {
    @Test("each type reaches its own handler; a type the queue does not serve is dead-lettered and answered bad_request")
    func routesByType() async throws {
        let h = try await MessagingHarness.make()
        let q = uniqueName("rpc.routes")
        let spec = QueueSpec(name: q, bindings: ["\(q).echo", "\(q).count", "\(q).other"], kind: .rpc, maxLength: 100)
        var routes = RPCRoutes()
        routes.on(EchoRequest.self) { request, _ in EchoResponse(echoed: request.text.uppercased()) }
        routes.on(CountRequest.self) { request, _ in ["count": request.items.count] }
        #expect(routes.messageTypes == [CountRequest.messageType, EchoRequest.messageType])
        let services = RunningServices([RPCServer(spec: spec, routes: routes, connection: h.connection, publisher: h.publisher,
                                                  logger: TestServers.logger)])
        #expect(try await h.waitForConsumers(spec.name))
        let client = try await RPCClient.open(on: h.connection)

        let echoed = try await client.call(EchoRequest(text: "hi"), routingKey: "\(q).echo", expecting: EchoResponse.self, timeout: .seconds(5))
        #expect(echoed == EchoResponse(echoed: "HI"))
        let counted = try await client.call(CountRequest(items: ["a", "b", "c"]), routingKey: "\(q).count",
                                            expecting: [String: Int].self, timeout: .seconds(5))
        #expect(counted == ["count": 3])

        await #expect {
            _ = try await client.call(TestJob(id: "x", action: "ok"), routingKey: "\(q).other", expecting: EchoResponse.self, timeout: .seconds(5))
        } throws: { error in
            guard case RPCCallError.remote(let reply) = error else { return false }
            return reply.code == RPCErrorReply.badRequestCode && reply.message.contains(TestJob.messageType)
        }
        let dead = try #require(try await h.take(spec.deadLetterQueue))
        #expect(dead.properties.headers[AiraHeader.errorType]?.stringValue == "unknown_message_type")
        let reason = dead.properties.headers[AiraHeader.error]?.stringValue ?? ""
        #expect(reason.contains(EchoRequest.messageType) && reason.contains(CountRequest.messageType))

        await services.stop()
        await h.tearDown(spec)
    }
}
