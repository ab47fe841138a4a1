extension Duration {
    /// The duration in whole nanoseconds (for metric timers).
    package var nanoseconds: Int64 {
        let (s, atto) = self.components
        return s * 1_000_000_000 + atto / 1_000_000_000
    }

    /// The duration in seconds, as a Double.
    package var seconds: Double {
        let (s, atto) = self.components
        return Double(s) + Double(atto) / 1e18
    }

    /// Whole milliseconds (rounded down, at least 0).
    package var milliseconds: Int64 {
        let (s, atto) = self.components
        return max(0, s * 1000 + atto / 1_000_000_000_000_000)
    }

    /// The parts of a C `struct timeval` (the C clients' timeouts: rabbitmq-c, hiredis), whole
    /// milliseconds: `timeval(tv_sec: d.timeval.seconds, tv_usec: d.timeval.microseconds)`. Parts,
    /// not an initialiser on `timeval`: one declared here was not found by the hiredis call sites.
    package var timeval: (seconds: Int, microseconds: Int) {
        let us = self.milliseconds * 1000
        return (Int(us / 1_000_000), Int(us % 1_000_000))
    }
}
