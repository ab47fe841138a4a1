import Synchronization

/// Items submitted one at a time by many tasks, taken in batches by a few: a batch is ready when
/// it weighs `maxBatch` (by default each item weighs 1; an item can stand for many rows, e.g. the
/// events of one message) or its oldest item has waited `maxDelay`. Each submitter waits for the
/// result of its own item, so a message handler can return only once its batch is written — or
/// posts it without waiting (`post`), when the taker itself reports failures.
public final class BatchQueue<Item: Sendable, Output: Sendable>: Sendable {
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

    private struct State {
        /// Queued entries from `head` on (taken ones before it are dropped now and then, not per batch).
        var pending: [Entry] = []
        var head = 0
        var weight = 0
        var count: Int { self.pending.count - self.head }
        var firstAt: ContinuousClock.Instant?
        /// Takers waiting for items.
        var waiters: [CheckedContinuation<Void, Never>] = []
        var closed = false
    }

    public let maxBatch: Int
    public let maxDelay: Duration
    /// A batch is also ready once this many items wait, whatever they weigh.
    public let maxItems: Int
    private let weight: @Sendable (Item) -> Int
    private let closedError: @Sendable () -> any Error
    private let state = Mutex(State())

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
        let (closed, wake) = self.state.withLock { s -> (Bool, [CheckedContinuation<Void, Never>]) in
            if s.closed { return (true, []) }
            if s.count == 0 { s.firstAt = .now }
            s.pending.append(Entry(item: item, weight: weight, done: done))
            s.weight += weight
            guard s.count == 1 || s.weight >= self.maxBatch || s.count >= self.maxItems else { return (false, []) }
            defer { s.waiters.removeAll() }
            return (false, s.waiters)
        }
        for w in wake { w.resume() }
        return !closed
    }

    /// Refuses new items and wakes the takers: what is queued is still handed out, then
    /// `nextBatch` returns nil.
    public func close() {
        let wake = self.state.withLock { s -> [CheckedContinuation<Void, Never>] in
            s.closed = true
            defer { s.waiters.removeAll() }
            return s.waiters
        }
        for w in wake { w.resume() }
    }

    /// Fails whatever is still queued (after the takers have stopped).
    public func failRemaining(_ error: any Error) {
        let left = self.state.withLock { s in
            defer { s.pending.removeAll(); s.head = 0; s.weight = 0 }
            return s.pending[s.head...]
        }
        for entry in left { entry.fail(error) }
    }

    /// Waits for items, lets the batch fill up to `maxBatch` or `maxDelay`, and takes it. Nil once
    /// closed and drained.
    public func nextBatch() async -> [Entry]? {
        while true {
            let (batch, firstAt, closed) = self.state.withLock { s -> ([Entry], ContinuousClock.Instant?, Bool) in
                let full = s.weight >= self.maxBatch || s.count >= self.maxItems
                let due = s.firstAt.map { ContinuousClock.now - $0 >= self.maxDelay } ?? false
                if s.count > 0 && (full || due || s.closed) {
                    var end = s.head, taken = 0
                    repeat {
                        taken += s.pending[end].weight
                        end += 1
                    } while end < s.pending.count && end - s.head < self.maxItems
                        && taken + s.pending[end].weight <= self.maxBatch
                    let batch = Array(s.pending[s.head..<end])
                    s.head = end
                    s.weight -= taken
                    if s.count == 0 {
                        s.pending.removeAll(keepingCapacity: true)
                        s.head = 0
                    } else if s.head >= 4096 && s.head * 2 >= s.pending.count {
                        s.pending.removeFirst(s.head)
                        s.head = 0
                    }
                    s.firstAt = s.count == 0 ? nil : .now
                    return (batch, nil, s.closed)
                }
                return ([], s.firstAt, s.closed)
            }
            if !batch.isEmpty { return batch }
            if closed { return nil }
            if let firstAt {
                // Filling: a short bounded sleep while items keep arriving or the deadline comes.
                let remaining = firstAt + self.maxDelay - .now
                if remaining > .zero { try? await Task.sleep(for: min(remaining, .milliseconds(2))) }
            } else {
                await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
                    let ready = self.state.withLock { s -> Bool in
                        if s.count > 0 || s.closed { return true }
                        s.waiters.append(c)
                        return false
                    }
                    if ready { c.resume() }
                }
            }
        }
    }
}
