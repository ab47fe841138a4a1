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
package final class ConnectionPool<Connection: PooledConnection>: WaitingLine {
    package typealias Factory = @Sendable () async throws -> Connection

    /// What a waiting caller is handed: a connection, or the right to open one.
    package enum Grant: Sendable { case connection(Connection), openNew }
    private enum Decision { case use(Connection), open, wait, shutDown }

    package struct LineState {
        var idle: [Connection] = []
        var open = 0
        var waiters = Waiters<Grant>()
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

    private let state = Mutex(LineState())
    private let timer = DeadlineTimer()
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
    package func withLineState<R: Sendable>(_ body: (inout LineState) -> R) -> R { self.withState(body) }

    private func withState<R>(_ body: (inout LineState) -> R) -> R {
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
        let waiter = self.withState { state -> Waiters<Grant>.Continuation? in
            if let waiter = state.waiters.popFirst() { return waiter }
            state.open -= 1
            return nil
        }
        waiter?.resume(returning: .openNew)
    }

    private func waitForGrant() async throws -> Grant {
        let timeout = self.leaseTimeout
        return try await self.waitInLine(\.waiters, deadline: .now + timeout, timer: self.timer,
                                         timeout: { ConnectionPoolError.leaseTimeout(seconds: timeout.seconds) }) { state in
            if state.shutDown { return .failure(ConnectionPoolError.shutDown) }
            if let c = state.idle.popLast() { return .success(.connection(c)) }
            if state.open < self.maxConnections { state.open += 1; return .success(.openNew) }
            return nil
        }
    }

    private func release(_ connection: Connection) async {
        if connection.isBroken {
            await connection.close()
            self.returnSlot()
            return
        }
        let (waiter, closeIt) = self.withState { state -> (Waiters<Grant>.Continuation?, Bool) in
            if state.shutDown { state.open -= 1; return (nil, true) }
            if let waiter = state.waiters.popFirst() { return (waiter, false) }
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
            defer { state.open -= state.idle.count; state.idle = [] }
            return (state.idle, state.waiters.removeAll())
        }
        for w in waiters { w.resume(throwing: ConnectionPoolError.shutDown) }
        for c in idle { await c.close() }
    }
}
