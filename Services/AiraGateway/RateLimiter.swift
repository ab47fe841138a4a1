import AiraCore
import AiraRedis
import HTTPTypes
import Hummingbird
import Logging
import Metrics

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
            guard let text = env.optionalString(key) else { return fallback }
            guard let limit = RateLimit(text) else { throw ConfigurationError(key: key, value: text, expected: "N/DURATION, e.g. 120/1m") }
            return limit
        }
        let upper = name.uppercased()
        return RateLimitClass(name: name, perUser: try read("AIRA_RATE_LIMIT_\(upper)", user),
                              perAddress: try read("AIRA_RATE_LIMIT_\(upper)_IP", address))
    }
}

/// Fixed-window counters in Redis, shared by every gateway instance: one script increments
/// every counter of a request and sets its expiry atomically (never check-then-set).
struct RateLimiter: Sendable {
    let redis: RedisClient
    let logger: Logger
    private static let errors = Counter(label: "aira_gateway_rate_limit_errors_total")
    private static let limited = Counter(label: "aira_gateway_rate_limited_total")

    struct Decision: Sendable {
        var allowed: Bool
        var limit: RateLimit
        var remaining: Int
        var resetSeconds: Int
    }

    /// Counts the request against each (key, limit) and returns the tightest outcome. Redis
    /// unavailable → allowed (fail open: the API stays up without Redis; logged and counted).
    func check(_ counters: [(key: String, limit: RateLimit)]) async -> Decision? {
        do {
            let reply = try await self.redis.eval(Self.script, keys: counters.map(\.key),
                                                  args: counters.map { String($0.limit.window.milliseconds) }).array ?? []
            guard reply.count == counters.count * 2 else { return nil }
            var tightest: Decision?
            for (i, counter) in counters.enumerated() {
                let count = Int(reply[2 * i].int ?? 0)
                let ttl = max(0, Int(reply[2 * i + 1].int ?? 0))
                let decision = Decision(allowed: count <= counter.limit.limit, limit: counter.limit,
                                        remaining: max(0, counter.limit.limit - count), resetSeconds: max(1, (ttl + 999) / 1000))
                if let t = tightest {
                    if (!decision.allowed && t.allowed) || (decision.allowed == t.allowed && decision.remaining < t.remaining) {
                        tightest = decision
                    }
                } else {
                    tightest = decision
                }
            }
            if tightest?.allowed == false { Self.limited.increment() }
            return tightest
        } catch {
            Self.errors.increment()
            self.logger.warning("rate limiter unavailable: allowing the request", metadata: ["error": "\(error)"])
            return nil
        }
    }

    static let script = RedisScript("""
        local out = {}
        for i, key in ipairs(KEYS) do
            local n = redis.call('INCR', key)
            local ttl = redis.call('PTTL', key)
            if ttl < 0 then
                redis.call('PEXPIRE', key, ARGV[i])
                ttl = tonumber(ARGV[i])
            end
            out[#out + 1] = n
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
