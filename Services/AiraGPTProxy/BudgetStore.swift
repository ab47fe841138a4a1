import AiraContracts
import AiraCore
import AiraLLM
import AiraMessaging
import AiraRedis
import Foundation
import Logging
import Metrics

/// Token and cost budgets in Redis (docs/gpt.md, "Budgets"). Before a question goes upstream,
/// one script checks every budget that applies and reserves the most the question can cost
/// (its prompt's token bound plus `max_tokens`) in all of them at once, or none; after the call
/// a second script settles each reservation to what the call really cost, or gives it back if
/// the call failed or another caller's call answered. Every proxy uses the same two scripts on
/// the same counters, so no interleaving of questions on any number of proxies can take a
/// counter past its limit by more than the difference between a question's bound and its real
/// cost — which is never positive while the upstream keeps to `max_tokens`.
///
/// The same settle records what each upstream call cost per user, model and day
/// (`gpt:usage:{user}:{yyyymmdd}`), for the user's and the administrators' usage reports.
struct BudgetStore: Sendable {
    let redis: RedisClient
    let policy: BudgetPolicy
    let prices: PriceTable
    /// Keeps the counters of deployments (or tests) that share a Redis apart: `AIRA_GPT_BUDGET_NAMESPACE`.
    let namespace: String
    /// `max_tokens` sent upstream for a question that sets none, while budgets apply
    /// (`AIRA_GPT_DEFAULT_MAX_TOKENS`): without it a question has no upper bound.
    let defaultMaxTokens: Int
    /// How long per-day usage is kept (`AIRA_GPT_USAGE_RETENTION`).
    var usageRetention: Duration = .seconds(400 * 86_400)
    let logger: Logger

    private static let rejected = Counter(label: "aira_gpt_budget_rejections_total")
    private static let unavailable = Counter(label: "aira_gpt_budget_unavailable_total")

    static func exposeMetrics() { _ = (Self.rejected, Self.unavailable) }

    /// What a question holds in the budgets while it is answered.
    struct Reservation: Sendable {
        /// `gpt:budget-hold:{attempt}`: what was reserved in which counter.
        let holdKey: String
        let user: UUID
        let model: String
        let price: ModelPrice?
        let promptBound: Int
        let completionBound: Int
        /// The reservation is in Redis (false: Redis was unavailable and no budget applies).
        let held: Bool
    }

    /// The `max_tokens` to send upstream: the question's own, or the default while budgets apply.
    func maxTokens(_ requested: Int?) -> Int? { requested ?? (self.policy.isEmpty ? nil : self.defaultMaxTokens) }

    /// Reserves the question's maximum cost in every budget that applies, or throws
    /// `budget_exceeded` naming the first it would exceed. A redelivered question (same
    /// attempt) finds its reservation and reserves nothing more.
    func reserve(attemptID: String, user: UUID, role: String, model: String, messages: [ChatMessage], maxTokens: Int?,
                 now: Date = Date()) async throws -> Reservation {
        let price = self.prices.price(model)
        if price == nil, self.policy.countsMoney {
            throw RPCErrorReply(code: GPTError.invalidInput,
                                message: "model '\(model)' has no price, and budgets count money: ask for a priced model")
        }
        let promptBound = RequestBound.promptTokens(messages)
        let completionBound = self.maxTokens(maxTokens) ?? 0
        let rules = self.policy.rules(for: role)
        let tokens = Int64(promptBound + completionBound)
        let micros = price?.cost(prompt: promptBound, completion: completionBound) ?? 0
        let holdKey = "gpt:budget-hold:\(attemptID)"
        var keys = [holdKey]
        var args = [String(86_400)]
        var resets: [Date] = []
        for rule in rules {
            let (key, reset) = BudgetPolicy.counterKey(rule, namespace: self.namespace, user: user, role: role, now: now)
            keys.append(key)
            resets.append(reset)
            args += [String(rule.limit), String(rule.unit == .tokens ? tokens : micros), String(Int64(reset.timeIntervalSince1970))]
        }
        let reservation = Reservation(holdKey: holdKey, user: user, model: model, price: price, promptBound: promptBound,
                                      completionBound: completionBound, held: true)
        let reply: [RedisValue]
        do {
            reply = try await self.redis.eval(Self.reserveScript, keys: keys, args: args).array ?? []
        } catch {
            guard rules.isEmpty else {
                Self.unavailable.increment()
                self.logger.warning("redis unavailable: budgets cannot be checked, question refused", metadata: [LogKey.error: "\(error)"])
                throw RPCErrorReply(code: GPTError.budgetUnavailable, message: "spending budgets cannot be checked right now; try again shortly")
            }
            return Reservation(holdKey: holdKey, user: user, model: model, price: price, promptBound: promptBound,
                               completionBound: completionBound, held: false)
        }
        guard reply.first?.int == 0, reply.count == 3, let index = reply[1].int, let used = reply[2].int,
              index >= 1, Int(index) <= rules.count else { return reservation }
        let rule = rules[Int(index) - 1]
        Self.rejected.increment()
        throw Self.exceeded(rule, used: used, requested: rule.unit == .tokens ? tokens : micros, resetAt: resets[Int(index) - 1])
    }

    /// Settles a reservation: to what the call cost when `completion` is the answer of this
    /// question's own upstream call (recorded in the usage report too), to nothing when it is
    /// nil (the call failed, or another caller's call answered). Without usage from the
    /// upstream, the cost is bounded the same way as before the call: the prompt's bound and
    /// one token per byte of the answer, at most `max_tokens`.
    func settle(_ reservation: Reservation, paid completion: Completion?, now: Date = Date()) async {
        guard reservation.held else { return }
        let prompt = completion.map { $0.usage?.promptTokens ?? reservation.promptBound } ?? 0
        let answer = completion.map { $0.usage?.completionTokens ?? min(RequestBound.tokens($0.text), reservation.completionBound) } ?? 0
        let micros = completion == nil ? 0 : (reservation.price?.cost(prompt: prompt, completion: answer) ?? 0)
        let day = Self.dayStamp(now)
        let keys = [reservation.holdKey, Self.usageKey(user: reservation.user, day: day), Self.usersKey(day: day)]
        let args = [String(prompt + answer), String(micros), reservation.model, String(prompt), String(answer),
                    String(self.usageRetention.components.seconds), reservation.user.lowercasedString, completion == nil ? "0" : "1"]
        do {
            _ = try await self.redis.eval(Self.settleScript, keys: keys, args: args)
        } catch {
            // The reservation stays counted until its period ends: a budget errs on the safe side.
            self.logger.warning("redis unavailable: a budget reservation was not settled", metadata: [LogKey.error: "\(error)"])
        }
    }

    static func exceeded(_ rule: BudgetRule, used: Int64, requested: Int64, resetAt: Date) -> RPCErrorReply {
        let period = rule.period == .day ? "daily" : "monthly"
        let whose: String
        switch rule.scope {
        case .user: whose = "your"
        case .role(let role): whose = "role \(role)'s"
        case .global: whose = "the service's"
        }
        func amount(_ v: Int64) -> String { rule.unit == .usd ? "$" + formatDollars(micros: v) : "\(v) tokens" }
        let what = rule.unit == .usd ? "cost" : "token"
        let message = "\(whose) \(period) \(what) budget of \(amount(rule.limit)) would be exceeded: \(amount(used)) used, "
            + "this question may need up to \(amount(requested)); it resets at \(iso8601(resetAt))"
        func value(_ v: Int64) -> String { rule.unit == .usd ? formatDollars(micros: v) : String(v) }
        return RPCErrorReply(code: GPTError.budgetExceeded, message: message,
                             details: ["scope": rule.scope.name, "period": rule.period.rawValue, "unit": rule.unit.rawValue,
                                       "limit": value(rule.limit), "used": value(used), "requested": value(requested),
                                       "resetAt": iso8601(resetAt)])
    }

    /// KEYS: the hold, then one counter per rule. ARGV: the hold's lifetime (s), then per rule its
    /// limit, the amount to reserve and when the counter expires (epoch seconds, the period's end).
    /// Returns {1} reserved, {2} reserved already (a redelivery), {0, i, used} rule i would be exceeded.
    static let reserveScript = RedisScript("""
        if redis.call('EXISTS', KEYS[1]) == 1 then return {2} end
        local n = #KEYS - 1
        for i = 1, n do
          local used = tonumber(redis.call('GET', KEYS[i + 1]) or '0')
          if used + tonumber(ARGV[3 * i]) > tonumber(ARGV[3 * i - 1]) then return {0, i, used} end
        end
        local hold = {}
        for i = 1, n do
          redis.call('INCRBY', KEYS[i + 1], ARGV[3 * i])
          redis.call('EXPIREAT', KEYS[i + 1], ARGV[3 * i + 1])
          hold[i] = KEYS[i + 1] .. '|' .. ARGV[3 * i]
        end
        redis.call('SET', KEYS[1], table.concat(hold, '\\n'), 'EX', ARGV[1])
        return {1}
        """)

    /// KEYS: the hold, the user's usage of the day, the day's set of users. ARGV: tokens and µ$
    /// really spent, the model, prompt and completion tokens, the usage's lifetime (s), the user,
    /// '1' to record the call in the usage. Each counter moves by (spent − reserved), unless its
    /// period has ended meanwhile (the counter expired). Settles once: the hold goes with it.
    static let settleScript = RedisScript("""
        local hold = redis.call('GET', KEYS[1])
        if not hold then return 0 end
        redis.call('DEL', KEYS[1])
        for line in string.gmatch(hold, '[^\\n]+') do
          local key, reserved = string.match(line, '^(.*)|(%d+)$')
          local spent = (string.sub(key, -7) == ':tokens') and ARGV[1] or ARGV[2]
          local delta = tonumber(spent) - tonumber(reserved)
          if delta ~= 0 and redis.call('EXISTS', key) == 1 then redis.call('INCRBY', key, string.format('%d', delta)) end
        end
        if ARGV[8] == '1' then
          local m = ARGV[3]
          redis.call('HINCRBY', KEYS[2], m .. '|requests', 1)
          redis.call('HINCRBY', KEYS[2], m .. '|prompt', ARGV[4])
          redis.call('HINCRBY', KEYS[2], m .. '|completion', ARGV[5])
          redis.call('HINCRBY', KEYS[2], m .. '|cost', ARGV[2])
          redis.call('EXPIRE', KEYS[2], ARGV[6])
          redis.call('SADD', KEYS[3], ARGV[7])
          redis.call('EXPIRE', KEYS[3], ARGV[6])
        end
        return 1
        """)

    // MARK: - Usage

    static func dayStamp(_ date: Date) -> String {
        utcDayStamp(daysSinceEpoch: Int64((date.timeIntervalSince1970 / 86_400).rounded(.down)))
    }

    /// `gpt:usage:{user}:{yyyymmdd}`: per model, `{model}|requests`, `|prompt`, `|completion`, `|cost` (µ$).
    static func usageKey(user: UUID, day: String) -> String { "gpt:usage:\(user.lowercasedString):\(day)" }

    /// `gpt:usage-users:{yyyymmdd}`: who made an upstream call that day.
    static func usersKey(day: String) -> String { "gpt:usage-users:\(day)" }

    /// A user's budgets as they stand, and their usage today and this month.
    func report(user: UUID, role: String, now: Date = Date()) async throws -> UsageReport {
        let rules = self.policy.rules(for: role)
        let counters = rules.map { BudgetPolicy.counterKey($0, namespace: self.namespace, user: user, role: role, now: now) }
        let today = Int64((now.timeIntervalSince1970 / 86_400).rounded(.down))
        let (_, _, dayOfMonth) = civilDate(daysSinceEpoch: today)
        let days = (0..<dayOfMonth).map { utcDayStamp(daysSinceEpoch: today - $0) }
        let replies = try await self.redis.pipeline(counters.map { ["GET", $0.key] } + days.map { ["HGETALL", Self.usageKey(user: user, day: $0)] })
        var budgets: [BudgetStatus] = []
        for (i, rule) in rules.enumerated() {
            let used = replies[i].int ?? 0
            func shown(_ v: Int64) -> Double { rule.unit == .usd ? Double(v) / 1_000_000 : Double(v) }
            budgets.append(BudgetStatus(scope: rule.scope.name, period: rule.period.rawValue, unit: rule.unit.rawValue,
                                        limit: shown(rule.limit), used: shown(used), remaining: shown(max(0, rule.limit - used)),
                                        resetAt: counters[i].resetAt))
        }
        let perDay = replies[rules.count...].map { Self.models(Self.fields($0)) }
        var month: [String: ModelUsage] = [:]
        for day in perDay {
            for usage in day { month[usage.model] = Self.add(month[usage.model], usage) }
        }
        return UsageReport(budgets: budgets, today: perDay.first ?? [], month: month.values.sorted { $0.model < $1.model })
    }

    /// Usage per user, model and day for administrators: every user of each day, or one.
    func list(_ request: UsageListRequest) async throws -> UsageList {
        guard let from = Self.day(request.from), let to = Self.day(request.to), from <= to else {
            throw RPCErrorReply(code: GPTError.invalidInput, message: "from and to: days as yyyy-mm-dd, from not after to")
        }
        guard to - from < 92 else { throw RPCErrorReply(code: GPTError.invalidInput, message: "at most 92 days at once") }
        guard (1...10_000).contains(request.limit) else { throw RPCErrorReply(code: GPTError.invalidInput, message: "limit: 1–10000") }
        let days = (from...to).map { utcDayStamp(daysSinceEpoch: $0) }
        var pairs: [(day: String, user: String)] = []
        if let user = request.userId {
            pairs = days.map { ($0, user.lowercasedString) }
        } else {
            let members = try await self.redis.pipeline(days.map { ["SMEMBERS", Self.usersKey(day: $0)] })
            for (day, reply) in zip(days, members) {
                for user in (reply.array ?? []).compactMap(\.string).sorted() { pairs.append((day, user)) }
            }
        }
        var rows: [UsageRow] = []
        var start = 0
        while start < pairs.count {
            let chunk = pairs[start..<min(pairs.count, start + 500)]
            let replies = try await self.redis.pipeline(chunk.map { ["HGETALL", "gpt:usage:\($0.user):\($0.day)"] })
            for (pair, reply) in zip(chunk, replies) {
                let day = Self.isoDay(pair.day)
                for usage in Self.models(Self.fields(reply)) {
                    rows.append(UsageRow(day: day, userId: pair.user, model: usage.model, requests: usage.requests,
                                         promptTokens: usage.promptTokens, completionTokens: usage.completionTokens, cost: usage.cost))
                }
            }
            start += 500
        }
        rows.sort { $0.day != $1.day ? $0.day < $1.day : ($0.cost != $1.cost ? $0.cost > $1.cost : $0.userId < $1.userId) }
        return UsageList(rows: Array(rows.prefix(request.limit)), truncated: rows.count > request.limit)
    }

    private static func fields(_ reply: RedisValue) -> [String: Int64] {
        let items = reply.array ?? []
        var out: [String: Int64] = [:]
        var i = 0
        while i + 1 < items.count {
            if let k = items[i].string, let v = items[i + 1].int { out[k] = v }
            i += 2
        }
        return out
    }

    /// The usage hash's fields, per model (a model's name may contain `|`: split at the last one).
    private static func models(_ fields: [String: Int64]) -> [ModelUsage] {
        var byModel: [String: ModelUsage] = [:]
        for (field, value) in fields {
            guard let bar = field.lastIndex(of: "|") else { continue }
            let model = String(field[..<bar])
            var usage = byModel[model] ?? ModelUsage(model: model, requests: 0, promptTokens: 0, completionTokens: 0, cost: 0)
            switch field[field.index(after: bar)...] {
            case "requests": usage.requests = Int(value)
            case "prompt": usage.promptTokens = Int(value)
            case "completion": usage.completionTokens = Int(value)
            case "cost": usage.cost = Double(value) / 1_000_000
            default: continue
            }
            byModel[model] = usage
        }
        return byModel.values.sorted { $0.model < $1.model }
    }

    private static func add(_ a: ModelUsage?, _ b: ModelUsage) -> ModelUsage {
        guard let a else { return b }
        return ModelUsage(model: a.model, requests: a.requests + b.requests, promptTokens: a.promptTokens + b.promptTokens,
                          completionTokens: a.completionTokens + b.completionTokens, cost: a.cost + b.cost)
    }

    /// `yyyy-mm-dd` → days since 1970-01-01.
    static func day(_ text: String) -> Int64? {
        let parts = text.split(separator: "-", omittingEmptySubsequences: false)
        guard parts.count == 3, parts[0].count == 4, parts[1].count == 2, parts[2].count == 2,
              let y = Int64(parts[0]), let m = Int64(parts[1]), let d = Int64(parts[2]), (1...12).contains(m), (1...31).contains(d) else {
            return nil
        }
        let days = daysSinceEpoch(year: y, month: m, day: d)
        // 2026-02-31 is not a day: it would come back as 2026-03-03.
        guard civilDate(daysSinceEpoch: days) == (y, m, d) else { return nil }
        return days
    }

    /// `yyyymmdd` → `yyyy-mm-dd`.
    static func isoDay(_ stamp: String) -> String {
        let s = Array(stamp)
        guard s.count == 8 else { return stamp }
        return String(s[0..<4]) + "-" + String(s[4..<6]) + "-" + String(s[6..<8])
    }
}
