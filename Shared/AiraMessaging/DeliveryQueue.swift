import AiraAMQP
import AiraCore
import DequeModule
import Synchronization

/// Deliveries waiting for a worker. The connection's thread pushes; `concurrency` worker tasks
/// pull. Its size is bounded by the channel's prefetch (the broker sends no more than that
/// unacknowledged), so it needs no limit of its own.
final class DeliveryQueue: WaitingLine {
    typealias Item = (delivery: AMQPDelivery, channel: AMQPChannel)

    struct LineState {
        var items = Deque<Item>()
        /// Workers waiting for a delivery.
        var workers = Waiters<Item?>()
        var finished = false
    }

    private let state = Mutex(LineState())

    func withLineState<R: Sendable>(_ body: (inout LineState) -> R) -> R { self.state.withLock { body(&$0) } }

    func push(_ item: Item) {
        let worker = self.state.withLock { state -> Waiters<Item?>.Continuation? in
            if let worker = state.workers.popFirst() { return worker }
            state.items.append(item)
            return nil
        }
        worker?.resume(returning: item)
    }

    /// The next delivery; nil once finished and empty, or when the worker's task is cancelled.
    func next() async -> Item? {
        try? await self.waitInLine(\.workers) { state in
            if let item = state.items.popFirst() { return .success(item) }
            return state.finished ? .success(nil) : nil
        }
    }

    /// No more pushes: waiting workers get nil; buffered items are still handed out.
    func finish() {
        let workers = self.state.withLock { state in
            state.finished = true
            return state.workers.removeAll()
        }
        for w in workers { w.resume(returning: nil) }
    }
}

/// A one-shot event that tasks can wait for.
final class Signal: WaitingLine {
    struct LineState {
        var fired = false
        var waiters = Waiters<Void>()
    }

    private let state = Mutex(LineState())
    private let timer = DeadlineTimer()
    private struct TimedOut: Error {}

    func withLineState<R: Sendable>(_ body: (inout LineState) -> R) -> R { self.state.withLock { body(&$0) } }

    func fire() {
        let waiters = self.state.withLock { state -> [Waiters<Void>.Continuation] in
            guard !state.fired else { return [] }
            state.fired = true
            return state.waiters.removeAll()
        }
        for w in waiters { w.resume() }
    }

    /// Waits until fired (or the task is cancelled).
    func wait() async {
        try? await self.waitInLine(\.waiters) { $0.fired ? .success(()) : nil }
    }

    /// Waits at most `timeout`; true if it fired.
    func wait(timeout: Duration) async -> Bool {
        do {
            try await self.waitInLine(\.waiters, deadline: .now + timeout, timer: self.timer, timeout: { TimedOut() }) {
                $0.fired ? .success(()) : nil
            }
            return true
        } catch {
            return self.state.withLock { $0.fired }
        }
    }
}
