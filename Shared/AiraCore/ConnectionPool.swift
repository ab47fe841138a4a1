import Synchronization

/// A connection that a ``ConnectionPool`` can hand out.
package protocol PooledConnection: AnyObject, Sendable {
    /// True once an I/O error left the connection unusable; the pool then drops it.
    var isBroken: Bool { get }
    func close() async
}

/// Errors of the pool itself (the connection's own errors pass through unchanged).
package enum ConnectionPoolError: Error, CustomStringConvertible {
    case leaseTimeout(seconds: Double)
    case shutDown

    package var description: String {
        switch self {
        case .leaseTimeout(let s): "no connection became free within \(s)s (pool exhausted)"
        case .shutDown: "connection pool is shut down"
        }
    }
}

/// A bounded pool: up to `maxConnections` opened on demand, reused while healthy, and waiters
/// served in order with a time limit. Opening happens outside the lock; a failure to open is the
/// caller's error at once (a dead server fails fast instead of queueing callers).
package final class ConnectionPool<Connection: PooledConnection>: Sendable {
    package typealias Factory = @Sendable () async throws -> Connection

    private enum Grant { case connection(Connection), openNew }
    private enum Decision { case use(Connection), open, wait, shutDown }

    private struct State: ~Copyable {
        var idle: [Connection] = []
        var open = 0
        var waiters: [(id: UInt64, continuation: CheckedContinuation<Grant, any Error>)] = []
        var nextWaiterID: UInt64 = 0
        var shutDown = false
    }

    /// The pool's use after a change: connections leased (or being opened for a caller), and
    /// callers waiting for one. For gauges: the observer runs under the pool's lock, in order, so
    /// it must be quick and must not call the pool.
    package struct Usage: Sendable, Equatable {
        package var leased: Int
        package var waiting: Int
        package init(leased: Int, waiting: Int) {
            self.leased = leased
            self.waiting = waiting
        }
    }
    package typealias Observer = @Sendable (Usage) -> Void

    private let state = Mutex(State())
    private let factory: Factory
    private let observer: Observer?
    package let maxConnections: Int
    package let leaseTimeout: Duration

    package init(maxConnections: Int, leaseTimeout: Duration, observer: Observer? = nil, factory: @escaping Factory) {
        precondition(maxConnections > 0)
        self.maxConnections = maxConnections
        self.leaseTimeout = leaseTimeout
        self.observer = observer
        self.factory = factory
        observer?(Usage(leased: 0, waiting: 0))
    }

    /// Every change of state goes through here, so the observer sees each one.
    private func withState<R>(_ body: (inout State) -> R) -> R {
        self.state.withLock { state in
            let result = body(&state)
            self.observer?(Usage(leased: state.open - state.idle.count, waiting: state.waiters.count))
            return result
        }
    }

    /// Leases a connection for the duration of `body`.
    package func withConnection<T: Sendable>(_ body: (Connection) async throws -> T) async throws -> T {
        let connection = try await self.lease()
        do {
            let result = try await body(connection)
            await self.release(connection)
            return result
        } catch {
            await self.release(connection)
            throw error
        }
    }

    /// How many connections are open and idle right now (for metrics and tests).
    package var counts: (open: Int, idle: Int) { self.state.withLock { ($0.open, $0.idle.count) } }

    private func lease() async throws -> Connection {
        let decision: Decision = self.withState { state in
            if state.shutDown { return .shutDown }
            while let c = state.idle.popLast() {
                if !c.isBroken { return .use(c) }
                state.open -= 1
            }
            if state.open < self.maxConnections { state.open += 1; return .open }
            return .wait
        }
        switch decision {
        case .use(let c): return c
        case .shutDown: throw ConnectionPoolError.shutDown
        case .open: return try await self.openConnection()
        case .wait:
            switch try await self.waitForGrant() {
            case .connection(let c): return c
            case .openNew: return try await self.openConnection()
            }
        }
    }

    /// Opens a connection for a slot already counted in `open`; gives the slot back on failure.
    private func openConnection() async throws -> Connection {
        do {
            return try await self.factory()
        } catch {
            self.returnSlot()
            throw error
        }
    }

    private func returnSlot() {
        let waiter = self.withState { state -> CheckedContinuation<Grant, any Error>? in
            if !state.waiters.isEmpty { return state.waiters.removeFirst().continuation }
            state.open -= 1
            return nil
        }
        waiter?.resume(returning: .openNew)
    }

    private func waitForGrant() async throws -> Grant {
        let id = self.withState { state -> UInt64 in
            state.nextWaiterID += 1
            return state.nextWaiterID
        }
        let timeout = self.leaseTimeout
        let timer = Task { [weak self] in
            try await Task.sleep(for: timeout)
            self?.failWaiter(id, with: ConnectionPoolError.leaseTimeout(seconds: timeout.seconds))
        }
        defer { timer.cancel() }
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { continuation in
                let immediate: Result<Grant, any Error>? = self.withState { state in
                    if state.shutDown { return .failure(ConnectionPoolError.shutDown) }
                    if let c = state.idle.popLast() { return .success(.connection(c)) }
                    if state.open < self.maxConnections { state.open += 1; return .success(.openNew) }
                    state.waiters.append((id, continuation))
                    return nil
                }
                if let immediate { continuation.resume(with: immediate) }
            }
        } onCancel: {
            self.failWaiter(id, with: CancellationError())
        }
    }

    private func failWaiter(_ id: UInt64, with error: any Error) {
        let waiter = self.withState { state -> CheckedContinuation<Grant, any Error>? in
            guard let index = state.waiters.firstIndex(where: { $0.id == id }) else { return nil }
            return state.waiters.remove(at: index).continuation
        }
        waiter?.resume(throwing: error)
    }

    private func release(_ connection: Connection) async {
        if connection.isBroken {
            await connection.close()
            self.returnSlot()
            return
        }
        let (waiter, closeIt) = self.withState { state -> (CheckedContinuation<Grant, any Error>?, Bool) in
            if state.shutDown { state.open -= 1; return (nil, true) }
            if !state.waiters.isEmpty { return (state.waiters.removeFirst().continuation, false) }
            state.idle.append(connection)
            return (nil, false)
        }
        if closeIt { await connection.close() }
        waiter?.resume(returning: .connection(connection))
    }

    /// Closes idle connections, fails waiters, and refuses new leases. Leased connections are
    /// closed when they come back.
    package func shutdown() async {
        let (idle, waiters) = self.withState { state in
            state.shutDown = true
            defer { state.open -= state.idle.count; state.idle = []; state.waiters = [] }
            return (state.idle, state.waiters)
        }
        for w in waiters { w.continuation.resume(throwing: ConnectionPoolError.shutDown) }
        for c in idle { await c.close() }
    }
}
