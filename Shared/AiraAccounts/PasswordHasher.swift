import HummingbirdBcrypt
import Metrics
import NIOPosix
#if canImport(Glibc)
import Glibc
#endif

/// bcrypt, run on NIO's thread pool: a hash costs 50–250 ms of CPU and must never occupy the
/// cooperative pool (two threads on a 2-core machine).
///
/// Metrics: `aira_bcrypt_seconds_total{op}` (CPU seconds the hashing threads spent hashing and
/// verifying: its rate is the cores bcrypt uses) and `aira_bcrypt_waiting` (calls waiting for a thread).
public struct PasswordHasher: Sendable {
    public let cost: UInt8
    /// The nice value the hashing threads take (Linux: per thread): with a positive one, the
    /// process's event loops — replying, answering probes — and whatever else shares the cores
    /// come before bcrypt; bcrypt still gets every cycle nobody else wants (`AIRA_BCRYPT_NICE`).
    public let niceness: Int32
    let pool: NIOThreadPool

    /// `cost` ≥ 10 in production (`AIRA_BCRYPT_COST`); tests may use 4.
    public init(cost: UInt8 = 10, niceness: Int32 = 0, pool: NIOThreadPool = .singleton) {
        precondition((4...31).contains(cost), "bcrypt cost must be 4...31")
        self.cost = cost
        self.niceness = niceness
        self.pool = pool
    }

    public func hash(_ password: String) async throws -> String {
        let cost = self.cost
        return try await Self.measured(on: self.pool, self.niceness, Self.hashSeconds) { Bcrypt.hash(password, cost: cost) }
    }

    public func verify(_ password: String, hash: String) async throws -> Bool {
        try await Self.measured(on: self.pool, self.niceness, Self.verifySeconds) { Bcrypt.verify(password, hash: hash) }
    }

    private static let hashSeconds = FloatingPointCounter(label: "aira_bcrypt_seconds_total", dimensions: [("op", "hash")])
    private static let verifySeconds = FloatingPointCounter(label: "aira_bcrypt_seconds_total", dimensions: [("op", "verify")])
    private static let waiting = Meter(label: "aira_bcrypt_waiting")

    private static func measured<T: Sendable>(on pool: NIOThreadPool, _ niceness: Int32, _ seconds: FloatingPointCounter,
                                              _ work: @escaping @Sendable () -> T) async throws -> T {
        Self.waiting.increment()
        do {
            return try await pool.runIfActive {
                Self.waiting.decrement()
                #if os(Linux)
                // On Linux the nice value is a thread's, and `who` 0 is the calling thread. Idempotent
                // and cheap next to a hash (a syscall against ~80 ms): set on every call rather than
                // tracking which pool threads have it.
                if niceness != 0 { _ = setpriority(__priority_which_t(PRIO_PROCESS.rawValue), 0, niceness) }
                #endif
                // CPU time of this thread, not wall time: where other work shares the cores (the
                // niced threads wait for them), the counter still says what bcrypt itself used.
                let start = Self.threadCPUSeconds()
                defer { seconds.increment(by: max(0, Self.threadCPUSeconds() - start)) }
                return work()
            }
        } catch {  // the pool was shut down: the call never ran
            Self.waiting.decrement()
            throw error
        }
    }

    /// CPU seconds the calling thread has used (CLOCK_THREAD_CPUTIME_ID).
    static func threadCPUSeconds() -> Double {
        var t = timespec()
        guard clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t) == 0 else { return 0 }
        return Double(t.tv_sec) + Double(t.tv_nsec) / 1e9
    }
}
