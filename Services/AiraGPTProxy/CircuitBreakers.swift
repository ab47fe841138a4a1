import AiraCore
import AiraRedis
import Crypto
import Foundation
import Logging
import Metrics
import Synchronization

/// A circuit breaker per upstream endpoint, its state shared by every proxy through Redis
/// (docs/gpt.md, "Several upstreams"):
///
/// - **closed**: calls go through. Each failure that is the upstream's fault (connection
///   refused or lost, timeout, 5xx, 429, a stream cut off) counts in `gpt:breaker:{name}:{digest}:failures`,
///   which expires `window` after the first; at `failures` of them the circuit opens.
/// - **open** (`gpt:breaker:{name}:open`, expiring after `cooldown`): no proxy calls the endpoint.
/// - **half-open** (`…:tripped` left, `…:open` expired): one call at a time, across all proxies,
///   may try it (`…:probe`, `SET NX`); a success closes the circuit, a failure opens it again.
///
/// Each proxy reads the state of every endpoint in one pipeline at most every `refresh`, so a
/// circuit one proxy opens is seen by the others within that; the proxy that opens it sees it at
/// once. While Redis is unavailable the breakers keep the state this proxy last saw and count
/// its own failures in memory (each proxy then opens on its own).
final class CircuitBreakers: Sendable {
    struct Options: Sendable {
        var failures = 5
        var window: Duration = .seconds(10)
        var cooldown: Duration = .seconds(30)
        /// How long a half-open probe may take before another proxy may try.
        var probeTimeout: Duration = .seconds(60)
        var refresh: Duration = .milliseconds(500)
    }

    struct State: Sendable, Equatable {
        var open = false
        var tripped = false
        var failures = 0
    }

    private struct Views {
        var states: [String: State] = [:]
        var fetched: ContinuousClock.Instant?
        /// Circuits this proxy opened while Redis was unavailable, and when their cooldown ends.
        var openedHere: [String: ContinuousClock.Instant] = [:]
    }

    let redis: RedisClient
    let options: Options
    let names: [String]
    /// Each endpoint's Redis key prefix: its name and a digest of its URL and key, so proxies
    /// that call the same server with the same key share a breaker, and nobody else does (two
    /// deployments' "default" upstreams on one Redis, say).
    private let prefixes: [String: String]
    let logger: Logger
    private let views = Mutex(Views())
    private let openGauges: [String: Gauge]
    private let opened: [String: Counter]

    init(redis: RedisClient, endpoints: [UpstreamEndpoint], options: Options, logger: Logger) {
        self.redis = redis
        let names = endpoints.map(\.name)
        self.names = names
        self.prefixes = Dictionary(uniqueKeysWithValues: endpoints.map { e in
            (e.name, "gpt:breaker:\(e.name):" + SHA256.hash(data: Data((e.url + "\n" + (e.apiKey ?? "")).utf8)).hexString.prefix(12))
        })
        self.options = options
        self.logger = logger
        self.openGauges = Dictionary(uniqueKeysWithValues: names.map { ($0, Gauge(label: "aira_gpt_upstream_breaker_open", dimensions: [("upstream", $0)])) })
        self.opened = Dictionary(uniqueKeysWithValues: names.map { ($0, Counter(label: "aira_gpt_upstream_breaker_opened_total", dimensions: [("upstream", $0)])) })
        for gauge in self.openGauges.values { gauge.record(0) }
    }

    /// `gpt:breaker:{name}:{digest}:{part}`.
    func key(_ name: String, _ part: String) -> String { (self.prefixes[name] ?? "gpt:breaker:\(name)") + ":" + part }

    /// Every endpoint's state, read from Redis when the last read is older than `refresh`.
    func states() async -> [String: State] {
        let (states, fetched) = self.views.withLock { ($0.states, $0.fetched) }
        if let fetched, ContinuousClock.now - fetched < self.options.refresh { return states }
        self.views.withLock { $0.fetched = .now }   // one refresh at a time; the others use what is there
        do {
            let replies = try await self.redis.pipeline(self.names.flatMap { name in
                [["EXISTS", self.key(name, "open")], ["EXISTS", self.key(name, "tripped")], ["GET", self.key(name, "failures")]]
            })
            var fresh: [String: State] = [:]
            for (i, name) in self.names.enumerated() {
                fresh[name] = State(open: replies[3 * i].int == 1, tripped: replies[3 * i + 1].int == 1,
                                    failures: Int(replies[3 * i + 2].int ?? 0))
            }
            self.publish(fresh)
            return fresh
        } catch {
            // Redis unavailable: what was last seen, with the cooldowns of circuits opened here
            // ending on time (half-open: the next call is a probe).
            let now = ContinuousClock.now
            let current = self.views.withLock { views -> [String: State] in
                for (name, until) in views.openedHere where until <= now {
                    views.states[name]?.open = false
                    views.openedHere[name] = nil
                }
                return views.states
            }
            self.publish(current)
            return current
        }
    }

    /// Whether a call may go to `name` now: closed, or half-open and this call won the probe.
    func allows(_ name: String) async -> Bool {
        let state = await self.states()[name] ?? State()
        if state.open { return false }
        guard state.tripped else { return true }
        do {
            return try await self.redis.set(self.key(name, "probe"), "1", expire: self.options.probeTimeout, condition: .ifNotExists)
        } catch {
            return true
        }
    }

    /// A call to `name` answered: a circuit that had failures or was tripped closes.
    func succeeded(_ name: String) async {
        let state = self.views.withLock { $0.states[name] } ?? State()
        guard state.tripped || state.failures > 0 else { return }
        self.update(name, State())
        do {
            _ = try await self.redis.send(["DEL", self.key(name, "failures"), self.key(name, "tripped"), self.key(name, "probe")])
            self.logger.info("upstream circuit closed", metadata: ["upstream": "\(name)"])
        } catch {
            self.logger.warning("redis unavailable: a circuit breaker's state was not shared", metadata: [LogKey.error: "\(error)"])
        }
    }

    /// A call to `name` failed by the upstream's fault; opens the circuit at the threshold, or
    /// at once when it was half-open.
    func failed(_ name: String) async {
        let opens: Bool
        do {
            opens = try await self.redis.eval(Self.failScript, keys: ["open", "tripped", "failures", "probe"].map { self.key(name, $0) },
                                              args: [String(self.options.failures), String(self.options.window.milliseconds),
                                                     String(self.options.cooldown.milliseconds)]).int == 1
        } catch {
            // Counted here alone until Redis is back.
            var state = self.views.withLock { $0.states[name] } ?? State()
            state.failures += 1
            let local = state.failures >= self.options.failures || state.tripped
            if local {
                state = State(open: true, tripped: true, failures: 0)
                self.views.withLock { $0.openedHere[name] = .now + self.options.cooldown }
                self.opened[name]?.increment()
            }
            self.update(name, state)
            return
        }
        var state = self.views.withLock { $0.states[name] } ?? State()
        if opens {
            state = State(open: true, tripped: true, failures: 0)
            self.opened[name]?.increment()
            self.logger.warning("upstream circuit opened", metadata: ["upstream": "\(name)", "cooldown": "\(formatDuration(self.options.cooldown))"])
        } else {
            state.failures += 1
        }
        self.update(name, state)
    }

    private func update(_ name: String, _ state: State) {
        self.views.withLock { $0.states[name] = state }
        self.openGauges[name]?.record(state.open ? 1 : 0)
    }

    private func publish(_ states: [String: State]) {
        self.views.withLock { $0.states = states }
        for (name, state) in states { self.openGauges[name]?.record(state.open ? 1 : 0) }
    }

    /// KEYS: open, tripped, failures, probe. ARGV: the threshold, the window (ms), the cooldown (ms).
    /// A failure while half-open (tripped), or the threshold reached, opens the circuit: returns 1.
    static let failScript = RedisScript("""
        local n = redis.call('INCR', KEYS[3])
        if n == 1 then redis.call('PEXPIRE', KEYS[3], ARGV[2]) end
        if redis.call('EXISTS', KEYS[2]) == 1 or n >= tonumber(ARGV[1]) then
          redis.call('SET', KEYS[1], '1', 'PX', ARGV[3])
          redis.call('SET', KEYS[2], '1', 'EX', 86400)
          redis.call('DEL', KEYS[3], KEYS[4])
          return 1
        end
        return 0
        """)
}
