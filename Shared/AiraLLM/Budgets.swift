import AiraCore
import Foundation

// Token and cost budgets (docs/gpt.md, "Budgets"): what a deployment allows per user, per role
// and in all, per UTC day and calendar month, in tokens and in money. This file holds the rules
// and the arithmetic; aira-gpt-proxy's `BudgetStore` keeps the counters in Redis.
//
// Money is counted in micro-dollars (µ$, a millionth of a US dollar) as whole numbers. A price
// in dollars per million tokens, the way providers publish them, is the same number in µ$ per
// token.

/// What one model costs, in µ$ per token (= dollars per million tokens).
public struct ModelPrice: Sendable, Hashable {
    public var input: Double
    public var output: Double

    public init(input: Double, output: Double) {
        self.input = input
        self.output = output
    }

    /// The cost of a call in µ$, rounded up (a budget never loses a fraction to rounding).
    public func cost(prompt: Int, completion: Int) -> Int64 {
        Int64((Double(prompt) * self.input + Double(completion) * self.output).rounded(.up))
    }
}

/// The price of each model (`AIRA_GPT_PRICES`).
public struct PriceTable: Sendable, Hashable {
    public var prices: [String: ModelPrice]
    /// `*`: the price of every model not named.
    public var fallback: ModelPrice?

    public init(prices: [String: ModelPrice] = [:], fallback: ModelPrice? = nil) {
        self.prices = prices
        self.fallback = fallback
    }

    /// `model=input/output, …` in dollars per million tokens (`gpt-4o-mini=0.15/0.60`); `*=…`
    /// prices every model not named. Empty: no prices. Nil when the text is not of that form.
    public init?(parsing text: String) {
        self.init()
        for item in text.split(separator: ",") {
            let entry = item.trimmingCharacters(in: .whitespaces)
            guard !entry.isEmpty else { continue }
            guard let eq = entry.lastIndex(of: "=") else { return nil }
            let model = entry[..<eq].trimmingCharacters(in: .whitespaces)
            let numbers = entry[entry.index(after: eq)...].split(separator: "/", omittingEmptySubsequences: false)
            guard !model.isEmpty, numbers.count == 2,
                  let input = Double(numbers[0].trimmingCharacters(in: .whitespaces)),
                  let output = Double(numbers[1].trimmingCharacters(in: .whitespaces)),
                  input >= 0, output >= 0, input.isFinite, output.isFinite else { return nil }
            let price = ModelPrice(input: input, output: output)
            if model == "*" { self.fallback = price } else { self.prices[model] = price }
        }
    }

    public func price(_ model: String) -> ModelPrice? { self.prices[model] ?? self.fallback }

    public var isEmpty: Bool { self.prices.isEmpty && self.fallback == nil }
}

public enum BudgetPeriod: String, Sendable, Hashable, Codable, CaseIterable {
    case day, month

    /// The period containing `now` (UTC): its stamp in keys (`d20261206`, `m202612`) and when
    /// the next one starts.
    public func window(at now: Date) -> (stamp: String, resetAt: Date) {
        let days = Int64((now.timeIntervalSince1970 / 86_400).rounded(.down))
        switch self {
        case .day:
            return ("d" + utcDayStamp(daysSinceEpoch: days), Date(timeIntervalSince1970: Double(days + 1) * 86_400))
        case .month:
            let (y, m, _) = civilDate(daysSinceEpoch: days)
            let next = m == 12 ? daysSinceEpoch(year: y + 1, month: 1, day: 1) : daysSinceEpoch(year: y, month: m + 1, day: 1)
            return ("m" + String(utcDayStamp(daysSinceEpoch: days).prefix(6)), Date(timeIntervalSince1970: Double(next) * 86_400))
        }
    }
}

public enum BudgetUnit: String, Sendable, Hashable, Codable, CaseIterable {
    /// Prompt and completion tokens together.
    case tokens
    /// Money, counted in µ$; written in dollars in the configuration and the API.
    case usd
}

/// Whose spending a rule limits.
public enum BudgetScope: Sendable, Hashable {
    /// Each user on their own; `role` set: only users of that role (it replaces the rule
    /// without a role for them).
    case user(role: String?)
    /// All users of a role together.
    case role(String)
    /// The whole deployment.
    case global

    /// How it is written in `AIRA_GPT_BUDGETS` and shown in the API.
    public var name: String {
        switch self {
        case .user(nil): "user"
        case .user(let role?): "user:\(role)"
        case .role(let role): "role:\(role)"
        case .global: "global"
        }
    }
}

/// One limit: scope, period, unit and amount (tokens, or µ$).
public struct BudgetRule: Sendable, Hashable {
    public var scope: BudgetScope
    public var period: BudgetPeriod
    public var unit: BudgetUnit
    public var limit: Int64

    public init(scope: BudgetScope, period: BudgetPeriod, unit: BudgetUnit, limit: Int64) {
        self.scope = scope
        self.period = period
        self.unit = unit
        self.limit = limit
    }

    /// `scope.period.unit=amount`, as in the configuration.
    public var description: String {
        let amount = self.unit == .usd ? formatDollars(micros: self.limit) : String(self.limit)
        return "\(self.scope.name).\(self.period.rawValue).\(self.unit.rawValue)=\(amount)"
    }
}

/// Every budget of a deployment (`AIRA_GPT_BUDGETS`).
public struct BudgetPolicy: Sendable, Hashable {
    public var rules: [BudgetRule]

    public init(rules: [BudgetRule] = []) { self.rules = rules }

    /// `scope.period.unit=amount, …`: scope `user`, `user:ROLE`, `role:ROLE` or `global`; period
    /// `day` or `month`; unit `tokens` or `usd` (amount in dollars, e.g. `5` or `0.25`). Empty:
    /// no budgets. Nil when the text is not of that form or names one limit twice.
    public init?(parsing text: String) {
        self.init()
        for item in text.split(separator: ",") {
            let entry = item.trimmingCharacters(in: .whitespaces)
            guard !entry.isEmpty else { continue }
            let sides = entry.split(separator: "=", omittingEmptySubsequences: false)
            guard sides.count == 2 else { return nil }
            let parts = sides[0].trimmingCharacters(in: .whitespaces).split(separator: ".", omittingEmptySubsequences: false)
            guard parts.count == 3, let period = BudgetPeriod(rawValue: String(parts[1])),
                  let unit = BudgetUnit(rawValue: String(parts[2])) else { return nil }
            let scope: BudgetScope
            let scopeParts = parts[0].split(separator: ":", omittingEmptySubsequences: false)
            switch (scopeParts.first, scopeParts.count) {
            case ("user", 1): scope = .user(role: nil)
            case ("user", 2) where Self.isRole(scopeParts[1]): scope = .user(role: String(scopeParts[1]))
            case ("role", 2) where Self.isRole(scopeParts[1]): scope = .role(String(scopeParts[1]))
            case ("global", 1): scope = .global
            default: return nil
            }
            let amountText = sides[1].trimmingCharacters(in: .whitespaces)
            let limit: Int64
            switch unit {
            case .tokens:
                guard let n = Int64(amountText), n >= 0 else { return nil }
                limit = n
            case .usd:
                guard let dollars = Double(amountText), dollars >= 0, dollars < 1e9 else { return nil }
                limit = Int64((dollars * 1_000_000).rounded())
            }
            let rule = BudgetRule(scope: scope, period: period, unit: unit, limit: limit)
            guard !self.rules.contains(where: { $0.scope == scope && $0.period == period && $0.unit == unit }) else { return nil }
            self.rules.append(rule)
        }
    }

    private static func isRole(_ text: Substring) -> Bool {
        !text.isEmpty && text.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "_" || $0 == "-") }
    }

    public var isEmpty: Bool { self.rules.isEmpty }

    /// Whether any rule counts money (then every model asked needs a price).
    public var countsMoney: Bool { self.rules.contains { $0.unit == .usd } }

    /// The rules that apply to a user of `role`: their own (the role's `user:ROLE` rule in place
    /// of the plain `user` one for the same period and unit), their role's, the deployment's.
    public func rules(for role: String) -> [BudgetRule] {
        self.rules.filter { rule in
            switch rule.scope {
            case .user(nil):
                !self.rules.contains { $0.scope == .user(role: role) && $0.period == rule.period && $0.unit == rule.unit }
            case .user(let r?): r == role
            case .role(let r): r == role
            case .global: true
            }
        }
    }

    /// The counter of `rule` for this user in the period containing `now`:
    /// `gpt:budget:{namespace}:{u:user | r:role | g}:{stamp}:{unit}`, and its reset.
    public static func counterKey(_ rule: BudgetRule, namespace: String, user: UUID, role: String,
                                  now: Date) -> (key: String, resetAt: Date) {
        let (stamp, reset) = rule.period.window(at: now)
        let owner: String
        switch rule.scope {
        case .user: owner = "u:" + user.lowercasedString
        case .role: owner = "r:" + role
        case .global: owner = "g"
        }
        return ("gpt:budget:\(namespace):\(owner):\(stamp):\(rule.unit.rawValue)", reset)
    }
}

/// The most a question can cost before it is asked: the upper bound a budget reserves.
public enum RequestBound {
    /// At most this many prompt tokens, for any byte-level BPE tokenizer (every GPT-family
    /// tokenizer: a token is at least one byte): the UTF-8 bytes of every message, 4 tokens per
    /// message for its framing, 3 for the reply's. It overestimates (English averages about 4
    /// bytes a token, Korean about 2–3) — a reservation is settled to the real count afterwards.
    public static func promptTokens(_ messages: [ChatMessage]) -> Int {
        messages.reduce(3) { $0 + 4 + $1.role.utf8.count + $1.content.utf8.count }
    }

    /// At most this many tokens in `text` (the same bound), for an answer whose upstream sent
    /// no usage.
    public static func tokens(_ text: String) -> Int { text.utf8.count }
}

/// `12.345678` for 12,345,678 µ$: dollars with the zeros at the end dropped.
public func formatDollars(micros: Int64) -> String {
    let sign = micros < 0 ? "-" : ""
    let m = micros.magnitude
    var fraction = String(m % 1_000_000)
    fraction = String(repeating: "0", count: 6 - fraction.count) + fraction
    while fraction.hasSuffix("0") { fraction.removeLast() }
    return sign + String(m / 1_000_000) + (fraction.isEmpty ? "" : "." + fraction)
}
