import AiraContracts
import AiraCore
import AiraLLM
import AiraMessaging
import AiraRedis
@testable import aira_gpt_proxy
import Foundation
import Logging
import Testing

/// The budget scripts against the real Redis: several stores on clients of their own stand for
/// several proxies. Each test has a namespace (and users) of its own.
@Suite("Budget store", .enabled(if: TestServers.available))
struct BudgetStoreTests {
    static func client() throws -> RedisClient { RedisClient(configuration: try RedisConfiguration(url: TestServers.redisURL!)) }

    static func store(_ redis: RedisClient, _ policy: String, namespace: String, prices: String = "") throws -> BudgetStore {
        BudgetStore(redis: redis, policy: try #require(BudgetPolicy(parsing: policy)), prices: try #require(PriceTable(parsing: prices)),
                    namespace: namespace, defaultMaxTokens: 100, logger: Logger(label: "budget-test"))
    }

    static func namespace() -> String { "t" + MessageID.random().prefix(10) }

    static func messages(_ text: String) -> [ChatMessage] { [ChatMessage(role: "user", content: text)] }

    static func answer(prompt: Int, completion: Int, model: String = "m1") -> Completion {
        Completion(text: "ok", model: model, finishReason: "stop", usage: Usage(promptTokens: prompt, completionTokens: completion))
    }

    @Test("4 proxies, 500 questions at once: the counter never passes the limit and ends at exactly what was spent")
    func concurrentReservations() async throws {
        let namespace = Self.namespace()
        let limit: Int64 = 20_000
        let clients = try (0..<4).map { _ in try Self.client() }
        defer { Task { for c in clients { await c.shutdown() } } }
        let stores = try clients.map { try Self.store($0, "global.day.tokens=\(limit)", namespace: namespace) }
        let counter = BudgetPolicy.counterKey(stores[0].policy.rules[0], namespace: namespace, user: UUID(), role: "USER", now: Date()).key
        let watcher = try Self.client()
        defer { Task { await watcher.shutdown() } }

        struct Outcome: Sendable {
            var admitted = false
            var spent: Int64 = 0
            var bound: Int64 = 0
        }
        // A watcher reads the counter while the questions run: it must never be above the limit.
        let watching = Task { () -> Int64 in
            var peak: Int64 = 0
            while !Task.isCancelled {
                peak = max(peak, try await watcher.get(counter).flatMap { Int64($0) } ?? 0)
                try? await Task.sleep(for: .milliseconds(2))
            }
            return peak
        }
        let outcomes = try await withThrowingTaskGroup(of: Outcome.self) { group in
            for i in 0..<500 {
                group.addTask {
                    var g = SystemRandomNumberGenerator()
                    let store = stores[i % 4]
                    let question = "question \(i) " + String(repeating: "x", count: Int.random(in: 0...60, using: &g))
                    let maxTokens = Int.random(in: 20...200, using: &g)
                    var outcome = Outcome()
                    outcome.bound = Int64(RequestBound.promptTokens(Self.messages(question)) + maxTokens)
                    let reservation: BudgetStore.Reservation
                    do {
                        reservation = try await store.reserve(attemptID: "\(namespace)-\(i)", user: UUID(), role: "USER", model: "m1",
                                                              messages: Self.messages(question), maxTokens: maxTokens)
                    } catch let error as RPCErrorReply {
                        #expect(error.code == GPTError.budgetExceeded)
                        return outcome
                    }
                    outcome.admitted = true
                    try await Task.sleep(for: .milliseconds(Int.random(in: 0...20, using: &g)))
                    if Int.random(in: 0..<5, using: &g) == 0 {
                        await store.settle(reservation, paid: nil)   // the upstream failed: refunded
                    } else {
                        let prompt = Int.random(in: 3...20, using: &g), completion = Int.random(in: 1...maxTokens, using: &g)
                        await store.settle(reservation, paid: Self.answer(prompt: prompt, completion: completion))
                        outcome.spent = Int64(prompt + completion)
                    }
                    return outcome
                }
            }
            return try await group.reduce(into: [Outcome]()) { $0.append($1) }
        }
        watching.cancel()
        let peak = try await watching.value
        let final = try await watcher.get(counter).flatMap { Int64($0) } ?? 0
        let spent = outcomes.reduce(0) { $0 + $1.spent }
        let admitted = outcomes.filter(\.admitted).count
        #expect(admitted > 50 && admitted < 500, "the budget must both admit and refuse: \(admitted) admitted")
        #expect(peak <= limit, "the counter reached \(peak), over the limit \(limit)")
        #expect(final == spent, "the counter ends at what was spent")
        #expect(spent <= limit)
        // No hold is left behind.
        #expect(try await watcher.send(["EXISTS"] + (0..<500).map { "gpt:budget-hold:\(namespace)-\($0)" }).int == 0)
    }

    @Test("a redelivered question reserves once and settles once; a refund gives all of it back; usage counts the call once")
    func redeliveryAndRefund() async throws {
        let namespace = Self.namespace()
        let redis = try Self.client()
        defer { Task { await redis.shutdown() } }
        let store = try Self.store(redis, "user.day.tokens=10000", namespace: namespace)
        let user = UUID()
        let messages = Self.messages("hello there")
        let bound = Int64(RequestBound.promptTokens(messages) + 100)   // the default max_tokens
        let key = BudgetPolicy.counterKey(store.policy.rules[0], namespace: namespace, user: user, role: "USER", now: Date()).key
        func used() async throws -> Int64 { try await redis.get(key).flatMap { Int64($0) } ?? 0 }

        let first = try await store.reserve(attemptID: "\(namespace)-a", user: user, role: "USER", model: "m1", messages: messages, maxTokens: nil)
        #expect(try await used() == bound)
        let again = try await store.reserve(attemptID: "\(namespace)-a", user: user, role: "USER", model: "m1", messages: messages, maxTokens: nil)
        #expect(try await used() == bound, "a redelivery reserves nothing more")
        #expect(try await redis.ttl(key) != nil, "the counter expires at the period's end")
        await store.settle(first, paid: Self.answer(prompt: 5, completion: 7))
        #expect(try await used() == 12)
        await store.settle(again, paid: Self.answer(prompt: 5, completion: 7))
        #expect(try await used() == 12, "settled once")

        let refunded = try await store.reserve(attemptID: "\(namespace)-b", user: user, role: "USER", model: "m1", messages: messages, maxTokens: 50)
        #expect(try await used() == 12 + Int64(RequestBound.promptTokens(messages) + 50))
        await store.settle(refunded, paid: nil)
        #expect(try await used() == 12)

        let report = try await store.report(user: user, role: "USER")
        #expect(report.today == [ModelUsage(model: "m1", requests: 1, promptTokens: 5, completionTokens: 7, cost: 0)])
        #expect(report.month == report.today)
        #expect(report.budgets.count == 1)
        #expect(report.budgets.first?.used == 12)
        #expect(report.budgets.first?.remaining == 9988.0)
    }

    @Test("a counter whose period ended while the question ran is not brought back by the settle")
    func periodEndedMeanwhile() async throws {
        let namespace = Self.namespace()
        let redis = try Self.client()
        defer { Task { await redis.shutdown() } }
        let store = try Self.store(redis, "user.day.tokens=10000", namespace: namespace)
        let user = UUID()
        let key = BudgetPolicy.counterKey(store.policy.rules[0], namespace: namespace, user: user, role: "USER", now: Date()).key
        let reservation = try await store.reserve(attemptID: "\(namespace)-a", user: user, role: "USER", model: "m1",
                                                  messages: Self.messages("hi"), maxTokens: 10)
        _ = try await redis.del(key)   // what EXPIREAT does at midnight
        await store.settle(reservation, paid: Self.answer(prompt: 2, completion: 3))
        #expect(try await redis.exists(key) == false)
    }

    @Test("money: the price table turns tokens into micro-dollars; the refusal names the dollar budget; an unpriced model is refused")
    func money() async throws {
        let namespace = Self.namespace()
        let redis = try Self.client()
        defer { Task { await redis.shutdown() } }
        // $1,000 per million tokens either way: a token costs 1,000 µ$, the budget of $0.05 is 50 tokens' worth.
        let store = try Self.store(redis, "user.month.usd=0.05", namespace: namespace, prices: "m1=1000/1000")
        let user = UUID()
        let messages = Self.messages("hi")   // bound 3 + 4 + 4 + 2 = 13 tokens
        let a = try await store.reserve(attemptID: "\(namespace)-a", user: user, role: "USER", model: "m1", messages: messages, maxTokens: 20)
        await store.settle(a, paid: Self.answer(prompt: 2, completion: 10))   // 12,000 µ$
        let b = try await store.reserve(attemptID: "\(namespace)-b", user: user, role: "USER", model: "m1", messages: messages, maxTokens: 20)
        // 12,000 spent + 33,000 held: a third question (33,000 more) would make 78,000 > 50,000.
        await #expect(throws: RPCErrorReply.self) {
            try await store.reserve(attemptID: "\(namespace)-c", user: user, role: "USER", model: "m1", messages: messages, maxTokens: 20)
        }
        do {
            _ = try await store.reserve(attemptID: "\(namespace)-c", user: user, role: "USER", model: "m1", messages: messages, maxTokens: 20)
        } catch let error as RPCErrorReply {
            #expect(error.code == GPTError.budgetExceeded)
            #expect(error.details?["unit"] == "usd")
            #expect(error.details?["limit"] == "0.05")
            #expect(error.details?["used"] == "0.045")
            #expect(error.details?["requested"] == "0.033")
            #expect(error.message.contains("your monthly cost budget of $0.05"))
        }
        await store.settle(b, paid: Self.answer(prompt: 2, completion: 1))   // 3,000 µ$
        let report = try await store.report(user: user, role: "USER")
        #expect(report.budgets == [BudgetStatus(scope: "user", period: "month", unit: "usd", limit: 0.05, used: 0.015, remaining: 0.035,
                                                resetAt: BudgetPeriod.month.window(at: Date()).resetAt)])
        #expect(report.today.first?.cost == 0.015)
        await #expect(throws: RPCErrorReply.self) {
            try await store.reserve(attemptID: "\(namespace)-d", user: user, role: "USER", model: "unpriced", messages: messages, maxTokens: 1)
        }
    }

    @Test("administrators list usage per user, model and day; one user's, or every user's of each day")
    func adminList() async throws {
        let namespace = Self.namespace()
        let redis = try Self.client()
        defer { Task { await redis.shutdown() } }
        let store = try Self.store(redis, "", namespace: namespace, prices: "m1=1/2,m2=10/20")
        let (u1, u2) = (UUID(), UUID())
        for (i, (user, model, prompt, completion)) in [(u1, "m1", 10, 5), (u1, "m2", 1, 1), (u2, "m1", 100, 50), (u1, "m1", 10, 5)].enumerated() {
            let r = try await store.reserve(attemptID: "\(namespace)-\(i)", user: user, role: "USER", model: model,
                                            messages: Self.messages("q"), maxTokens: nil)
            await store.settle(r, paid: Self.answer(prompt: prompt, completion: completion, model: model))
        }
        let today = String(iso8601(Date()).prefix(10))
        let mine = try await store.list(UsageListRequest(from: today, to: today, userId: u1, limit: 100))
        #expect(mine.rows == [UsageRow(day: today, userId: u1.lowercasedString, model: "m1", requests: 2, promptTokens: 20, completionTokens: 10, cost: 0.00004),
                              UsageRow(day: today, userId: u1.lowercasedString, model: "m2", requests: 1, promptTokens: 1, completionTokens: 1, cost: 0.00003)])
        let everyone = try await store.list(UsageListRequest(from: today, to: today, userId: nil, limit: 10_000))
        #expect(everyone.rows.contains(UsageRow(day: today, userId: u2.lowercasedString, model: "m1", requests: 1, promptTokens: 100, completionTokens: 50,
                                                cost: 0.0002)))
        #expect(everyone.rows.filter { $0.userId == u1.lowercasedString }.count == 2)
        let one = try await store.list(UsageListRequest(from: today, to: today, userId: nil, limit: 1))
        #expect(one.rows.count == 1 && one.truncated)
        await #expect(throws: RPCErrorReply.self) { try await store.list(UsageListRequest(from: today, to: "2020-01-01", userId: nil, limit: 1)) }
        await #expect(throws: RPCErrorReply.self) { try await store.list(UsageListRequest(from: "2026-01-01", to: "2026-12-31", userId: nil, limit: 1)) }
    }
}
