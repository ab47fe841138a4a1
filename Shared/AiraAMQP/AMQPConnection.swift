import AiraCore
import Foundation
import Logging
import Synchronization

/// A connection to RabbitMQ over rabbitmq-c.
///
/// One dedicated thread owns the C connection and does every blocking call; async callers hand
/// it jobs through a mailbox and are resumed with the result. The thread also reads frames as
/// they arrive (deliveries, publisher confirms, returns, heartbeats) and, when the connection
/// drops, reconnects with backoff and restores each channel: confirm mode, qos, the exchanges,
/// queues and bindings declared through it, and its consumers — whose delivery streams simply
/// go on.
public final class AMQPConnection: Sendable {
    typealias Job = @Sendable (AMQPSession) -> Void

    public let configuration: AMQPConfiguration
    let logger: Logger
    let mailbox = Mailbox<Job>()
    let status = ConnectionStatusBox()
    private let started = Mutex(false)

    /// Creates the connection object; nothing happens until ``start()`` (or `run()` as a Service).
    public init(configuration: AMQPConfiguration, logger: Logger) {
        self.configuration = configuration
        self.logger = logger
    }

    /// Starts the connection thread (idempotent). It connects, and keeps reconnecting, in the background.
    public func start() {
        let first = self.started.withLock { started in
            defer { started = true }
            return !started
        }
        guard first else { return }
        let session = UncheckedBox(AMQPSession(configuration: self.configuration, logger: self.logger,
                                               mailbox: self.mailbox, status: self.status))
        startDedicatedThread(name: "amqp-\(self.configuration.connectionName.replacingOccurrences(of: "aira-", with: ""))") {
            session.value.run()
        }
    }

    /// Starts a connection and waits until it is up.
    public static func connect(configuration: AMQPConfiguration, logger: Logger,
                               timeout: Duration = .seconds(10)) async throws -> AMQPConnection {
        let connection = AMQPConnection(configuration: configuration, logger: logger)
        connection.start()
        do {
            try await connection.waitUntilConnected(timeout: timeout)
        } catch {
            await connection.close()
            throw error
        }
        return connection
    }

    /// True while connected to the broker (readiness).
    public var isConnected: Bool { self.status.isConnected }

    /// Runs `observer` each time the connection is lost or closed after it was up, with the
    /// reason. It runs on the connection's thread: it must be brief and must not block (resuming
    /// continuations is fine). The RPC client uses it to fail calls whose replies died with the
    /// connection, at once instead of at their timeout.
    public func onConnectionLost(_ observer: @escaping @Sendable (String) -> Void) {
        self.status.onLoss(observer)
    }

    /// The last connection error, if any (for logs and readiness details).
    public var lastError: String? { self.status.lastError }
    /// The node of a cluster this connection reached last (``AMQPConfiguration/nodes``).
    public var node: AMQPConfiguration.Node? { self.status.node }

    public func waitUntilConnected(timeout: Duration) async throws {
        try await self.status.waitUntilConnected(timeout: timeout)
    }

    /// Opens a new channel. It stays usable across reconnects (it is reopened and restored).
    public func openChannel() async throws -> AMQPChannel {
        let id = try await self.call { session -> UInt16 in
            // The lowest free number: closed channels' numbers are reused (the broker allows
            // at most channel_max, 2047 by default, open at once).
            guard let id = (1...UInt16(2047)).first(where: { session.channels[$0] == nil }) else {
                throw AMQPError.library(code: -1, "all 2047 channel numbers are in use")
            }
            let channel = ChannelState(id: id)
            session.channels[id] = channel
            guard session.isConnected else {
                session.channels[id] = nil
                throw AMQPError.notConnected
            }
            do {
                try session.openAndRecover(channel)
            } catch {
                session.channels[id] = nil
                throw error
            }
            return id
        }
        return AMQPChannel(id: id, connection: self)
    }

    /// Closes the connection: queued work runs first, in-flight publishes without a confirm
    /// fail with `.closed`, consumers' streams end, and the thread exits.
    public func close() async {
        guard self.started.withLock({ $0 }), !self.status.isClosed else { return }
        try? await self.call { session in session.closing = true }
        // Waited for in a task of its own: closing completes even when the caller is cancelled.
        await Task { [status = self.status] in try? await status.waitUntilClosed() }.value
    }

    // MARK: - Handing work to the owner thread

    func submit(_ job: @escaping Job) -> Bool { self.mailbox.submit(job) }

    func call<T: Sendable>(_ body: @escaping @Sendable (AMQPSession) throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<T, any Error>) in
            let accepted = self.mailbox.submit { session in
                // Synchronous: its request must leave now, not with the rest of the batch.
                session.uncork()
                continuation.resume(with: Result { try body(session) })
            }
            if !accepted { continuation.resume(throwing: AMQPError.closed) }
        }
    }
}

/// Moves the session onto its thread; nothing else ever touches it.
private struct UncheckedBox<T>: @unchecked Sendable {
    let value: T
    init(_ value: T) { self.value = value }
}
