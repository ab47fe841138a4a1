import AiraCore
import Synchronization

/// The connection state other threads may read (readiness, waits), written by the owner thread.
final class ConnectionStatusBox: WaitingLine {
    struct LineState {
        var connected = false
        var closed = false
        var lastError: String?
        var node: AMQPConfiguration.Node?
        /// Callers waiting for the connection to be up (or closed for good).
        var waitingForConnection = Waiters<Void>()
        /// Callers waiting for it to be closed.
        var waitingForClose = Waiters<Void>()
        var lossObservers: [@Sendable (String) -> Void] = []
    }

    private let state = Mutex(LineState())
    private let timer = DeadlineTimer()

    func withLineState<R: Sendable>(_ body: (inout LineState) -> R) -> R { self.state.withLock { body(&$0) } }

    var isConnected: Bool { self.state.withLock { $0.connected } }
    var isClosed: Bool { self.state.withLock { $0.closed } }
    var lastError: String? { self.state.withLock { $0.lastError } }
    var node: AMQPConfiguration.Node? { self.state.withLock { $0.node } }

    /// The node the connection reached (set just before it is reported connected).
    func connected(to node: AMQPConfiguration.Node) { self.state.withLock { $0.node = node } }

    func update(connected: Bool, closed: Bool, lastError: String? = nil) {
        let (waiters, closedWaiters, lost) = self.state.withLock { state in
            // A connection that was up and is not any more: what waited on it will never hear back.
            let lost = state.connected && !connected ? state.lossObservers : []
            state.connected = connected
            state.closed = closed
            if let lastError { state.lastError = lastError }
            let waiters = connected || closed ? state.waitingForConnection.removeAll() : []
            return (waiters, closed ? state.waitingForClose.removeAll() : [], lost)
        }
        for w in waiters {
            if connected { w.resume() } else { w.resume(throwing: AMQPError.closed) }
        }
        for w in closedWaiters { w.resume() }
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
        try await self.waitInLine(\.waitingForConnection, deadline: .now + timeout, timer: self.timer,
                                  timeout: { [weak self] in AMQPError.connectFailed(self?.lastError ?? "timed out") }) { state in
            if state.connected { return .success(()) }
            if state.closed { return .failure(AMQPError.closed) }
            return nil
        }
    }

    /// Waits until the connection is closed for good.
    func waitUntilClosed() async throws {
        try await self.waitInLine(\.waitingForClose) { $0.closed ? .success(()) : nil }
    }
}
