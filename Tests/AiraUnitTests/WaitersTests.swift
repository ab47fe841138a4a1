import AiraCore
import Synchronization
import Testing

/// A counting semaphore built on the one waiter primitive, as its owners use it.
final class TestSemaphore: WaitingLine {
    struct LineState {
        var free: Int
        var waiters = Waiters<Int>()
    }
    struct TimedOut: Error {}

    private let state: Mutex<LineState>
    private let timer = DeadlineTimer()
    private let handed = Mutex(0)

    init(free: Int) { self.state = Mutex(LineState(free: free)) }

    func withLineState<R: Sendable>(_ body: (inout LineState) -> R) -> R { self.state.withLock { body(&$0) } }

    /// The number of the hand-out that served the caller (0 when it did not wait).
    func acquire(timeout: Duration? = nil) async throws -> Int {
        try await self.waitInLine(\.waiters, deadline: timeout.map { .now + $0 }, timer: self.timer, timeout: { TimedOut() }) { state in
            guard state.free > 0 else { return nil }
            state.free -= 1
            return .success(0)
        }
    }

    func release() {
        let next = self.state.withLock { state -> Waiters<Int>.Continuation? in
            if let next = state.waiters.popFirst() { return next }
            state.free += 1
            return nil
        }
        let n = self.handed.withLock { $0 += 1; return $0 }
        next?.resume(returning: n)
    }

    var waiting: Int { self.state.withLock { $0.waiters.count } }

    func waitUntil(waiting n: Int) async {
        for _ in 0..<2000 where self.waiting != n { try? await Task.sleep(for: .milliseconds(1)) }
    }
}

final class Locked<Value: Sendable>: Sendable {
    let mutex: Mutex<Value>
    init(_ value: Value) { self.mutex = Mutex(value) }
    func withLock<R: Sendable>(_ body: (inout Value) -> R) -> R { self.mutex.withLock { body(&$0) } }
}

@Suite("Waiters: the one waiter primitive")
struct WaitersTests {
    @Test("waiters are served in the order they came")
    func order() async throws {
        let s = TestSemaphore(free: 0)
        let served = Locked<[Int]>([])
        try await withThrowingTaskGroup(of: Void.self) { group in
            for i in 0..<5 {
                group.addTask {
                    _ = try await s.acquire()
                    served.withLock { $0.append(i) }
                }
                await s.waitUntil(waiting: i + 1)
            }
            for n in 1...5 {
                s.release()
                for _ in 0..<1000 where served.withLock({ $0.count }) < n { try await Task.sleep(for: .milliseconds(1)) }
            }
            try await group.waitForAll()
        }
        #expect(served.withLock { $0 } == [0, 1, 2, 3, 4])
    }

    @Test("each waiter gives up at its own deadline, an earlier one first even if it came later; one without a deadline waits on")
    func deadlines() async throws {
        let s = TestSemaphore(free: 0)
        let started = ContinuousClock.now
        async let long: Duration = { do { _ = try await s.acquire(timeout: .seconds(3)) } catch {}; return .now - started }()
        await s.waitUntil(waiting: 1)
        async let short: Duration = { do { _ = try await s.acquire(timeout: .milliseconds(150)) } catch {}; return .now - started }()
        let patient = Task { try await s.acquire() }
        let shortTook = await short
        #expect(shortTook >= .milliseconds(150) && shortTook < .seconds(1), "the later, shorter deadline fired on time: \(shortTook)")
        let longTook = await long
        #expect(longTook >= .seconds(3) && longTook < .seconds(4), "\(longTook)")
        #expect(s.waiting == 1, "the waiter without a deadline is still in line")
        s.release()
        #expect(try await patient.value > 0)
        #expect(s.waiting == 0)
    }

    @Test("a timed-out waiter throws the owner's error and is out of line; a handed-out one is never also timed out")
    func timeoutError() async throws {
        let s = TestSemaphore(free: 0)
        await #expect(throws: TestSemaphore.TimedOut.self) { _ = try await s.acquire(timeout: .milliseconds(50)) }
        #expect(s.waiting == 0)
        let served = Task { try await s.acquire(timeout: .milliseconds(300)) }
        await s.waitUntil(waiting: 1)
        s.release()
        #expect(try await served.value > 0)
        try await Task.sleep(for: .milliseconds(400)) // its deadline passes: nothing happens twice
        #expect(s.waiting == 0)
    }

    @Test("a cancelled waiter leaves the line at once; one cancelled before it waits never joins it")
    func cancellation() async throws {
        let s = TestSemaphore(free: 0)
        let waiter = Task { try await s.acquire(timeout: .seconds(30)) }
        await s.waitUntil(waiting: 1)
        let started = ContinuousClock.now
        waiter.cancel()
        await #expect(throws: CancellationError.self) { _ = try await waiter.value }
        #expect(ContinuousClock.now - started < .milliseconds(500))
        #expect(s.waiting == 0)
        let early = Task {
            withUnsafeCurrentTask { $0?.cancel() }
            return try await s.acquire()
        }
        await #expect(throws: CancellationError.self) { _ = try await early.value }
        #expect(s.waiting == 0)
        // What is free is still handed out without waiting, cancelled or not.
        s.release()
        #expect(try await s.acquire() == 0)
    }

    @Test("no hand-out is lost: 2,000 acquire/release pairs through 3 slots from 50 tasks")
    func noLostWakeUp() async throws {
        let s = TestSemaphore(free: 3)
        let inside = Locked((now: 0, most: 0))
        try await withThrowingTaskGroup(of: Void.self) { group in
            for _ in 0..<50 {
                group.addTask {
                    for _ in 0..<40 {
                        _ = try await s.acquire(timeout: .seconds(20))
                        inside.withLock { $0.now += 1; $0.most = max($0.most, $0.now) }
                        await Task.yield()
                        inside.withLock { $0.now -= 1 }
                        s.release()
                    }
                }
            }
            try await group.waitForAll()
        }
        #expect(inside.withLock { $0.most } <= 3)
        #expect(s.waiting == 0)
        for _ in 0..<3 { #expect(try await s.acquire(timeout: .milliseconds(100)) == 0) }
    }
}
