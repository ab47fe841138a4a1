import DequeModule
import Synchronization

/// Items submitted one at a time by many tasks, taken in batches by a few: a batch is ready when
/// it weighs `maxBatch` (by default each item weighs 1; an item can stand for many rows, e.g. the
/// events of one message) or its oldest item has waited `maxDelay`. Each submitter waits for the
/// result of its own item, so a message handler can return only once its batch is written — or
/// posts it without waiting (`post`), when the taker itself reports failures.
public final class BatchQueue<Item: Sendable, Output: Sendable>: WaitingLine {
    /// One submitted item and the way to answer its submitter (exactly once).
    public struct Entry: Sendable {
        public let item: Item
        /// The item's weight, worked out once when it was submitted.
        let weight: Int
        /// Nil for a posted item: nobody waits for its answer.
        let done: CheckedContinuation<Output, any Error>?
        public func succeed(_ output: Output) { self.done?.resume(returning: output) }
        public func fail(_ error: any Error) { self.done?.resume(throwing: error) }
    }

    public struct LineState {
        var pending = Deque<Entry>()
        var weight = 0
        var count: Int { self.pending.count }
        var firstAt: ContinuousClock.Instant?
        /// Takers waiting for items, or for the batch they have to fill up or fall due.
        var waiters = Waiters<Void>()
        var closed = false
    }

    /// A taker's wait ended at its deadline: the batch filling up is due.
    private struct Due: Error {}

    public let maxBatch: Int
    public let maxDelay: Duration
    /// A batch is also ready once this many items wait, whatever they weigh.
    public let maxItems: Int
    private let weight: @Sendable (Item) -> Int
    private let closedError: @Sendable () -> any Error
    private let state = Mutex(LineState())
    private let timer = DeadlineTimer()

    public func withLineState<R: Sendable>(_ body: (inout LineState) -> R) -> R { self.state.withLock { body(&$0) } }

    /// `weight` is how much of `maxBatch` an item takes (at least 1; one heavier than `maxBatch`
    /// makes a batch of its own). `maxItems` caps the items of a batch and makes it ready when
    /// that many wait: set it to the number of submitters that can be waiting at once (a
    /// consumer's concurrency), so that when all of them are, the batch goes without waiting
    /// `maxDelay` for items that cannot come. `closedError` is what a submission after `close()`
    /// fails with.
    public init(maxBatch: Int, maxDelay: Duration, maxItems: Int = .max, weight: @escaping @Sendable (Item) -> Int = { _ in 1 },
                closedError: @escaping @Sendable () -> any Error) {
        self.maxBatch = max(1, maxBatch)
        self.maxDelay = maxDelay
        self.maxItems = max(1, maxItems)
        self.weight = weight
        self.closedError = closedError
    }

    /// Queues `item` and waits for its batch's answer.
    public func submit(_ item: Item) async throws -> Output {
        try await withCheckedThrowingContinuation { (done: CheckedContinuation<Output, any Error>) in
            if !self.enqueue(item, done: done) { done.resume(throwing: self.closedError()) }
        }
    }

    /// Queues `item` without waiting for its answer (whoever takes the batch deals with a
    /// failure); false when the queue is closed.
    @discardableResult
    public func post(_ item: Item) -> Bool { self.enqueue(item, done: nil) }

    private func enqueue(_ item: Item, done: CheckedContinuation<Output, any Error>?) -> Bool {
        let weight = max(1, self.weight(item))
        let (closed, wake) = self.state.withLock { s -> (Bool, [Waiters<Void>.Continuation]) in
            if s.closed { return (true, []) }
            if s.count == 0 { s.firstAt = .now }
            s.pending.append(Entry(item: item, weight: weight, done: done))
            s.weight += weight
            guard s.count == 1 || s.weight >= self.maxBatch || s.count >= self.maxItems else { return (false, []) }
            return (false, s.waiters.removeAll())
        }
        for w in wake { w.resume() }
        return !closed
    }

    /// Refuses new items and wakes the takers: what is queued is still handed out, then
    /// `nextBatch` returns nil.
    public func close() {
        let wake = self.state.withLock { s -> [Waiters<Void>.Continuation] in
            s.closed = true
            return s.waiters.removeAll()
        }
        for w in wake { w.resume() }
    }

    /// Fails whatever is still queued (after the takers have stopped).
    public func failRemaining(_ error: any Error) {
        let left = self.state.withLock { s in
            defer { s.pending.removeAll(); s.weight = 0 }
            return Array(s.pending)
        }
        for entry in left { entry.fail(error) }
    }

    /// Waits for items, lets the batch fill up to `maxBatch` or `maxDelay`, and takes it. Nil once
    /// closed and drained, or when the taker's task is cancelled and nothing is queued.
    public func nextBatch() async -> [Entry]? {
        // A cancelled taker stops waiting: it takes what is queued at once, then gets nil.
        var cancelled = false
        while true {
            let (batch, firstAt, closed) = self.state.withLock { s -> ([Entry], ContinuousClock.Instant?, Bool) in
                let full = s.weight >= self.maxBatch || s.count >= self.maxItems
                let due = s.firstAt.map { ContinuousClock.now - $0 >= self.maxDelay } ?? false
                if s.count > 0 && (full || due || s.closed || cancelled) {
                    var n = 0, taken = 0
                    repeat {
                        taken += s.pending[n].weight
                        n += 1
                    } while n < s.pending.count && n < self.maxItems && taken + s.pending[n].weight <= self.maxBatch
                    let batch = Array(s.pending.prefix(n))
                    s.pending.removeFirst(n)
                    s.weight -= taken
                    s.firstAt = s.count == 0 ? nil : .now
                    return (batch, nil, s.closed)
                }
                return ([], s.firstAt, s.closed)
            }
            if !batch.isEmpty { return batch }
            if closed || cancelled { return nil }
            // Wait for the first item (no deadline), or for the batch being filled to fill up
            // or fall due at its oldest item's deadline. Anything that changes what is ready
            // (the first item, a full batch, close) wakes every taker, which then looks again.
            do {
                try await self.waitInLine(\.waiters, deadline: firstAt.map { $0 + self.maxDelay }, timer: self.timer, timeout: { Due() }) { s in
                    let full = s.weight >= self.maxBatch || s.count >= self.maxItems
                    return s.closed || (s.count > 0 && (full || s.firstAt != firstAt)) ? .success(()) : nil
                }
            } catch {
                cancelled = error is CancellationError // otherwise Due: look again
            }
        }
    }
}
