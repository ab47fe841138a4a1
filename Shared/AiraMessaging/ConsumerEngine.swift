import AiraAMQP
import AiraCore
import Foundation
import Logging
import ServiceLifecycle
import Synchronization

/// How a consumer runs: handlers at once, prefetch, and the time shutdown waits for them.
public struct ConsumerOptions: Sendable, Hashable {
    /// Handlers running at the same time in this process.
    public var concurrency: Int
    /// Unacknowledged deliveries the broker sends ahead (≥ concurrency keeps handlers busy).
    public var prefetch: UInt16
    /// On SIGTERM: how long in-flight handlers may take before the rest is left for redelivery.
    public var shutdownTimeout: Duration

    public init(concurrency: Int = 16, prefetch: UInt16 = 64, shutdownTimeout: Duration = .seconds(25)) {
        self.concurrency = max(1, concurrency)
        self.prefetch = max(1, prefetch)
        self.shutdownTimeout = shutdownTimeout
    }

    /// `AIRA_CONCURRENCY`, `AIRA_PREFETCH`, `AIRA_SHUTDOWN_TIMEOUT`.
    public init(environment: EnvironmentReader, defaults: ConsumerOptions = ConsumerOptions()) throws {
        self.init(concurrency: try environment.int("AIRA_CONCURRENCY", default: defaults.concurrency, range: 1...10_000),
                  prefetch: UInt16(try environment.int("AIRA_PREFETCH", default: Int(defaults.prefetch), range: 1...65_535)),
                  shutdownTimeout: try environment.duration("AIRA_SHUTDOWN_TIMEOUT", default: defaults.shutdownTimeout))
    }
}

/// The consuming machinery shared by work-queue consumers and RPC servers: declare the queue's
/// topology, consume with prefetch, run up to `concurrency` handlers at once, set itself up
/// again if the broker cancels the consumer, and on graceful shutdown stop consuming, hand
/// back what has not started, and give in-flight handlers until the timeout.
final class ConsumerEngine: Sendable {
    typealias Process = @Sendable (AMQPDelivery, AMQPChannel) async -> Void

    private struct State: ~Copyable {
        var shuttingDown = false
        var consumer: AMQPConsumer?
        var tasks: [UInt64: Task<Void, Never>] = [:]
        var nextTask: UInt64 = 0
    }

    let spec: QueueSpec
    let connection: AMQPConnection
    let options: ConsumerOptions
    let logger: Logger
    private let state = Mutex(State())

    init(spec: QueueSpec, connection: AMQPConnection, options: ConsumerOptions, logger: Logger) {
        self.spec = spec
        self.connection = connection
        self.options = options
        self.logger = logger
    }

    private var shuttingDown: Bool { self.state.withLock { $0.shuttingDown } }

    func run(_ process: @escaping Process) async {
        let limiter = InFlightLimiter(limit: self.options.concurrency)
        let inFlight = QueueMetrics(queue: self.spec.name).inFlight
        await withGracefulShutdownHandler {
            var attempt = 0
            while let consumer = await self.setUp() {
                self.logger.info("consuming", metadata: [LogKey.queue: "\(self.spec.name)",
                                                         "concurrency": "\(self.options.concurrency)",
                                                         "prefetch": "\(self.options.prefetch)"])
                for await delivery in consumer.deliveries {
                    if self.shuttingDown {
                        consumer.channel.reject(delivery, requeue: true)
                        continue
                    }
                    await limiter.acquire()
                    if self.shuttingDown { // shutdown began while waiting for a free handler
                        limiter.release()
                        consumer.channel.reject(delivery, requeue: true)
                        continue
                    }
                    inFlight.record(limiter.inFlight)
                    self.spawn {
                        await process(delivery, consumer.channel)
                        limiter.release()
                    }
                }
                if self.shuttingDown || Task.isCancelled { break }
                // The broker cancelled the consumer (queue deleted?) or the connection closed.
                attempt += 1
                let delay = Backoff().delay(attempt: attempt)
                self.logger.warning("consumer stopped, setting up again", metadata: [LogKey.queue: "\(self.spec.name)"])
                try? await Task.sleep(for: delay)
            }
        } onGracefulShutdown: {
            let consumer = self.state.withLock { state in
                state.shuttingDown = true
                return state.consumer
            }
            if let consumer { consumer.channel.requestCancel(consumerTag: consumer.tag) }
        }

        let pending = limiter.inFlight
        if pending > 0 {
            self.logger.info("draining in-flight handlers", metadata: [LogKey.queue: "\(self.spec.name)", "in_flight": "\(pending)"])
        }
        if await !limiter.waitUntilIdle(timeout: self.options.shutdownTimeout) {
            self.logger.warning("shutdown timeout: handlers still running are cancelled; their messages will be redelivered",
                                metadata: [LogKey.queue: "\(self.spec.name)", "in_flight": "\(limiter.inFlight)"])
            let tasks = self.state.withLock { Array($0.tasks.values) }
            for t in tasks { t.cancel() }
        }
        if let consumer = self.state.withLock({ $0.consumer }) { await consumer.channel.close() }
        self.logger.info("consumer stopped", metadata: [LogKey.queue: "\(self.spec.name)"])
    }

    /// Starts a handler task, tracked until it ends (so shutdown can cancel stragglers). The
    /// task is created inside the lock: its own removal, which needs the lock, comes after.
    private func spawn(_ body: @escaping @Sendable () async -> Void) {
        self.state.withLock { state in
            state.nextTask += 1
            let id = state.nextTask
            state.tasks[id] = Task {
                await body()
                _ = self.state.withLock { $0.tasks.removeValue(forKey: id) }
            }
        }
    }

    /// Declares the topology and starts consuming; retries with backoff until it works, the
    /// connection is closed, or shutdown begins (then nil).
    private func setUp() async -> AMQPConsumer? {
        var attempt = 0
        while !self.shuttingDown && !Task.isCancelled {
            var channel: AMQPChannel?
            do {
                try await self.connection.waitUntilConnected(timeout: .seconds(5))
                let ch = try await self.connection.openChannel()
                channel = ch
                try await self.spec.declare(on: ch)
                try await ch.setPrefetch(self.options.prefetch)
                let consumer = try await ch.consume(queue: self.spec.name)
                let cancelNow = self.state.withLock { state in
                    state.consumer = consumer
                    return state.shuttingDown
                }
                if cancelNow { consumer.channel.requestCancel(consumerTag: consumer.tag) }
                return consumer
            } catch AMQPError.closed {
                return nil
            } catch {
                await channel?.close()
                attempt += 1
                let delay = Backoff(initial: .milliseconds(200), maximum: .seconds(5)).delay(attempt: attempt)
                self.logger.warning("cannot start consumer, retrying",
                                    metadata: [LogKey.queue: "\(self.spec.name)", LogKey.error: "\(error)",
                                               "retry_in_ms": "\(delay.milliseconds)"])
                try? await Task.sleep(for: delay)
            }
        }
        return nil
    }
}
