import AiraCore
import AiraRedis
import HTTPTypes
import Hummingbird
import Logging
import Metrics
import Synchronization

/// A limit: `limit` requests per `window`, e.g. `120/1m`.
struct RateLimit: Sendable, Hashable, CustomStringConvertible {
    var limit: Int
    var window: Duration

    var description: String { "\(self.limit)/\(formatDuration(self.window))" }

    init(limit: Int, window: Duration) {
        self.limit = limit
        self.window = window
    }

    /// Parses `N/DURATION` (`120/1m`, `5/10s`).
    init?(_ text: String) {
        let parts = text.split(separator: "/")
        guard parts.count == 2, let n = Int(parts[0]), n > 0, let w = EnvironmentReader.parseDuration(String(parts[1])),
              w >= .seconds(1) else { return nil }
        self.init(limit: n, window: w)
    }
}

/// An endpoint class with its limits per user (when authenticated) and per client address.
struct RateLimitClass: Sendable {
    var name: String
    var perUser: RateLimit
    var perAddress: RateLimit

    /// `AIRA_RATE_LIMIT_<NAME>` (per user) and `AIRA_RATE_LIMIT_<NAME>_IP` (per address).
    static func from(_ env: EnvironmentReader, name: String, user: RateLimit, address: RateLimit) throws -> RateLimitClass {
        func read(_ key: String, _ fallback: RateLimit) throws -> RateLimit {
            try env.value(key, default: fallback, shown: fallback.description, expected: "N/DURATION, e.g. 120/1m", RateLimit.init)
        }
        let upper = name.uppercased()
        return RateLimitClass(name: name, perUser: try read("AIRA_RATE_LIMIT_\(upper)", user),
                              perAddress: try read("AIRA_RATE_LIMIT_\(upper)_IP", address))
    }
}

/// Fixed-window counters in Redis, shared by every gateway instance, handed out in leases.
///
/// A counter in Redis counts the requests *granted* in its window, by every instance together.
/// An instance does not ask Redis once per request: it reserves a few grants at a time (a
/// lease) and spends them locally. The script grants only what the window has left, so all
/// instances together never admit more than the limit; what a lease reserves and its
/// instance does not spend before the window ends is lost, so a client can meet its limit early
/// by at most the unspent leases of the other instances. The lease size keeps that small: one
/// sixteenth of what the window has left (at least 1, at most 64) — a limit of 60 is counted
/// one request at a time, exactly as without leases, while a busy key asks Redis once per up to
/// 64 requests. Requests that find no grant while a reservation is on its way wait for it
/// instead of calling Redis themselves. A counter that is used up answers 429 without Redis
/// until its window ends. A request denied by one counter gives back what it took from the others.
final class RateLimiter: WaitingLine {
    let redis: RedisClient
    let logger: Logger
    private let leases = Mutex(Leases())

    func withLineState<R: Sendable>(_ body: (inout Leases) -> R) -> R { self.leases.withLock { body(&$0) } }
    private static let errors = Counter(label: "aira_gateway_rate_limit_errors_total")
    private static let limited = Counter(label: "aira_gateway_rate_limited_total")
    private static let redisCalls = Counter(label: "aira_gateway_rate_limit_redis_calls_total")
    /// The most a lease reserves, and the share of what is left in the window it takes (1/16).
    static let maxLease = 64
    static let leaseDivisor = 16

    init(redis: RedisClient, logger: Logger) {
        self.redis = redis
        self.logger = logger
    }

    struct Decision: Sendable {
        var allowed: Bool
        var limit: RateLimit
        var remaining: Int
        var resetSeconds: Int
    }

    /// This instance's view of one counter in the current window.
    struct Lease {
        /// Grants reserved in Redis and not spent yet.
        var left = 0
        /// The counter's value in Redis after this instance's last reservation.
        var count = 0
        /// When the window ends: the reply's time left, counted from before the call was sent.
        var expires = ContinuousClock.Instant.now
        /// A reservation is on its way; these requests wait for it.
        var fetching = false
        var waiters = Waiters<Void>()

        func isCurrent(at now: ContinuousClock.Instant) -> Bool { now < self.expires }
    }

    struct Leases {
        var byKey: [String: Lease] = [:]
        var lastSweep = ContinuousClock.Instant.now

        /// The requests waiting for `key`'s reservation (a line for ``WaitingLine/waitInLine(_:deadline:timer:timeout:orNow:)``).
        subscript(waitersOf key: String) -> Waiters<Void> {
            get { self.byKey[key]?.waiters ?? Waiters() }
            set { self.byKey[key, default: Lease()].waiters = newValue }
        }

        /// Forgets the ended windows nobody waits on, once the table has grown (at most once a second).
        mutating func sweepIfLarge(now: ContinuousClock.Instant) {
            guard self.byKey.count >= 10_000, now - self.lastSweep >= .seconds(1) else { return }
            self.lastSweep = now
            self.byKey = self.byKey.filter { $0.value.isCurrent(at: now) || $0.value.fetching }
        }
    }

    private enum Step {
        case decided(Decision)
        case wait(Int)
        case reserve([(index: Int, want: Int)])
    }

    /// Counts the request against each (key, limit) and returns the tightest outcome. Redis
    /// unavailable → allowed (fail open: the API stays up without Redis; logged and counted).
    func check(_ counters: [(key: String, limit: RateLimit)]) async -> Decision? {
        var held = [Bool](repeating: false, count: counters.count)
        while true {
            let now = ContinuousClock.now
            let step: Step = self.leases.withLock { leases in
                // Spend a grant from each counter that has one.
                for (i, counter) in counters.enumerated() where !held[i] {
                    if let lease = leases.byKey[counter.key], lease.isCurrent(at: now), lease.left > 0 {
                        leases.byKey[counter.key]!.left -= 1
                        held[i] = true
                    }
                }
                if !held.contains(false) {
                    // (A grant held since an earlier pass may belong to a window the table has
                    // forgotten meanwhile: it is still spent, and reported as a fresh window.)
                    return .decided(Self.tightest(counters.map { leases.byKey[$0.key] ?? Lease() }, counters, now: now))
                }
                // A used-up counter: 429 until its window ends; the grants spent above go back.
                for (i, counter) in counters.enumerated() where !held[i] {
                    if let lease = leases.byKey[counter.key], lease.isCurrent(at: now), lease.count >= counter.limit.limit {
                        for (j, other) in counters.enumerated() where held[j] { leases.byKey[other.key]?.left += 1 }
                        return .decided(Decision(allowed: false, limit: counter.limit, remaining: 0,
                                                 resetSeconds: Self.seconds(until: lease.expires, from: now)))
                    }
                }
                // Wait for a reservation already on its way, or make one.
                if let i = counters.indices.first(where: { !held[$0] && leases.byKey[counters[$0].key]?.fetching == true }) {
                    return .wait(i)
                }
                var wants: [(index: Int, want: Int)] = []
                for (i, counter) in counters.enumerated() where !held[i] {
                    var lease = leases.byKey[counter.key] ?? Lease()
                    let left = lease.isCurrent(at: now) ? counter.limit.limit - lease.count : counter.limit.limit
                    wants.append((i, Self.leaseSize(left: left)))
                    lease.fetching = true
                    leases.byKey[counter.key] = lease
                }
                leases.sweepIfLarge(now: now)
                return .reserve(wants)
            }
            switch step {
            case .decided(let decision):
                if !decision.allowed { Self.limited.increment() }
                return decision
            case .wait(let i):
                let key = counters[i].key
                do {
                    try await self.waitInLine(\Leases.[waitersOf: key]) { leases in
                        leases.byKey[key]?.fetching == true ? nil : .success(())
                    }
                } catch {
                    // Cancelled: the grants this request held go back, and it is not counted.
                    self.leases.withLock { leases in
                        for (j, counter) in counters.enumerated() where held[j] { leases.byKey[counter.key]?.left += 1 }
                    }
                    return nil
                }
            case .reserve(let wants):
                // Measured before the call, so this instance's window never outlasts Redis's.
                let sent = ContinuousClock.now
                let reply = await self.callScript(wants.map { (counters[$0.index], $0.want) })
                self.record(reply, sent: sent, for: wants.map { (counters[$0.index].key, $0.index) }, held: &held)
                if reply == nil {
                    // Redis failed: give back what this request held and let it through.
                    self.leases.withLock { leases in
                        for (j, counter) in counters.enumerated() where held[j] { leases.byKey[counter.key]?.left += 1 }
                    }
                    return nil
                }
            }
        }
    }

    /// Reserves `want` grants for each counter in one script call: nil when Redis fails.
    private func callScript(_ wants: [((key: String, limit: RateLimit), Int)]) async -> [(count: Int, granted: Int, ttl: Int)]? {
        Self.redisCalls.increment()
        do {
            let reply = try await self.redis.eval(Self.script, keys: wants.map(\.0.key), args: wants.flatMap { counter, want in
                [String(counter.limit.limit), String(counter.limit.window.milliseconds), String(want)]
            }).array ?? []
            guard reply.count == wants.count * 3 else { throw RedisError.unexpectedReply("rate-limit script: \(reply.count) values for \(wants.count) counters") }
            return wants.indices.map { i in
                (Int(reply[3 * i].int ?? 0), Int(reply[3 * i + 1].int ?? 0), max(0, Int(reply[3 * i + 2].int ?? 0)))
            }
        } catch {
            Self.errors.increment()
            self.logger.warning("rate limiter unavailable: allowing the request", metadata: [LogKey.error: "\(error)"])
            return nil
        }
    }

    /// Records a reservation's outcome (the request that made it takes one grant of each counter
    /// it got) and wakes the requests that waited for it. `reply` nil: the reservation failed.
    private func record(_ reply: [(count: Int, granted: Int, ttl: Int)]?, sent: ContinuousClock.Instant,
                        for keys: [(key: String, index: Int)], held: inout [Bool]) {
        let waiters: [Waiters<Void>.Continuation] = self.leases.withLock { leases in
            var woken: [Waiters<Void>.Continuation] = []
            for (n, (key, index)) in keys.enumerated() {
                var lease = leases.byKey[key] ?? Lease()
                if let r = reply?[n] {
                    lease.count = r.count
                    lease.left = r.granted
                    lease.expires = sent + .milliseconds(r.ttl)
                    if r.granted > 0 {
                        lease.left -= 1
                        held[index] = true
                    }
                }
                lease.fetching = false
                woken += lease.waiters.removeAll()
                leases.byKey[key] = lease
            }
            return woken
        }
        for waiter in waiters { waiter.resume() }
    }

    /// How many grants to reserve when the window has `left` of them: a sixteenth, 1 to 64.
    static func leaseSize(left: Int) -> Int {
        min(Self.maxLease, max(1, left / Self.leaseDivisor))
    }

    private static func tightest(_ leases: [Lease], _ counters: [(key: String, limit: RateLimit)],
                                 now: ContinuousClock.Instant) -> Decision {
        var tightest: Decision?
        for (lease, counter) in zip(leases, counters) {
            // Left for this client: what the window has not granted yet, plus this instance's unspent grants.
            let remaining = max(0, counter.limit.limit - lease.count) + lease.left
            if tightest == nil || remaining < tightest!.remaining {
                tightest = Decision(allowed: true, limit: counter.limit, remaining: remaining,
                                    resetSeconds: Self.seconds(until: lease.expires, from: now))
            }
        }
        return tightest!
    }

    private static func seconds(until end: ContinuousClock.Instant, from now: ContinuousClock.Instant) -> Int {
        max(1, Int(((end - now).milliseconds + 999) / 1000))
    }

    /// For each key, with ARGV limit, window (ms) and wanted grants: grants what the window has
    /// left (never more than the limit in all), starts the window's expiry with the counter, and
    /// returns the counter after the grant, the grant, and the milliseconds left in the window.
    static let script = RedisScript("""
        local out = {}
        for i, key in ipairs(KEYS) do
            local limit = tonumber(ARGV[3 * i - 2])
            local window = tonumber(ARGV[3 * i - 1])
            local want = tonumber(ARGV[3 * i])
            local n = tonumber(redis.call('GET', key) or '0')
            local granted = math.min(want, math.max(0, limit - n))
            if granted > 0 then n = redis.call('INCRBY', key, granted) end
            local ttl = redis.call('PTTL', key)
            if ttl < 0 then
                if n > 0 then redis.call('PEXPIRE', key, window) end
                ttl = window
            end
            out[#out + 1] = n
            out[#out + 1] = granted
            out[#out + 1] = ttl
        end
        return out
        """)
}

/// Applies an endpoint class's limits: per address always, per user when the route is
/// authenticated. Answers 429 with `Retry-After`; every response carries `RateLimit-*`.
struct RateLimitMiddleware: RouterMiddleware {
    typealias Context = GatewayContext
    let limiter: RateLimiter
    let limits: RateLimitClass

    func handle(_ request: Request, context: GatewayContext,
                next: (Request, GatewayContext) async throws -> Response) async throws -> Response {
        var counters = [(key: "rl:\(self.limits.name):ip:\(context.clientIP)", limit: self.limits.perAddress)]
        if let user = context.claims?.sub.value {
            counters.append((key: "rl:\(self.limits.name):user:\(user)", limit: self.limits.perUser))
        }
        guard let decision = await self.limiter.check(counters) else { return try await next(request, context) }
        var headers: HTTPFields = [
            .rateLimitLimit: String(decision.limit.limit),
            .rateLimitRemaining: String(decision.remaining),
            .rateLimitReset: String(decision.resetSeconds),
            .rateLimitPolicy: "\(decision.limit.limit);w=\(decision.limit.window.components.seconds)",
        ]
        guard decision.allowed else {
            headers[.retryAfter] = String(decision.resetSeconds)
            throw APIError(status: .tooManyRequests, code: "rate_limited",
                           message: "too many requests; try again in \(decision.resetSeconds) s", headers: headers)
        }
        var response: Response
        do {
            response = try await next(request, context)
        } catch var error as APIError {
            for field in headers { error.headers.append(field) }
            throw error
        }
        for field in headers { response.headers.append(field) }
        return response
    }
}
