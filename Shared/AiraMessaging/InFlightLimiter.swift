import Synchronization

/// Bounds how many handlers run at once, and lets shutdown wait (with a limit) until none do.
final class InFlightLimiter: Sendable {
    private struct State: ~Copyable {
        var inFlight = 0
        var waiters: [CheckedContinuation<Void, Never>] = []
        var idleWaiters: [UInt64: CheckedContinuation<Bool, Never>] = [:]
        var nextID: UInt64 = 0
    }

    private let state = Mutex(State())
    let limit: Int

    init(limit: Int) {
        precondition(limit > 0)
        self.limit = limit
    }

    var inFlight: Int { self.state.withLock { $0.inFlight } }

    /// Takes a slot, waiting while all are taken.
    func acquire() async {
        let acquired = self.state.withLock { state -> Bool in
            guard state.inFlight < self.limit else { return false }
            state.inFlight += 1
            return true
        }
        if acquired { return }
        await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
            let now = self.state.withLock { state -> Bool in
                if state.inFlight < self.limit { state.inFlight += 1; return true }
                state.waiters.append(c)
                return false
            }
            if now { c.resume() }
        }
    }

    /// Gives a slot back (to the next waiter if any).
    func release() {
        let (waiter, idle) = self.state.withLock { state -> (CheckedContinuation<Void, Never>?, [CheckedContinuation<Bool, Never>]) in
            if !state.waiters.isEmpty { return (state.waiters.removeFirst(), []) }
            state.inFlight -= 1
            guard state.inFlight == 0 else { return (nil, []) }
            defer { state.idleWaiters = [:] }
            return (nil, Array(state.idleWaiters.values))
        }
        waiter?.resume()
        for w in idle { w.resume(returning: true) }
    }

    /// Waits until nothing is in flight; false if `timeout` passed first.
    func waitUntilIdle(timeout: Duration) async -> Bool {
        let id: UInt64? = self.state.withLock { state in
            if state.inFlight == 0 { return nil }
            state.nextID += 1
            return state.nextID
        }
        guard let id else { return true }
        let timer = Task { [weak self] in
            try await Task.sleep(for: timeout)
            let w = self?.state.withLock { $0.idleWaiters.removeValue(forKey: id) }
            w?.resume(returning: false)
        }
        defer { timer.cancel() }
        return await withCheckedContinuation { (c: CheckedContinuation<Bool, Never>) in
            let idleNow = self.state.withLock { state -> Bool in
                if state.inFlight == 0 { return true }
                state.idleWaiters[id] = c
                return false
            }
            if idleNow { c.resume(returning: true) }
        }
    }
}
