import AiraAMQP
import AiraContracts
import AiraCore
import AiraLLM
import AiraMessaging
import AiraRedis
import Foundation
import Testing

/// aira-gpt-proxy behind the gateway, against aira-mock-llm, all as processes.
@Suite("GPT proxy", .enabled(if: TestServers.available), .serialized)
struct GPTTests {
    /// A logged-in user of `stack`.
    func user(_ stack: ServiceStack) async throws -> ServiceStack.Session {
        let (email, password) = try await stack.signup("gpt")
        return try await stack.login(email, password)
    }

    func ask(_ stack: ServiceStack, _ session: ServiceStack.Session, _ question: String, cache: String? = nil,
             gateway: Int = 0) async throws -> ServiceStack.Reply {
        try await stack.call("POST", "/api/gpt/qna", json: ["question": question], token: session.access,
                             headers: cache.map { ["X-Aira-Cache": $0] } ?? [:], gateway: gateway)
    }

    @Test("hit and miss; equivalent questions share an entry, different ones do not; model and parameters are part of the key")
    func cacheHitsAndMisses() async throws {
        try await ServiceStack.with(gptProxies: 1) { stack in
            let session = try await user(stack)
            let first = try await ask(stack, session, "What is RabbitMQ?")
            #expect(first.status == 200, "\(first)")
            #expect(first.json["cached"] as? Bool == false)
            #expect(first.headers.first(name: "X-Aira-Cached") == "false")
            let quota = try #require(first.json["quota"] as? [String: Any])
            #expect(quota["used"] as? Int == 1)
            #expect(quota["limit"] as? Int == 100)

            for variant in ["what is rabbitmq", "  WHAT   is RabbitMQ ?!", "Ｗｈａｔ ｉｓ ＲａｂｂｉｔＭＱ？"] {
                let again = try await ask(stack, session, variant)
                #expect(again.json["cached"] as? Bool == true, "\(variant)")
                #expect(again["answer"] == first["answer"])
            }
            // Cache hits are free.
            #expect((try await ask(stack, session, "what is rabbitmq").json["quota"] as? [String: Any])?["used"] as? Int == 1)
            #expect(try await stack.mockStats().calls == 1)

            #expect(try await ask(stack, session, "What is Redis?").json["cached"] as? Bool == false)
            #expect(try await ask(stack, session, "turn on the lights").json["cached"] as? Bool == false)
            #expect(try await ask(stack, session, "turn off the lights").json["cached"] as? Bool == false)
            #expect(try await stack.mockStats().calls == 4)

            // Through the OpenAI endpoint: another model or another temperature is another question.
            func complete(_ body: [String: Any]) async throws -> ServiceStack.Reply {
                try await stack.call("POST", "/v1/chat/completions", json: body, token: session.access)
            }
            let messages = [["role": "user", "content": "What is RabbitMQ?"]]
            #expect(try await complete(["messages": messages]).headers.first(name: "X-Aira-Cached") == "true")
            #expect(try await complete(["model": "other-model", "messages": messages]).headers.first(name: "X-Aira-Cached") == "false")
            #expect(try await complete(["messages": messages, "temperature": 0.2]).headers.first(name: "X-Aira-Cached") == "false")
            #expect(try await complete(["messages": messages, "temperature": 0.20]).headers.first(name: "X-Aira-Cached") == "true")
            let withSystem = [["role": "system", "content": "Answer in French."]] + messages
            #expect(try await complete(["messages": withSystem]).headers.first(name: "X-Aira-Cached") == "false")
            #expect(try await stack.mockStats().calls == 7)
        }
    }

    @Test("every question records a gpt.asked audit event: user, cached or not, model, tokens, latency, the question")
    func auditEvents() async throws {
        // A queue of this test's own gets a copy of every audit batch.
        let h = try await MessagingHarness.make()
        let batches = try await h.tap(AuditBatch.routingKey, name: "gpt-audit")

        try await ServiceStack.with(gptProxies: 1) { stack in
            let session = try await user(stack)
            #expect(try await ask(stack, session, "What does the audit log keep?").json["cached"] as? Bool == false)
            #expect(try await ask(stack, session, "what does the audit log keep").json["cached"] as? Bool == true)
            // Personal data in a question never reaches the audit log (AIRA_GPT_REDACT_AUDIT, on by default).
            let secret = "My card is 4111 1111 1111 1111, mail kim.minji@naver.com or call 010-2345-6789"
            #expect(try await ask(stack, session, secret).status == 200)
            var events: [AuditEvent] = []
            while events.count < 3, let delivery = await next(batches.deliveries, timeout: .seconds(10)) {
                let batch = try AuditBatch.decode(type: delivery.properties.type ?? "", from: delivery.body)
                events += batch.events.filter { $0.type == "gpt.asked" && $0.userId?.lowercasedString == session.userID }
            }
            try #require(events.count == 3, "\(events)")
            let redacted = try #require(events.first { $0.attributes["question"]?.hasPrefix("My card") == true })
            #expect(redacted.attributes["question"] == "My card is [CARD], mail [EMAIL] or call [PHONE]")
            events.removeAll { $0.attributes["question"]?.hasPrefix("My card") == true }
            let (miss, hit) = (events[0], events[1])
            #expect(miss.attributes["cached"] == "false" && hit.attributes["cached"] == "true")
            #expect(miss.attributes["question"] == "What does the audit log keep?")
            #expect(hit.attributes["question"] == "what does the audit log keep")
            for event in events {
                #expect(event.attributes["model"] == "mock-1")
                #expect(event.attributes["finishReason"] == "stop")
                #expect(Int(event.attributes["latencyMs"] ?? "") != nil, "\(event.attributes)")
                #expect(Int(event.attributes["promptTokens"] ?? "") ?? 0 > 0, "\(event.attributes)")
                #expect(Int(event.attributes["completionTokens"] ?? "") ?? 0 > 0, "\(event.attributes)")
                #expect(event.ip?.isEmpty == false, "the client address")
                #expect(!(event.id ?? "").isEmpty)
            }
        }
        await batches.channel.close()
        await h.connection.close()
    }

    @Test("a hit refreshes the entry's 72 h TTL")
    func ttlRefreshedOnHit() async throws {
        try await ServiceStack.with(gptProxies: 1) { stack in
            let session = try await user(stack)
            #expect(try await ask(stack, session, "How long is a day?").status == 200)
            let key = CacheKey(model: "mock-1", version: stack.cacheVersion,
                               messages: [.init(role: "user", content: "How long is a day?")], parameters: .init())
            let redis = RedisClient(configuration: try RedisConfiguration(url: TestServers.redisURL!))
            let ttl = try #require(try await redis.ttl(key.description))
            #expect(ttl > .seconds(71 * 3600) && ttl <= .seconds(72 * 3600))
            #expect(try await redis.expire(key.description, after: .seconds(60)))
            #expect(try await ask(stack, session, "how long is a day").json["cached"] as? Bool == true)
            #expect(try #require(try await redis.ttl(key.description)) > .seconds(71 * 3600))
            await redis.shutdown()
        }
    }

    @Test("truncated, empty and refused answers are not cached; bypass and refresh work")
    func whatIsNotCached() async throws {
        try await ServiceStack.with(gptProxies: 1) { stack in
            let session = try await user(stack)
            for mode in ["truncate", "empty", "refuse"] {
                try await stack.failMock(mode, count: 1)
                let bad = try await ask(stack, session, "tell me about \(mode)")
                #expect(bad.status == 200)
                let again = try await ask(stack, session, "tell me about \(mode)")
                #expect(again.json["cached"] as? Bool == false, "\(mode) answer was cached")
            }
            #expect(try await stack.mockStats().calls == 6)

            _ = try await ask(stack, session, "cache control")
            #expect(try await ask(stack, session, "cache control", cache: "bypass").json["cached"] as? Bool == false)
            #expect(try await ask(stack, session, "cache control", cache: "refresh").json["cached"] as? Bool == false)
            #expect(try await ask(stack, session, "cache control").json["cached"] as? Bool == true)
            #expect(try await stack.mockStats().calls == 9)
            // A bypassed question is not written either.
            _ = try await ask(stack, session, "never cached", cache: "bypass")
            #expect(try await ask(stack, session, "never cached").json["cached"] as? Bool == false)
            #expect(try await ask(stack, session, "x", cache: "sometimes").status == 400)
        }
    }

    @Test("daily quota: 429 with the reset time once used up; cached answers still served")
    func quota() async throws {
        try await ServiceStack.with(gptProxies: 1, proxyEnvironment: ["AIRA_GPT_QUOTA_USER": "2"]) { stack in
            let session = try await user(stack)
            #expect(try await ask(stack, session, "one").status == 200)
            #expect(try await ask(stack, session, "two").status == 200)
            let over = try await ask(stack, session, "three")
            #expect(over.status == 429)
            #expect(over.errorCode == "quota_exceeded")
            let details = try #require((over.json["error"] as? [String: Any])?["details"] as? [String: String])
            #expect(details["limit"] == "2")
            let reset = try #require(details["resetAt"].flatMap { ISO8601DateFormatter.withFractions.date(from: $0) })
            #expect(reset > Date() && reset <= Date().addingTimeInterval(86_400))
            let retry = Int(over.headers.first(name: "Retry-After") ?? "") ?? 0
            #expect(retry > 0 && retry <= 86_400)
            #expect(try await ask(stack, session, "one").json["cached"] as? Bool == true)
            // Another user has a quota of their own.
            #expect(try await ask(stack, try await user(stack), "three").status == 200)
        }
    }

    @Test("conversations: the history is part of the key; many conversations at once (batched) each keep their own")
    func conversations() async throws {
        try await ServiceStack.with(gptProxies: 1) { stack in
            let session = try await user(stack)
            func turn(_ question: String, _ conversation: String?) async throws -> ServiceStack.Reply {
                var body: [String: Any] = ["question": question]
                if let conversation { body["conversationId"] = conversation }
                return try await stack.call("POST", "/api/gpt/qna", json: body, token: session.access)
            }
            let c = uniqueName("conv").replacingOccurrences(of: ".", with: "-")
            let first = try await turn("Where do dead letters go?", c)
            #expect(first.status == 200 && first.json["cached"] as? Bool == false && first.json["conversationId"] as? String == c)
            // Without history the same question is the same key: a hit.
            #expect(try await turn("Where do dead letters go?", nil).json["cached"] as? Bool == true)
            // With this conversation's history in front of it, it is another question.
            #expect(try await turn("Where do dead letters go?", c).json["cached"] as? Bool == false)

            // 12 conversations, two turns each, all at once: each reply belongs to its own conversation.
            let ids = (0..<12).map { "\(c)-\($0)" }
            for question in ["Say hello", "And then?"] {
                let replies = try await withThrowingTaskGroup(of: (String, ServiceStack.Reply).self) { group in
                    for id in ids { group.addTask { (id, try await turn(question, id)) } }
                    return try await group.reduce(into: []) { $0.append($1) }
                }
                #expect(replies.count == 12)
                for (id, reply) in replies {
                    #expect(reply.status == 200 && reply.json["conversationId"] as? String == id, "\(reply)")
                }
            }
        }
    }

    @Test("20 identical questions at once across two proxy instances: one upstream call")
    func singleFlight() async throws {
        try await ServiceStack.with(gateways: 2, gptProxies: 2, environment: ["AIRA_MOCK_LATENCY": "600ms"]) { stack in
            let session = try await user(stack)
            // Questions answered per proxy (the gateways batch questions, so messages would
            // undercount; a question that arrives once the answer is cached counts as a hit).
            func handled(_ i: Int) async throws -> Double {
                try await stack.proxyCounter(i, #"aira_gpt_questions_total{cached="false"}"#)
                    + stack.proxyCounter(i, #"aira_gpt_questions_total{cached="true"}"#)
            }
            let before = [try await handled(0), try await handled(1)]
            let replies = try await withThrowingTaskGroup(of: ServiceStack.Reply.self) { group in
                for i in 0..<20 {
                    group.addTask { try await ask(stack, session, "What happens at midnight?", gateway: i % 2) }
                }
                return try await group.reduce(into: []) { $0.append($1) }
            }
            #expect(replies.allSatisfy { $0.status == 200 }, "\(replies.filter { $0.status != 200 })")
            #expect(Set(replies.compactMap { $0["answer"] }).count == 1)
            #expect(try await stack.mockStats().calls == 1)
            // Both proxies took part (the broker spread the requests), so one of them waited on
            // the other's call through Redis, not only in-process.
            let after = [try await handled(0), try await handled(1)]
            #expect(after[0] > before[0] && after[1] > before[1], "requests per proxy: \(before) → \(after)")
            #expect(after[0] - before[0] + after[1] - before[1] == 20)
        }
    }

    @Test("upstream 429 and 500 are retried, then succeed; an unreachable upstream is a clear 503")
    func upstreamFailures() async throws {
        try await ServiceStack.with(gptProxies: 1) { stack in
            let session = try await user(stack)
            try await stack.failMock("429", count: 2)
            let afterLimits = try await ask(stack, session, "retry after rate limits")
            #expect(afterLimits.status == 200, "\(afterLimits)")
            try await stack.failMock("500", count: 2)
            #expect(try await ask(stack, session, "retry after errors").status == 200)
            let stats = try await stack.mockStats()
            #expect(stats.failed == 4)
            #expect(stats.calls == 6)
            // The failures were not charged.
            #expect((try await ask(stack, session, "third").json["quota"] as? [String: Any])?["used"] as? Int == 3)
        }
        try await ServiceStack.with(gptProxies: 1, proxyEnvironment: ["AIRA_GPT_UPSTREAM_URL": "http://127.0.0.1:\(try closedPort())",
                                                                     "AIRA_GPT_RETRIES": "2", "AIRA_GPT_CONNECT_TIMEOUT": "500ms"]) { stack in
            let session = try await user(stack)
            let started = ContinuousClock.now
            let down = try await ask(stack, session, "anyone there?", cache: "bypass")
            #expect(down.status == 503)
            #expect(down.errorCode == "service_unavailable")
            #expect(down.errorMessage?.contains("unreachable") == true || down.errorMessage?.contains("circuit open") == true, "\(down)")
            #expect(down.headers.first(name: "Retry-After") != nil)
            // Refused at once and retried twice with backoff: seconds, far from the 60 s deadline
            // (the bound leaves room for a loaded shared machine).
            #expect(ContinuousClock.now - started < .seconds(15))
        }
    }

    @Test("Redis unreachable: questions are still answered (uncached) and quotas still hold, per instance")
    func redisDown() async throws {
        try await ServiceStack.with(gptProxies: 1, proxyEnvironment: ["AIRA_REDIS_URL": "redis://127.0.0.1:\(try closedPort())",
                                                                     "AIRA_GPT_QUOTA_USER": "3"]) { stack in
            let session = try await user(stack)
            let first = try await ask(stack, session, "no redis today")
            #expect(first.status == 200, "\(first)")
            #expect(first.json["cached"] as? Bool == false)
            #expect(try await ask(stack, session, "no redis today").json["cached"] as? Bool == false)
            #expect(try await ask(stack, session, "still no redis").status == 200)
            #expect(try await ask(stack, session, "over the limit").status == 429)
        }
    }

    @Test("budgets: over the user's token budget a question is refused with 429 naming it; cached answers still flow; usage for the user and for admins")
    func budgets() async throws {
        let namespace = "gpt-test-\(MessageID.random().prefix(8))"
        try await ServiceStack.with(gptProxies: 2, proxyEnvironment: [
            "AIRA_GPT_BUDGETS": "user.day.tokens=400", "AIRA_GPT_BUDGET_NAMESPACE": namespace,
            "AIRA_GPT_DEFAULT_MAX_TOKENS": "30", "AIRA_GPT_PRICES": "*=2/8",
        ]) { stack in
            let session = try await user(stack)
            func complete(_ question: String) async throws -> ServiceStack.Reply {
                try await stack.call("POST", "/v1/chat/completions", json: ["messages": [["role": "user", "content": question]]],
                                     token: session.access)
            }
            var (prompt, completion, answered) = (0, 0, 0)
            var refusal: ServiceStack.Reply?
            for i in 0..<40 {
                let reply = try await complete("budget question number \(i)")
                if reply.status == 429 {
                    refusal = reply
                    break
                }
                try #require(reply.status == 200, "\(reply)")
                let usage = try #require(reply.json["usage"] as? [String: Any])
                prompt += try #require(usage["prompt_tokens"] as? Int)
                completion += try #require(usage["completion_tokens"] as? Int)
                answered += 1
            }
            let refused = try #require(refusal, "400 tokens must run out within 40 questions")
            #expect(answered >= 5, "each question costs about 20 tokens and reserves 65: \(answered) answered")
            #expect(refused.errorCode == "budget_exceeded")
            let details = try #require((refused.json["error"] as? [String: Any])?["details"] as? [String: String], "\(refused)")
            #expect(details["scope"] == "user" && details["period"] == "day" && details["unit"] == "tokens" && details["limit"] == "400")
            #expect(details["used"] == String(prompt + completion), "what was really spent, settled: \(details)")
            #expect(Int(details["used"] ?? "") .map { $0 + Int(details["requested"] ?? "0")! > 400 } == true)
            #expect(Int(refused.headers.first(name: "Retry-After") ?? "") ?? 0 >= 1)
            #expect(refused.errorMessage?.contains("your daily token budget of 400 tokens") == true, "\(refused)")

            // A cached answer costs nothing: it is served over the budget.
            let cached = try await complete("budget question number 0")
            #expect(cached.status == 200 && cached.headers.first(name: "X-Aira-Cached") == "true", "\(cached)")

            // The user's report: the budget as it stands and the day's usage, priced at $2/$8 per million tokens.
            let usage = try await stack.call("GET", "/api/users/me/usage", token: session.access)
            #expect(usage.status == 200, "\(usage)")
            let budgets = try #require(usage.json["budgets"] as? [[String: Any]])
            #expect(budgets.count == 1)
            #expect(budgets.first?["used"] as? Double == Double(prompt + completion))
            #expect(budgets.first?["limit"] as? Double == 400)
            let today = try #require(usage.json["today"] as? [[String: Any]])
            #expect(today.count == 1)
            #expect(today.first?["model"] as? String == "mock-1")
            #expect(today.first?["requests"] as? Int == answered)
            #expect(today.first?["promptTokens"] as? Int == prompt)
            #expect(today.first?["completionTokens"] as? Int == completion)
            let cost = try #require(today.first?["cost"] as? Double)
            #expect(abs(cost - Double(prompt * 2 + completion * 8) / 1_000_000) < 1e-12)

            // Administrators: per user, model and day; nobody else.
            #expect(try await stack.call("GET", "/api/admin/usage", token: session.access).status == 403)
            let (email, password) = try await stack.createAdmin()
            let admin = try await stack.login(email, password)
            let list = try await stack.call("GET", "/api/admin/usage?userId=\(session.userID)", token: admin.access)
            #expect(list.status == 200, "\(list)")
            let rows = try #require(list.json["rows"] as? [[String: Any]])
            #expect(rows.count == 1)
            #expect(rows.first?["requests"] as? Int == answered)
            #expect(rows.first?["userId"] as? String == session.userID.lowercased())
            #expect(try await stack.call("GET", "/api/admin/usage?from=2026-02-31", token: admin.access).status == 400)
            #expect(try await stack.call("GET", "/api/admin/usage?userId=nobody", token: admin.access).status == 400)
        }
        // Budgets whose counters cannot be reached: questions that need the upstream are refused (503), not let through.
        try await ServiceStack.with(gptProxies: 1, proxyEnvironment: ["AIRA_REDIS_URL": "redis://127.0.0.1:\(try closedPort())",
                                                                     "AIRA_GPT_BUDGETS": "global.day.usd=10", "AIRA_GPT_PRICES": "*=1/1"]) { stack in
            let session = try await user(stack)
            let refused = try await ask(stack, session, "budgets without redis")
            #expect(refused.status == 503 && refused.errorCode == "budget_unavailable", "\(refused)")
            #expect(try await stack.mockStats().calls == 0)
            #expect(try await stack.call("GET", "/api/users/me/usage", token: session.access).status == 503)
        }
    }

    @Test("metrics in the OpenTelemetry GenAI names with model and cache labels, cost spent and saved; X-Aira-Overhead-Ms on answers")
    func genAIMetrics() async throws {
        // $1,000 / $2,000 per million tokens: a token in is 0.001 dollars, a token out 0.002.
        try await ServiceStack.with(gptProxies: 1, proxyEnvironment: ["AIRA_GPT_PRICES": "*=1000/2000", "AIRA_GPT_RETRIES": "0"]) { stack in
            let session = try await user(stack)
            // The stack's start-up probe was a question too: only what this test adds counts.
            let before = try await stack.metrics(port: stack.proxyPorts[0])
            let overheadBefore = try await stack.metric(port: stack.gateways[0].port, #"aira_gpt_overhead_seconds_count{cached="true"}"#)
            let body: [String: Any] = ["messages": [["role": "user", "content": "How are metrics named?"]]]
            let started = ContinuousClock.now
            let fresh = try await stack.call("POST", "/v1/chat/completions", json: body, token: session.access)
            let took = ContinuousClock.now - started
            let elapsed = Double(took.components.seconds) * 1000 + Double(took.components.attoseconds) / 1e15
            #expect(fresh.status == 200)
            let usage = try #require(fresh.json["usage"] as? [String: Any])
            let (prompt, completion) = (try #require(usage["prompt_tokens"] as? Int), try #require(usage["completion_tokens"] as? Int))
            // The overhead leaves out the wait for the model (the mock answers after 20 ms).
            let overhead = try #require(fresh.headers.first(name: "X-Aira-Overhead-Ms").flatMap(Double.init), "\(fresh.headers)")
            #expect(overhead >= 0 && overhead <= elapsed - 20, "overhead \(overhead) ms of \(elapsed) ms")
            let cached = try await stack.call("POST", "/v1/chat/completions", json: body, token: session.access)
            #expect(cached.headers.first(name: "X-Aira-Cached") == "true")
            #expect(cached.headers.first(name: "X-Aira-Overhead-Ms").flatMap(Double.init) != nil)
            let qna = try await ask(stack, session, "how are metrics named")
            #expect(qna.headers.first(name: "X-Aira-Overhead-Ms").flatMap(Double.init) != nil)
            // An upstream failure is an operation with its error type.
            let failed = try await ask(stack, session, "this fails [[mock:500]]", cache: "bypass")
            #expect(failed.status == 503)

            let text = try await stack.metrics(port: stack.proxyPorts[0])
            func value(_ name: String, _ labels: String...) -> Double {
                func sum(_ text: String) -> Double {
                    text.split(separator: "\n").filter { line in line.hasPrefix(name + "{") && labels.allSatisfy { line.contains($0) } }
                        .compactMap { Double($0.split(separator: " ").last ?? "") }.reduce(0, +)
                }
                return sum(text) - sum(before)
            }
            let (miss, hit, model) = (#"cache="miss""#, #"cache="hit""#, #"gen_ai_request_model="mock-1""#)
            let (input, output) = (#"gen_ai_token_type="input""#, #"gen_ai_token_type="output""#)
            #expect(value("gen_ai_client_token_usage_count", miss, input, model) == 1)
            #expect(value("gen_ai_client_token_usage_sum", miss, input, model) == Double(prompt))
            #expect(value("gen_ai_client_token_usage_sum", miss, output, model) == Double(completion))
            // Two hits (the OpenAI endpoint and /api/gpt/qna share the entry), each recording what it saved.
            #expect(value("gen_ai_client_token_usage_count", hit, input, model) == 2)
            #expect(value("gen_ai_client_operation_duration_seconds_count", miss, model, #"gen_ai_operation_name="chat""#) == 2)
            #expect(value("gen_ai_client_operation_duration_seconds_count", hit, model) == 2)
            #expect(value("gen_ai_client_operation_duration_seconds_count", #"error_type="upstream_unavailable""#) == 1)
            let cost = Double(prompt) * 0.001 + Double(completion) * 0.002
            #expect(abs(value("aira_gpt_cost_usd_total", #"model="mock-1""#) - cost) < 1e-9)
            #expect(abs(value("aira_gpt_cost_saved_usd_total", #"model="mock-1""#) - 2 * cost) < 1e-9)
            #expect(text.contains("# HELP gen_ai_client_token_usage "))
            #expect(try await stack.metric(port: stack.gateways[0].port, #"aira_gpt_overhead_seconds_count{cached="true"}"#) == overheadBefore + 2)
        }
    }

    /// A streamed answer through /v1/chat/completions, as its events say.
    struct Streamed {
        var pieces: [String] = []
        var finish: String?
        var error: [String: Any]?
        var cached: Bool?
        var elapsed: Duration = .zero
    }

    func stream(_ stack: ServiceStack, _ session: ServiceStack.Session, _ question: String) async throws -> Streamed {
        let started = ContinuousClock.now
        let reply = try await stack.call("POST", "/v1/chat/completions",
                                         json: ["stream": true, "messages": [["role": "user", "content": question]]], token: session.access)
        var out = Streamed(elapsed: ContinuousClock.now - started)
        try #require(reply.status == 200, "\(reply)")
        let events = String(decoding: reply.body, as: UTF8.self).components(separatedBy: "\n\n").filter { !$0.isEmpty }
        #expect(events.last == "data: [DONE]")
        for event in events.dropLast() {
            let json = try #require(try JSONSerialization.jsonObject(with: Data(event.dropFirst(6).utf8)) as? [String: Any])
            if let error = json["error"] as? [String: Any] {
                out.error = error
                continue
            }
            let choice = try #require((json["choices"] as? [[String: Any]])?.first)
            if let piece = (choice["delta"] as? [String: Any])?["content"] as? String, !piece.isEmpty { out.pieces.append(piece) }
            if let f = choice["finish_reason"] as? String { out.finish = f }
            if let cached = (json["aira"] as? [String: Any])?["cached"] as? Bool { out.cached = cached }
        }
        return out
    }

    @Test("a streamed answer is cached as its pieces and a hit replays them, paced; streamed and plain questions share the entry; a cut-off stream ends with an error event, is counted, never cached")
    func streamFaithfulCache() async throws {
        try await ServiceStack.with(gptProxies: 1, proxyEnvironment: ["AIRA_GPT_CACHE_REPLAY_DELAY": "20ms"]) { stack in
            let session = try await user(stack)
            let first = try await stream(stack, session, "Tell me a streamed story")
            #expect(first.cached == false && first.finish == "stop")
            #expect(first.pieces.count > 5, "the mock streams word by word: \(first.pieces)")
            let again = try await stream(stack, session, "Tell me a streamed story")
            #expect(again.cached == true)
            #expect(again.pieces == first.pieces, "the same pieces, in the same order")
            #expect(again.elapsed >= .milliseconds(20 * (first.pieces.count - 1)), "paced: \(again.elapsed) for \(first.pieces.count) pieces")
            #expect(try await stack.mockStats().calls == 1)
            // The plain request shares the entry.
            let plain = try await stack.call("POST", "/v1/chat/completions",
                                             json: ["messages": [["role": "user", "content": "Tell me a streamed story"]]], token: session.access)
            #expect(plain.headers.first(name: "X-Aira-Cached") == "true")
            let content = ((plain.json["choices"] as? [[String: Any]])?.first?["message"] as? [String: Any])?["content"] as? String
            #expect(content == first.pieces.joined())
            // An answer first given whole streams in pieces from the cache.
            let whole = try await ask(stack, session, "A plain question first")
            let streamed = try await stream(stack, session, "A plain question first")
            #expect(streamed.cached == true)
            #expect(streamed.pieces.count > 5)
            #expect(streamed.pieces.joined() == whole["answer"])
            #expect(try await stack.mockStats().calls == 2)

            // The upstream stops half-way: the client's stream ends with an error event, not a finish.
            let cut = try await stream(stack, session, "Cut me off [[mock:cut]]")
            #expect(!cut.pieces.isEmpty)
            #expect(cut.finish == nil)
            #expect(cut.error?["code"] as? String == "upstream_stream_cut", "\(String(describing: cut.error))")
            #expect(try await stack.proxyCounter(0, "aira_gpt_streams_cut_total") == 1)
            // Not cached: the same question asked whole goes to the model (which answers it whole).
            let after = try await ask(stack, session, "Cut me off [[mock:cut]]")
            #expect(after.status == 200 && after.json["cached"] as? Bool == false, "\(after)")
            #expect(try await stack.mockStats().calls == 4)
        }
    }

    @Test("AIRA_GPT_REDACT_UPSTREAM: the upstream sees placeholders, the user gets the answer with the values back, streamed too; the cache keeps placeholders")
    func upstreamRedaction() async throws {
        try await ServiceStack.with(gptProxies: 1, proxyEnvironment: ["AIRA_GPT_REDACT_UPSTREAM": "true"]) { stack in
            let session = try await user(stack)
            func lastSent() async throws -> String {
                let response = try await ServiceStack.getText("http://127.0.0.1:\(stack.mock!.port)/mock/last")
                let messages = try #require((try JSONSerialization.jsonObject(with: Data(response.utf8)) as? [String: Any])?["messages"] as? [[String: Any]])
                return messages.last?["content"] as? String ?? ""
            }
            let question = "Write to kim.minji@naver.com or call 010-2345-6789 about card 4111 1111 1111 1111"
            let plain = try await ask(stack, session, question)
            #expect(plain.status == 200, "\(plain)")
            #expect(try await lastSent() == "Write to [EMAIL_1] or call [PHONE_1] about card [CARD_1]")
            // The mock repeats the question it received: placeholders, put back for the user.
            let answer = try #require(plain["answer"])
            #expect(answer.contains("kim.minji@naver.com") && answer.contains("010-2345-6789") && answer.contains("4111 1111 1111 1111"), "\(answer)")
            #expect(!answer.contains("[EMAIL_1]"))

            // Streamed: the mock cuts its answer in pieces of 1–6 characters, so placeholders arrive cut in two.
            let streamed = try await stream(stack, session, "Mail park.jisoo@gmail.com and 02-123-4567, please")
            #expect(try await lastSent() == "Mail [EMAIL_1] and [PHONE_1], please")
            let text = streamed.pieces.joined()
            #expect(text.contains("park.jisoo@gmail.com") && text.contains("02-123-4567") && !text.contains("[EMAIL_"), "\(streamed.pieces)")
            #expect(!streamed.pieces.contains { $0.contains("[E") || $0.contains("[P") }, "no piece shows part of a placeholder: \(streamed.pieces)")

            // Cached: the same question from the cache is restored the same way, and the entry holds no personal data.
            let again = try await ask(stack, session, question)
            #expect(again.json["cached"] as? Bool == true && again["answer"] == answer)
            let replayed = try await stream(stack, session, "Mail park.jisoo@gmail.com and 02-123-4567, please")
            #expect(replayed.cached == true && replayed.pieces.joined() == text)
            let redis = RedisClient(configuration: try RedisConfiguration(url: TestServers.redisURL!))
            defer { Task { await redis.shutdown() } }
            let keys = (try await redis.send(["KEYS", "gpt:cache:mock-1:\(stack.cacheVersion):*"]).array ?? []).compactMap(\.string)
            #expect(keys.count == 2)
            for key in keys {
                let entry = try #require(try await redis.get(key))
                #expect(!entry.contains("kim.minji") && !entry.contains("park.jisoo") && !entry.contains("2345-6789"), "\(entry)")
                #expect(entry.contains("[EMAIL_1]"))
            }
        }
    }

    @Test("streaming through /v1/chat/completions: SSE chunks in order, assembled answer cached")
    func streaming() async throws {
        try await ServiceStack.with(gptProxies: 1) { stack in
            let session = try await user(stack)
            let body: [String: Any] = ["model": "mock-1", "stream": true, "messages": [["role": "user", "content": "Stream a story"]]]
            let reply = try await stack.call("POST", "/v1/chat/completions", json: body, token: session.access)
            #expect(reply.status == 200)
            #expect(reply.headers.first(name: "Content-Type") == "text/event-stream")
            let events = String(decoding: reply.body, as: UTF8.self).components(separatedBy: "\n\n").filter { !$0.isEmpty }
            #expect(events.last == "data: [DONE]")
            var text = ""
            var finish: String?
            for event in events.dropLast() {
                let json = try #require(try JSONSerialization.jsonObject(with: Data(event.dropFirst(6).utf8)) as? [String: Any])
                #expect(json["object"] as? String == "chat.completion.chunk")
                let choice = try #require((json["choices"] as? [[String: Any]])?.first)
                text += ((choice["delta"] as? [String: Any])?["content"] as? String) ?? ""
                if let f = choice["finish_reason"] as? String { finish = f }
            }
            #expect(events.count > 5)
            #expect(finish == "stop")
            #expect(try await stack.mockStats().streams == 1)

            // The request's recorded duration covers the whole stream, not just its first event:
            // after the first word the mock sends each further word 5 ms apart.
            let words = events.count - 4 // the gateway's role chunk, the finish chunk, [DONE], perhaps the upstream's role chunk
            let metrics = String(decoding: try await stack.call("GET", "/metrics").body, as: UTF8.self)
            let recorded = metrics.split(separator: "\n").first {
                $0.hasPrefix("http_server_request_duration_sum{") && $0.contains(#"http_route="/v1/chat/completions""#)
            }
            let seconds = try #require(recorded.flatMap { Double($0.split(separator: " ").last ?? "") }, "\(String(describing: recorded))")
            #expect(words >= 6)
            #expect(seconds >= 0.020 + Double(words - 1) * 0.005, "\(seconds) s for \(words) words")

            let plain = try await stack.call("POST", "/v1/chat/completions",
                                             json: ["model": "mock-1", "messages": [["role": "user", "content": "stream a story"]]],
                                             token: session.access)
            #expect(plain.headers.first(name: "X-Aira-Cached") == "true")
            let content = ((plain.json["choices"] as? [[String: Any]])?.first?["message"] as? [String: Any])?["content"] as? String
            #expect(content == text)
        }
    }

    @Test("the official openai Python package works against the gateway, streaming and not")
    func openAIPythonClient() async throws {
        let python = try #require(TestServers.environment["AIRA_OPENAI_PYTHON"], "scripts/test sets AIRA_OPENAI_PYTHON")
        try await ServiceStack.with(gptProxies: 1) { stack in
            let session = try await user(stack)
            let script = """
                import json, sys
                from openai import OpenAI
                client = OpenAI(base_url=sys.argv[1], api_key=sys.argv[2])
                r = client.chat.completions.create(model="mock-1", messages=[{"role": "user", "content": "Hello from Python"}])
                streamed = ""
                for chunk in client.chat.completions.create(model="mock-1", stream=True,
                                                            messages=[{"role": "user", "content": "Stream from Python"}]):
                    if chunk.choices and chunk.choices[0].delta.content:
                        streamed += chunk.choices[0].delta.content
                try:
                    OpenAI(base_url=sys.argv[1], api_key="not-a-token", max_retries=0).chat.completions.create(
                        model="mock-1", messages=[{"role": "user", "content": "x"}])
                    denied = None
                except Exception as e:
                    denied = type(e).__name__
                print(json.dumps({"answer": r.choices[0].message.content, "finish": r.choices[0].finish_reason,
                                  "model": r.model, "streamed": streamed, "denied": denied}))
                """
            let process = Process()
            process.executableURL = URL(fileURLWithPath: python)
            process.arguments = ["-c", script, "http://127.0.0.1:\(stack.gateways[0].port)/v1", session.access]
            let out = Pipe(), err = Pipe()
            process.standardOutput = out
            process.standardError = err
            try process.run()
            let output = out.fileHandleForReading.readDataToEndOfFile()
            let errors = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            process.waitUntilExit()
            #expect(process.terminationStatus == 0, "\(errors)")
            let result = try #require(try JSONSerialization.jsonObject(with: output) as? [String: Any], "\(errors)")
            #expect((result["answer"] as? String)?.contains("Hello from Python") == true)
            #expect(result["finish"] as? String == "stop")
            #expect((result["streamed"] as? String)?.contains("Stream from Python") == true)
            #expect(result["denied"] as? String == "AuthenticationError")
        }
    }
}

extension ISO8601DateFormatter {
    nonisolated(unsafe) static let withFractions: ISO8601DateFormatter = {
        let f = ISO8601DateFormatter()
        f.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        return f
    }()
}
