import AiraCore
import AiraRedis
@testable import aira_gpt_proxy
import AsyncHTTPClient
import Foundation
import Logging
import NIOCore
import Testing

/// Several upstreams (AIRA_GPT_UPSTREAMS): aira-mock-llm processes of the test's own as
/// providers, failing on demand, behind proxies that share their circuit breakers through the
/// real Redis. Each test names its upstreams afresh, so breaker keys never carry over.
@Suite("GPT upstreams and failover", .enabled(if: TestServers.available), .serialized)
struct UpstreamFailoverTests {
    /// An aira-mock-llm process standing for one provider.
    struct Mock {
        let name: String
        let process: WorkerProcess
        let port: Int

        static func start(_ prefix: String) async throws -> Mock {
            let port = try freePort()
            let name = "\(prefix)-\(MessageID.random().prefix(6))"
            let mock = Mock(name: name, process: try WorkerProcess(executable: "aira-mock-llm", name: name,
                                                                    environment: ["AIRA_HTTP_PORT": "\(port)"]), port: port)
            let up = await eventually(timeout: .seconds(15), every: .milliseconds(50)) { (try? await mock.stats()) != nil }
            try #require(up, "mock \(name) did not start: \(mock.process.log)")
            return mock
        }

        func stats() async throws -> ServiceStack.MockStats { try await ServiceStack.mockStats(port: self.port) }
        func reset() async throws { try await ServiceStack.resetMock(port: self.port) }

        /// Every call fails with `mode` until reset.
        func failAlways(_ mode: String) async throws {
            var request = HTTPClientRequest(url: "http://127.0.0.1:\(self.port)/mock/fail")
            request.method = .POST
            request.body = .bytes(ByteBuffer(string: #"{"mode":"\#(mode)","always":true}"#))
            _ = try await HTTPClient.shared.execute(request, timeout: .seconds(5))
        }

        func stop() async {
            self.process.terminate()
            // A mock holding a call open ("hang") would wait for it: it gets 3 s.
            if await self.process.waitForExit(timeout: .seconds(3)) == nil { self.process.kill9() }
        }

        /// Its entry in AIRA_GPT_UPSTREAMS.
        func entry(weight: Int = 1, priority: Int = 0, models: [String] = []) -> String {
            let list = models.map { "\"\($0)\"" }.joined(separator: ",")
            return #"{"name":"\#(self.name)","url":"http://127.0.0.1:\#(self.port)","weight":\#(weight),"priority":\#(priority),"models":[\#(list)]}"#
        }
    }

    static func withMocks(_ prefixes: [String], _ body: ([Mock]) async throws -> Void) async throws {
        var mocks: [Mock] = []
        do {
            for prefix in prefixes { mocks.append(try await Mock.start(prefix)) }
            try await body(mocks)
        } catch {
            for mock in mocks { await mock.stop() }
            throw error
        }
        for mock in mocks { await mock.stop() }
    }

    static func ask(_ stack: ServiceStack, _ session: ServiceStack.Session, _ text: String, model: String? = nil) async throws -> ServiceStack.Reply {
        var body: [String: Any] = ["messages": [["role": "user", "content": text]]]
        if let model { body["model"] = model }
        return try await stack.call("POST", "/v1/chat/completions", json: body, token: session.access, headers: ["X-Aira-Cache": "bypass"])
    }

    static func session(_ stack: ServiceStack) async throws -> ServiceStack.Session {
        let (email, password) = try await stack.signup("upstreams")
        return try await stack.login(email, password)
    }

    @Test("weighted choice among upstreams of one priority; a model goes only to the upstreams that serve it; no upstream for a model is a 400")
    func weightsAndModels() async throws {
        try await Self.withMocks(["heavy", "light", "special"]) { mocks in
            let list = "[" + [mocks[0].entry(weight: 3, models: ["mock-1"]), mocks[1].entry(weight: 1, models: ["mock-1"]),
                              mocks[2].entry(models: ["special-model"])].joined(separator: ",") + "]"
            try await ServiceStack.with(gptProxies: 1, proxyEnvironment: ["AIRA_GPT_UPSTREAMS": list, "AIRA_GPT_QUOTA_USER": "1000"]) { stack in
                let session = try await Self.session(stack)
                for mock in mocks { try await mock.reset() }
                for round in 0..<20 {
                    try await withThrowingTaskGroup(of: Int.self) { group in
                        for i in 0..<10 { group.addTask { try await Self.ask(stack, session, "weighted \(round)-\(i)").status } }
                        for try await status in group { #expect(status == 200) }
                    }
                }
                let (heavy, light) = (try await mocks[0].stats().calls, try await mocks[1].stats().calls)
                #expect(heavy + light == 200)
                // 3 : 1 of 200 is 150 : 50; ±25 is four standard deviations.
                #expect((125...175).contains(heavy), "heavy \(heavy), light \(light)")
                #expect(try await mocks[2].stats().calls == 0)
                for i in 0..<5 { #expect(try await Self.ask(stack, session, "special \(i)", model: "special-model").status == 200) }
                #expect(try await mocks[2].stats().calls == 5)
                let none = try await Self.ask(stack, session, "nobody serves this", model: "no-such-model")
                #expect(none.status == 400 && none.errorMessage?.contains("no upstream serves the model 'no-such-model'") == true, "\(none)")
            }
        }
    }

    @Test("failover to the next priority on 500s; the circuit one proxy opens is open for the others (shared through Redis); after the cooldown one probe closes it")
    func failoverAndSharedBreaker() async throws {
        try await Self.withMocks(["primary", "backup"]) { mocks in
            let (primary, backup) = (mocks[0], mocks[1])
            let list = "[" + primary.entry(priority: 0) + "," + backup.entry(priority: 1) + "]"
            try await ServiceStack.with(gptProxies: 2, proxyEnvironment: [
                "AIRA_GPT_UPSTREAMS": list, "AIRA_GPT_BREAKER_FAILURES": "3", "AIRA_GPT_BREAKER_WINDOW": "60s", "AIRA_GPT_BREAKER_COOLDOWN": "5s",
            ]) { stack in
                let session = try await Self.session(stack)
                for mock in mocks { try await mock.reset() }
                try await primary.failAlways("500")
                let started = ContinuousClock.now
                for i in 0..<20 {
                    let reply = try await Self.ask(stack, session, "failover \(i)")
                    #expect(reply.status == 200, "\(reply)")
                }
                let took = ContinuousClock.now - started
                #expect(try await backup.stats().calls == 20, "every question answered by the backup")
                // Three failures open the circuit for both proxies: on its own each would need three
                // (six calls); the other proxy may make one more before it next reads Redis (0.5 s).
                let primaryCalls = try await primary.stats().calls
                #expect((3...4).contains(primaryCalls), "primary called \(primaryCalls) times in \(took)")
                #expect(took < .seconds(5), "the cooldown must not end during the failing phase: \(took)")
                try await Task.sleep(for: .milliseconds(600))
                for i in 0..<2 {
                    #expect(try await stack.proxyCounter(i, #"aira_gpt_upstream_breaker_open{upstream="\#(primary.name)"}"#) == 1)
                }
                let failovers = try await stack.proxyCounter(0, #"aira_gpt_upstream_failovers_total{upstream="\#(primary.name)"}"#)
                    + (try await stack.proxyCounter(1, #"aira_gpt_upstream_failovers_total{upstream="\#(primary.name)"}"#))
                #expect(failovers == Double(primaryCalls))

                // The primary recovers; after the cooldown a probe finds it well and it takes the traffic back.
                try await primary.reset()
                try await backup.reset()
                try await Task.sleep(until: started.advanced(by: .seconds(6)), clock: .continuous)
                for i in 0..<10 { #expect(try await Self.ask(stack, session, "recovered \(i)").status == 200) }
                let back = try await primary.stats().calls
                #expect(back >= 7, "primary answered \(back) of 10 after recovering")
                try await Task.sleep(for: .milliseconds(600))
                for i in 0..<2 {
                    #expect(try await stack.proxyCounter(i, #"aira_gpt_upstream_breaker_open{upstream="\#(primary.name)"}"#) == 0)
                }
            }
        }
    }

    @Test("every upstream failing: retried across them, then their circuits are open and questions are refused at once (503)")
    func allFailingFailFast() async throws {
        try await Self.withMocks(["down-a", "down-b"]) { mocks in
            let list = "[" + mocks.map { $0.entry() }.joined(separator: ",") + "]"
            try await ServiceStack.with(gptProxies: 1, proxyEnvironment: [
                "AIRA_GPT_UPSTREAMS": list, "AIRA_GPT_BREAKER_FAILURES": "2", "AIRA_GPT_BREAKER_COOLDOWN": "60s",
            ]) { stack in
                let session = try await Self.session(stack)
                for mock in mocks {
                    try await mock.reset()
                    try await mock.failAlways("500")
                }
                let first = try await Self.ask(stack, session, "everything is down")
                #expect(first.status == 503 && first.errorCode == "service_unavailable", "\(first)")
                let calls = try await mocks[0].stats().calls + mocks[1].stats().calls
                #expect(calls == 4, "one call each, a backoff, one more each: \(calls)")
                let started = ContinuousClock.now
                let second = try await Self.ask(stack, session, "still down")
                #expect(second.status == 503 && second.errorMessage?.contains("circuit open") == true, "\(second)")
                #expect(ContinuousClock.now - started < .seconds(1))
                #expect(try await mocks[0].stats().calls + mocks[1].stats().calls == calls, "no upstream was called")
            }
        }
    }

    @Test("Redis unreachable: each proxy's breakers count on their own, open, and half-open again after the cooldown")
    func breakersWithoutRedis() async throws {
        let redis = RedisClient(configuration: try RedisConfiguration(url: "redis://127.0.0.1:\(try closedPort())"))
        defer { Task { await redis.shutdown() } }
        let breakers = CircuitBreakers(redis: redis, endpoints: [UpstreamEndpoint(name: "a", url: "http://127.0.0.1:9")],
                                       options: .init(failures: 2, window: .seconds(10), cooldown: .milliseconds(300), refresh: .zero),
                                       logger: Logger(label: "breaker-test"))
        #expect(await breakers.allows("a"))
        await breakers.failed("a")
        #expect(await breakers.allows("a"))
        await breakers.failed("a")
        #expect(await breakers.allows("a") == false, "open after 2 failures")
        try await Task.sleep(for: .milliseconds(350))
        #expect(await breakers.allows("a"), "half-open after the cooldown")
        await breakers.failed("a")
        #expect(await breakers.allows("a") == false, "a failed probe opens it again")
        try await Task.sleep(for: .milliseconds(350))
        #expect(await breakers.allows("a"))
        await breakers.succeeded("a")
        await breakers.failed("a")
        #expect(await breakers.allows("a"), "closed again: one failure is below the threshold")
    }

    @Test("an upstream that does not answer within the read timeout is left for the next, within the caller's deadline")
    func timeoutFailsOver() async throws {
        try await Self.withMocks(["hanging", "standby"]) { mocks in
            let list = "[" + mocks[0].entry(priority: 0) + "," + mocks[1].entry(priority: 1) + "]"
            try await ServiceStack.with(gptProxies: 1, proxyEnvironment: ["AIRA_GPT_UPSTREAMS": list, "AIRA_GPT_READ_TIMEOUT": "500ms"]) { stack in
                let session = try await Self.session(stack)
                for mock in mocks { try await mock.reset() }
                try await mocks[0].failAlways("hang")
                let started = ContinuousClock.now
                let reply = try await Self.ask(stack, session, "is anyone there")
                let took = ContinuousClock.now - started
                #expect(reply.status == 200, "\(reply)")
                #expect(took >= .milliseconds(500) && took < .seconds(3), "\(took)")
                #expect(try await mocks[0].stats().calls == 1)
                #expect(try await mocks[1].stats().calls == 1)
            }
        }
    }
}
