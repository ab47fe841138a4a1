import AiraCore
import AiraLLM
@testable import aira_gpt_proxy
import Foundation
import Testing

/// Budget rules, prices and periods (AiraLLM/Budgets.swift); the Redis scripts are tested against
/// Redis in BudgetStoreTests.
@Suite("Budgets")
struct BudgetTests {
    @Test("prices: model=input/output in dollars per million tokens, '*' for the rest; costs round up to a micro-dollar")
    func prices() throws {
        let table = try #require(PriceTable(parsing: "gpt-4o-mini=0.15/0.60, gpt-4o = 2.50/10, *=1/2"))
        #expect(table.price("gpt-4o-mini") == ModelPrice(input: 0.15, output: 0.60))
        #expect(table.price("gpt-4o") == ModelPrice(input: 2.5, output: 10))
        #expect(table.price("anything") == ModelPrice(input: 1, output: 2))
        // 1,000 prompt tokens at $0.15/M and 10 completion tokens at $0.60/M: 150 + 6 µ$.
        #expect(table.price("gpt-4o-mini")!.cost(prompt: 1000, completion: 10) == 156)
        // 3 tokens at 0.15 µ$ each is 0.45 µ$: charged as 1.
        #expect(ModelPrice(input: 0.15, output: 0).cost(prompt: 3, completion: 0) == 1)
        #expect(ModelPrice(input: 0, output: 0).cost(prompt: 1000, completion: 1000) == 0)
        #expect(PriceTable(parsing: "")?.isEmpty == true)
        #expect(PriceTable(parsing: "m=1/2")?.price("other") == nil)
        // Models may contain '=' ... no: the last '=' separates. Names with ':' or '/' are fine.
        #expect(PriceTable(parsing: "ft:gpt-4o:acme=3/12")?.price("ft:gpt-4o:acme") == ModelPrice(input: 3, output: 12))
        for bad in ["m=1", "m=1/2/3", "=1/2", "m=a/b", "m=-1/2", "m", "m=1/inf"] {
            #expect(PriceTable(parsing: bad) == nil, "\(bad)")
        }
    }

    @Test("budgets: scope.period.unit=amount; dollars kept in micro-dollars; a limit named twice is refused")
    func policyParsing() throws {
        let policy = try #require(BudgetPolicy(parsing: """
            user.day.tokens=200000, user:ADMIN.day.tokens=2000000, user.month.usd=5, role:USER.day.usd=100.5, global.month.usd=0.000001
            """))
        #expect(policy.rules.count == 5)
        #expect(policy.rules[0] == BudgetRule(scope: .user(role: nil), period: .day, unit: .tokens, limit: 200_000))
        #expect(policy.rules[2] == BudgetRule(scope: .user(role: nil), period: .month, unit: .usd, limit: 5_000_000))
        #expect(policy.rules[3] == BudgetRule(scope: .role("USER"), period: .day, unit: .usd, limit: 100_500_000))
        #expect(policy.rules[4].limit == 1)
        #expect(policy.countsMoney)
        // Written back as read (the log line at start-up).
        #expect(policy.rules.map(\.description) == ["user.day.tokens=200000", "user:ADMIN.day.tokens=2000000", "user.month.usd=5",
                                                    "role:USER.day.usd=100.5", "global.month.usd=0.000001"])
        #expect(BudgetPolicy(parsing: "")?.isEmpty == true)
        #expect(BudgetPolicy(parsing: "user.day.tokens=10")?.countsMoney == false)
        for bad in ["user.day.tokens", "user.week.tokens=1", "user.day.euros=1", "team.day.tokens=1", "role.day.tokens=1",
                    "role:.day.tokens=1", "user:a b.day.tokens=1", "user.day.tokens=-1", "user.day.tokens=1.5", "user.day.usd=x",
                    "global.day.tokens=1,global.day.tokens=2", "global.day.tokens=1=2"] {
            #expect(BudgetPolicy(parsing: bad) == nil, "\(bad)")
        }
    }

    @Test("which rules apply to a role: user:ROLE replaces user for the same period and unit; role rules only for that role")
    func rulesForRole() throws {
        let policy = try #require(BudgetPolicy(parsing:
            "user.day.tokens=100, user.month.tokens=1000, user:ADMIN.day.tokens=5000, role:USER.day.usd=1, role:ADMIN.month.usd=9, global.day.tokens=99999"))
        #expect(policy.rules(for: "USER").map(\.description) ==
            ["user.day.tokens=100", "user.month.tokens=1000", "role:USER.day.usd=1", "global.day.tokens=99999"])
        #expect(policy.rules(for: "ADMIN").map(\.description) ==
            ["user.month.tokens=1000", "user:ADMIN.day.tokens=5000", "role:ADMIN.month.usd=9", "global.day.tokens=99999"])
    }

    @Test("periods: UTC day and calendar month, with the next reset (year end, leap February)")
    func periods() {
        func at(_ text: String) -> Date { parseISO8601(text)! }
        #expect(BudgetPeriod.day.window(at: at("2026-12-06T23:59:59.999Z")) == ("d20261206", at("2026-12-07T00:00:00.000Z")))
        #expect(BudgetPeriod.day.window(at: at("2026-12-07T00:00:00.000Z")).stamp == "d20261207")
        #expect(BudgetPeriod.month.window(at: at("2026-12-31T12:00:00.000Z")) == ("m202612", at("2027-01-01T00:00:00.000Z")))
        #expect(BudgetPeriod.month.window(at: at("2028-02-29T12:00:00.000Z")) == ("m202802", at("2028-03-01T00:00:00.000Z")))
        #expect(BudgetPeriod.month.window(at: at("2026-01-01T00:00:00.000Z")) == ("m202601", at("2026-02-01T00:00:00.000Z")))
    }

    @Test("counter keys: per user, per role, or one for the deployment, in a namespace")
    func counterKeys() throws {
        let user = try #require(UUID(text: "0b6c6a6e-1f7e-4c2a-9a53-3d1d2e4f5a6b"))
        let now = parseISO8601("2026-12-06T10:00:00.000Z")!
        func key(_ scope: BudgetScope, _ period: BudgetPeriod, _ unit: BudgetUnit) -> String {
            BudgetPolicy.counterKey(BudgetRule(scope: scope, period: period, unit: unit, limit: 1), namespace: "ns", user: user,
                                    role: "USER", now: now).key
        }
        #expect(key(.user(role: nil), .day, .tokens) == "gpt:budget:ns:u:0b6c6a6e-1f7e-4c2a-9a53-3d1d2e4f5a6b:d20261206:tokens")
        #expect(key(.user(role: "USER"), .month, .usd) == "gpt:budget:ns:u:0b6c6a6e-1f7e-4c2a-9a53-3d1d2e4f5a6b:m202612:usd")
        #expect(key(.role("USER"), .day, .usd) == "gpt:budget:ns:r:USER:d20261206:usd")
        #expect(key(.global, .month, .tokens) == "gpt:budget:ns:g:m202612:tokens")
    }

    @Test("a question's bound: every byte of every message, 4 per message and 3 for the reply")
    func requestBound() {
        let messages = [ChatMessage(role: "system", content: "Be brief."), ChatMessage(role: "user", content: "안녕하세요")]
        // 3 + (4 + 6 + 9) + (4 + 4 + 15)
        #expect(RequestBound.promptTokens(messages) == 45)
        #expect(RequestBound.promptTokens([]) == 3)
        #expect(RequestBound.tokens("héllo") == 6)
    }

    @Test("dollars from micro-dollars, without trailing zeros")
    func dollars() {
        #expect(formatDollars(micros: 0) == "0")
        #expect(formatDollars(micros: 1) == "0.000001")
        #expect(formatDollars(micros: 5_000_000) == "5")
        #expect(formatDollars(micros: 12_340_000) == "12.34")
        #expect(formatDollars(micros: -1_500_000) == "-1.5")
    }

    @Test("the refusal names the budget, what is used and asked, and when it resets")
    func refusal() {
        let reset = parseISO8601("2026-12-07T00:00:00.000Z")!
        let tokens = BudgetStore.exceeded(BudgetRule(scope: .user(role: nil), period: .day, unit: .tokens, limit: 1000), used: 990,
                                          requested: 57, resetAt: reset)
        #expect(tokens.code == "budget_exceeded")
        #expect(tokens.message == "your daily token budget of 1000 tokens would be exceeded: 990 tokens used, this question may need up to 57 tokens; it resets at 2026-12-07T00:00:00.000Z")
        #expect(tokens.details == ["scope": "user", "period": "day", "unit": "tokens", "limit": "1000", "used": "990", "requested": "57",
                                   "resetAt": "2026-12-07T00:00:00.000Z"])
        let money = BudgetStore.exceeded(BudgetRule(scope: .global, period: .month, unit: .usd, limit: 500_000_000), used: 499_999_000,
                                         requested: 1_250, resetAt: reset)
        #expect(money.message.hasPrefix("the service's monthly cost budget of $500 would be exceeded: $499.999 used, this question may need up to $0.00125"))
        #expect(money.details?["used"] == "499.999")
    }

    @Test("days for the usage list: yyyy-mm-dd, real dates only")
    func days() {
        #expect(BudgetStore.day("1970-01-02") == 1)
        #expect(BudgetStore.day("2026-12-06").map { utcDayStamp(daysSinceEpoch: $0) } == "20261206")
        for bad in ["2026-02-31", "2026-13-01", "2026-1-01", "20261206", "yesterday", "2026-00-10"] {
            #expect(BudgetStore.day(bad) == nil, "\(bad)")
        }
        #expect(BudgetStore.isoDay("20261206") == "2026-12-06")
    }
}
