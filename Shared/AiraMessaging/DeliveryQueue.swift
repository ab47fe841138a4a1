import AiraAMQP
import Synchronization

/// Deliveries waiting for a worker. The connection's thread pushes; `concurrency` worker tasks
/// pull. Its size is bounded by the channel's prefetch (the broker sends no more than that
/// unacknowledged), so it needs no limit of its own.
final class DeliveryQueue: Sendable {
    typealias Item = (delivery: AMQPDelivery, channel: AMQPChannel)

    private struct State: ~Copyable {
        var items: [Item] = []
        var head = 0
        var waiters: [CheckedContinuation<Item?, Never>] = []
        var finished = false
    }

    private let state = Mutex(State())

    func push(_ item: Item) {
        let waiter = self.state.withLock { state -> CheckedContinuation<Item?, Never>? in
            if !state.waiters.isEmpty { return state.waiters.removeLast() }
            state.items.append(item)
            return nil
        }
        waiter?.resume(returning: item)
    }

    /// The next delivery; nil once finished and empty.
    func next() async -> Item? {
        if let item = self.state.withLock({ Self.pop(&$0) }) { return item }
        return await withCheckedContinuation { (c: CheckedContinuation<Item?, Never>) in
            let now: Item?? = self.state.withLock { state in
                if let item = Self.pop(&state) { return .some(item) }
                if state.finished { return .some(nil) }
                state.waiters.append(c)
                return .none
            }
            if let now { c.resume(returning: now) }
        }
    }

    /// No more pushes: waiting workers get nil; buffered items are still handed out.
    func finish() {
        let waiters = self.state.withLock { state in
            state.finished = true
            defer { state.waiters = [] }
            return state.waiters
        }
        for w in waiters { w.resume(returning: nil) }
    }

    private static func pop(_ state: inout State) -> Item? {
        guard state.head < state.items.count else { return nil }
        let item = state.items[state.head]
        state.head += 1
        if state.head == state.items.count {
            state.items.removeAll(keepingCapacity: true)
            state.head = 0
        } else if state.head > 1024 {
            state.items.removeFirst(state.head)
            state.head = 0
        }
        return item
    }
}

/// A one-shot event that tasks can wait for.
final class Signal: Sendable {
    private let state = Mutex<(fired: Bool, waiters: [CheckedContinuation<Void, Never>])>((false, []))

    func fire() {
        let waiters = self.state.withLock { state -> [CheckedContinuation<Void, Never>] in
            guard !state.fired else { return [] }
            state.fired = true
            defer { state.waiters = [] }
            return state.waiters
        }
        for w in waiters { w.resume() }
    }

    func wait() async {
        await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
            let fired = self.state.withLock { state -> Bool in
                if state.fired { return true }
                state.waiters.append(c)
                return false
            }
            if fired { c.resume() }
        }
    }

    /// Waits at most `timeout`; true if it fired.
    func wait(timeout: Duration) async -> Bool {
        await withTaskGroup(of: Bool.self) { group in
            group.addTask { await self.wait(); return true }
            group.addTask { try? await Task.sleep(for: timeout); return false }
            let first = await group.next() ?? false
            if !first { self.fire() } // release the waiting child
            group.cancelAll()
            return first
        }
    }
}
