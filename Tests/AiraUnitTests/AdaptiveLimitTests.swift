import AiraServiceKit
import Testing

@Suite("AdaptiveLimit: admitted by a learned concurrency limit")
struct AdaptiveLimitTests {
    let target = Duration.seconds(2)

    func limit(initial: Int = 4, minimum: Int = 2, maximum: Int = 100) -> AdaptiveLimit {
        AdaptiveLimit(queue: "test.\(Int.random(in: 0..<1_000_000))",
                      options: .init(targetLatency: self.target, initial: initial, minimum: minimum, maximum: maximum))
    }

    @Test("refuses beyond the limit, admits again once a slot is given back")
    func bound() {
        let l = self.limit(initial: 3)
        #expect(l.enter() && l.enter() && l.enter())
        #expect(!l.enter())
        l.leave(latency: nil)  // a call that said nothing about capacity
        #expect(l.limit == 3)
        #expect(l.enter())
        #expect(!l.enter())
    }

    @Test("isFull says whether a call would be refused, without taking a slot")
    func peek() {
        let l = self.limit(initial: 2)
        #expect(!l.isFull())
        #expect(l.enter())
        #expect(!l.isFull() && !l.isFull())  // asking takes nothing
        #expect(l.enter())
        #expect(l.isFull())
        l.leave(latency: nil)
        #expect(!l.isFull())
    }

    @Test("fast answers while busy raise the limit by one each, up to the maximum")
    func grows() {
        let l = self.limit(initial: 4, maximum: 6)
        for _ in 0..<4 { #expect(l.enter()) }
        l.leave(latency: .milliseconds(100))  // 4 in use of 4: raise
        #expect(l.limit == 5)
        for _ in 0..<10 {
            #expect(l.enter())
            l.leave(latency: .milliseconds(100))
        }
        #expect(l.limit == 6)
    }

    @Test("fast answers while mostly idle do not raise it")
    func idleDoesNotGrow() {
        let l = self.limit(initial: 10)
        for _ in 0..<20 {
            #expect(l.enter())
            l.leave(latency: .milliseconds(10))  // 1 in use of 10
        }
        #expect(l.limit == 10)
    }

    @Test("slow answers and timeouts cut it, at most once per target interval, never below the minimum")
    func shrinks() {
        let l = self.limit(initial: 20, minimum: 2)
        let t0 = ContinuousClock.now
        for _ in 0..<3 { #expect(l.enter()) }
        l.leave(latency: .seconds(3), now: t0)               // over the target: 20 → 18
        #expect(l.limit == 18)
        l.leave(latency: .seconds(3), now: t0 + .seconds(1)) // within the same interval: no second cut
        #expect(l.limit == 18)
        l.leave(latency: .seconds(10), timedOut: true, now: t0 + .seconds(2))  // next interval: 18 → 16.2
        #expect(l.limit == 16)
        for i in 0..<100 {
            #expect(l.enter())
            l.leave(latency: nil, timedOut: true, now: t0 + .seconds(4 + 2 * i))
        }
        #expect(l.limit == 2)
        for _ in 0..<20 { #expect((2...4).contains(l.retryAfter)) }  // the target, plus up to as much at random
    }
}
