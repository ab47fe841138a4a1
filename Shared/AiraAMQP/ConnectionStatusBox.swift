import Synchronization

/// The connection state other threads may read (readiness, waits), written by the owner thread.
final class ConnectionStatusBox: Sendable {
    private struct State: ~Copyable {
        var connected = false
        var closed = false
        var lastError: String?
        var node: AMQPConfiguration.Node?
        var waiters: [UInt64: CheckedContinuation<Void, any Error>] = [:]
        var nextWaiter: UInt64 = 0
        var lossObservers: [@Sendable (String) -> Void] = []
    }

    private let state = Mutex(State())

    var isConnected: Bool { self.state.withLock { $0.connected } }
    var isClosed: Bool { self.state.withLock { $0.closed } }
    var lastError: String? { self.state.withLock { $0.lastError } }
    var node: AMQPConfiguration.Node? { self.state.withLock { $0.node } }

    /// The node the connection reached (set just before it is reported connected).
    func connected(to node: AMQPConfiguration.Node) { self.state.withLock { $0.node = node } }

    func update(connected: Bool, closed: Bool, lastError: String? = nil) {
        let (waiters, lost) = self.state.withLock { state -> ([CheckedContinuation<Void, any Error>], [@Sendable (String) -> Void]) in
            // A connection that was up and is not any more: what waited on it will never hear back.
            let lost = state.connected && !connected ? state.lossObservers : []
            state.connected = connected
            state.closed = closed
            if let lastError { state.lastError = lastError }
            guard connected || closed else { return ([], lost) }
            defer { state.waiters = [:] }
            return (Array(state.waiters.values), lost)
        }
        for w in waiters {
            if connected { w.resume() } else { w.resume(throwing: AMQPError.closed) }
        }
        let why = lastError ?? (closed ? "connection closed" : "connection lost")
        for observer in lost { observer(why) }
    }

    /// `observer` runs (on the connection's thread: briefly, without blocking) each time the
    /// connection goes from up to down.
    func onLoss(_ observer: @escaping @Sendable (String) -> Void) {
        self.state.withLock { $0.lossObservers.append(observer) }
    }

    /// Waits until connected (or closed, or the timeout passes).
    func waitUntilConnected(timeout: Duration) async throws {
        let id: UInt64? = self.state.withLock { state in
            if state.connected { return nil }
            state.nextWaiter += 1
            return state.nextWaiter
        }
        guard let id else { return }
        let timer = Task { [weak self] in
            try await Task.sleep(for: timeout)
            self?.fail(id, AMQPError.connectFailed(self?.lastError ?? "timed out"))
        }
        defer { timer.cancel() }
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (c: CheckedContinuation<Void, any Error>) in
                let immediate: Result<Void, any Error>? = self.state.withLock { state in
                    if state.connected { return .success(()) }
                    if state.closed { return .failure(AMQPError.closed) }
                    state.waiters[id] = c
                    return nil
                }
                if let immediate { c.resume(with: immediate) }
            }
        } onCancel: {
            self.fail(id, CancellationError())
        }
    }

    private func fail(_ id: UInt64, _ error: any Error) {
        let w = self.state.withLock { $0.waiters.removeValue(forKey: id) }
        w?.resume(throwing: error)
    }
}
