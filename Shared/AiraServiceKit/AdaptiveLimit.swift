import Metrics
import Synchronization

/// A concurrency limit that learns what the service behind a queue can answer in time (AIMD, as
/// in Netflix's concurrency-limits): each call answered within `targetLatency` raises the limit
/// by one (while at least half of it is used); each slower one or a timeout cuts it to
/// `backoff` × itself, at most once per `targetLatency`. Calls beyond the limit are refused at
/// once — 503 with `Retry-After` — instead of queueing behind work that would outlast their
/// deadline.
///
/// Why: a login storm far beyond the bcrypt capacity (about 20 logins/s per 2 cores) otherwise
/// fills the queue with requests that wait their whole 10-s deadline and end as 504s. With the
/// limit, in-flight calls settle near throughput × target, so admitted calls finish in about the
/// target, and the rest learn at once to come back later. Each gateway learns its own limit;
/// together they follow the capacity of however many aira-auth instances run.
///
/// Metrics: `aira_gateway_adaptive_limit{queue}`, `aira_gateway_adaptive_in_flight{queue}`,
/// `aira_gateway_adaptive_shed_total{queue}`.
public final class AdaptiveLimit: Sendable {
    public struct Options: Sendable {
        public var targetLatency: Duration
        public var initial: Int
        public var minimum: Int
        public var maximum: Int
        public var backoff: Double

        public init(targetLatency: Duration, initial: Int = 16, minimum: Int = 2, maximum: Int = 512, backoff: Double = 0.9) {
            self.targetLatency = targetLatency
            self.initial = initial
            self.minimum = minimum
            self.maximum = maximum
            self.backoff = backoff
        }
    }

    public let options: Options
    private struct State {
        var limit: Double
        var inFlight = 0
        var lastCut: ContinuousClock.Instant?
    }
    private let state: Mutex<State>
    private let limitGauge: Gauge
    private let inFlightGauge: Gauge
    private let shed: Counter

    public init(queue: String, options: Options) {
        precondition(options.minimum >= 1 && options.minimum <= options.initial && options.initial <= options.maximum)
        self.options = options
        self.state = Mutex(State(limit: Double(options.initial)))
        self.limitGauge = Gauge(label: "aira_gateway_adaptive_limit", dimensions: [("queue", queue)])
        self.inFlightGauge = Gauge(label: "aira_gateway_adaptive_in_flight", dimensions: [("queue", queue)])
        self.shed = Counter(label: "aira_gateway_adaptive_shed_total", dimensions: [("queue", queue)])
        self.limitGauge.record(options.initial)
        self.inFlightGauge.record(0)
    }

    /// The current limit (for tests and metrics).
    public var limit: Int { self.state.withLock { Int($0.limit) } }

    /// Takes a slot, or returns false (the caller answers 503).
    public func enter() -> Bool {
        let inFlight: Int? = self.state.withLock { s in
            guard s.inFlight < Int(s.limit) else { return nil }
            s.inFlight += 1
            return s.inFlight
        }
        guard let inFlight else {
            self.shed.increment()
            return false
        }
        self.inFlightGauge.record(inFlight)
        return true
    }

    /// Whether a call would be refused now (every slot taken), counting it as shed if so. For a
    /// check before a request's cheaper steps (rate limit, body): a full limit refuses there, in
    /// microseconds, instead of after them; the call itself still takes its slot with ``enter()``.
    public func isFull() -> Bool {
        let full = self.state.withLock { $0.inFlight >= Int($0.limit) }
        if full { self.shed.increment() }
        return full
    }

    /// Gives the slot back. `latency` is the call's whole time; `timedOut` when it hit its deadline.
    /// A call that failed fast for another reason (no consumer, bad input) says nothing about
    /// capacity: pass `latency: nil` to leave the limit alone.
    public func leave(latency: Duration?, timedOut: Bool = false, now: ContinuousClock.Instant = .now) {
        let (limit, inFlight): (Int, Int) = self.state.withLock { s in
            let used = s.inFlight
            s.inFlight -= 1
            if timedOut || (latency.map { $0 > self.options.targetLatency } ?? false) {
                if s.lastCut.map({ now - $0 >= self.options.targetLatency }) ?? true {
                    s.limit = max(Double(self.options.minimum), s.limit * self.options.backoff)
                    s.lastCut = now
                }
            } else if latency != nil, Double(used) * 2 >= s.limit {
                s.limit = min(Double(self.options.maximum), s.limit + 1)
            }
            return (Int(s.limit), s.inFlight)
        }
        self.limitGauge.record(limit)
        self.inFlightGauge.record(inFlight)
    }

    /// Seconds a refused client should wait: about the time the admitted calls take to clear,
    /// plus up to as much again at random, so that a crowd refused together does not come back
    /// together (target 2.5 s: 3–6 s).
    public var retryAfter: Int {
        let base = max(1, Int((self.options.targetLatency / .seconds(1)).rounded(.up)))
        return base + Int.random(in: 0...base)
    }
}
