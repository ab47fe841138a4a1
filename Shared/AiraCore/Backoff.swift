/// Exponential backoff with full jitter: attempt n waits a random time in
/// [0, min(maximum, initial × 2ⁿ)], and never less than `minimum`.
package struct Backoff: Sendable {
    package var initial: Duration
    package var maximum: Duration
    package var minimum: Duration

    package init(initial: Duration = .milliseconds(100), maximum: Duration = .seconds(5),
                 minimum: Duration = .milliseconds(10)) {
        self.initial = initial
        self.maximum = maximum
        self.minimum = minimum
    }

    /// The delay before retry number `attempt` (0-based).
    package func delay(attempt: Int) -> Duration {
        let cap = min(self.maximum.seconds, self.initial.seconds * pow2(attempt))
        let jittered = Double.random(in: 0...max(cap, 0))
        return .nanoseconds(Int64(max(jittered, self.minimum.seconds) * 1e9))
    }
}

private func pow2(_ n: Int) -> Double {
    var v = 1.0
    for _ in 0..<min(max(n, 0), 40) { v *= 2 }
    return v
}
