import Synchronization

/// Items submitted one at a time by many tasks, taken in batches by a few: a batch is ready when
/// it holds `maxBatch` items or its oldest item has waited `maxDelay`. Each submitter waits for
/// the result of its own item, so a message handler can return only once its batch is written.
public final class BatchQueue<Item: Sendable, Output: Sendable>: Sendable {
    /// One submitted item and the way to answer its submitter (exactly once).
    public struct Entry: Sendable {
        public let item: Item
        let done: CheckedContinuation<Output, any Error>
        public func succeed(_ output: Output) { self.done.resume(returning: output) }
        public func fail(_ error: any Error) { self.done.resume(throwing: error) }
    }

    private struct State {
        var pending: [Entry] = []
        var firstAt: ContinuousClock.Instant?
        /// Takers waiting for items.
        var waiters: [CheckedContinuation<Void, Never>] = []
        var closed = false
    }

    public let maxBatch: Int
    public let maxDelay: Duration
    private let closedError: @Sendable () -> any Error
    private let state = Mutex(State())

    /// `closedError` is what a submission after `close()` fails with.
    public init(maxBatch: Int, maxDelay: Duration, closedError: @escaping @Sendable () -> any Error) {
        self.maxBatch = max(1, maxBatch)
        self.maxDelay = maxDelay
        self.closedError = closedError
    }

    /// Queues `item` and waits for its batch's answer.
    public func submit(_ item: Item) async throws -> Output {
        try await withCheckedThrowingContinuation { (done: CheckedContinuation<Output, any Error>) in
            let (closed, wake) = self.state.withLock { s -> (Bool, [CheckedContinuation<Void, Never>]) in
                if s.closed { return (true, []) }
                if s.pending.isEmpty { s.firstAt = .now }
                s.pending.append(Entry(item: item, done: done))
                guard s.pending.count == 1 || s.pending.count >= self.maxBatch else { return (false, []) }
                defer { s.waiters.removeAll() }
                return (false, s.waiters)
            }
            if closed { done.resume(throwing: self.closedError()) }
            for w in wake { w.resume() }
        }
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
        let left = self.state.withLock { s in defer { s.pending.removeAll() }; return s.pending }
        for entry in left { entry.fail(error) }
    }

    /// Waits for items, lets the batch fill up to `maxBatch` or `maxDelay`, and takes it. Nil once
    /// closed and drained.
    public func nextBatch() async -> [Entry]? {
        while true {
            let (batch, firstAt, closed) = self.state.withLock { s -> ([Entry], ContinuousClock.Instant?, Bool) in
                let full = s.pending.count >= self.maxBatch
                let due = s.firstAt.map { ContinuousClock.now - $0 >= self.maxDelay } ?? false
                if !s.pending.isEmpty && (full || due || s.closed) {
                    let n = min(s.pending.count, self.maxBatch)
                    let taken = Array(s.pending.prefix(n))
                    s.pending.removeFirst(n)
                    s.firstAt = s.pending.isEmpty ? nil : .now
                    return (taken, nil, s.closed)
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
                        if !s.pending.isEmpty || s.closed { return true }
                        s.waiters.append(c)
                        return false
                    }
                    if ready { c.resume() }
                }
            }
        }
    }
}
