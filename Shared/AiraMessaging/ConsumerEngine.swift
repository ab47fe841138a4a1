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
/// topology, consume with prefetch, hand deliveries to `concurrency` worker tasks, set itself up
/// again if the broker cancels the consumer, and on graceful shutdown stop consuming, hand back
/// what has not started, and give in-flight handlers until the timeout.
final class ConsumerEngine: Sendable {
    typealias Process = @Sendable (AMQPDelivery, AMQPChannel) async -> Void

    private struct State: ~Copyable {
        var shuttingDown = false
        var consumer: (channel: AMQPChannel, tag: String)?
        var consumerEnded: Signal?
        var workers: [Task<Void, Never>] = []
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
        let queue = DeliveryQueue()
        let metrics = QueueMetrics(queue: self.spec.name)
        let counters = WorkerCounters(workers: self.options.concurrency)
        let allDone = Signal()

        // The workers: each takes the next delivery and handles it, `concurrency` at once.
        let workers = (0..<self.options.concurrency).map { _ in
            Task {
                while let (delivery, channel) = await queue.next() {
                    if self.shuttingDown {
                        channel.reject(delivery, requeue: true) // not started: back to the queue
                        continue
                    }
                    metrics.inFlight.record(counters.busy.add(1, ordering: .relaxed).newValue)
                    await process(delivery, channel)
                    counters.busy.subtract(1, ordering: .relaxed)
                }
                if counters.running.subtract(1, ordering: .relaxed).newValue == 0 { allDone.fire() }
            }
        }
        self.state.withLock { $0.workers = workers }

        await withTaskCancellationHandler {
            await withGracefulShutdownHandler {
                var attempt = 0
                while let ended = await self.setUp(into: queue) {
                    self.logger.info("consuming", metadata: [LogKey.queue: "\(self.spec.name)",
                                                             "concurrency": "\(self.options.concurrency)",
                                                             "prefetch": "\(self.options.prefetch)"])
                    await ended.wait()
                    if self.shuttingDown || Task.isCancelled { break }
                    // The broker cancelled the consumer (queue deleted?) or the channel closed:
                    // drop that channel (it would otherwise be restored on every reconnect).
                    if let old = self.state.withLock({ $0.consumer }) { await old.channel.close() }
                    attempt += 1
                    self.logger.warning("consumer stopped, setting up again", metadata: [LogKey.queue: "\(self.spec.name)"])
                    try? await Task.sleep(for: Backoff().delay(attempt: attempt))
                }
            } onGracefulShutdown: {
                self.beginShutdown()
            }
        } onCancel: {
            self.beginShutdown()
        }

        queue.finish()
        let inFlight = counters.busy.load(ordering: .relaxed)
        if inFlight > 0 {
            self.logger.info("draining in-flight handlers", metadata: [LogKey.queue: "\(self.spec.name)", "in_flight": "\(inFlight)"])
        }
        if await !allDone.wait(timeout: self.options.shutdownTimeout) {
            self.logger.warning("shutdown timeout: handlers still running are cancelled; their messages will be redelivered",
                                metadata: [LogKey.queue: "\(self.spec.name)", "in_flight": "\(counters.busy.load(ordering: .relaxed))"])
            for w in workers { w.cancel() }
        }
        if let consumer = self.state.withLock({ $0.consumer }) { await consumer.channel.close() }
        self.logger.info("consumer stopped", metadata: [LogKey.queue: "\(self.spec.name)"])
    }

    /// Stops consuming: no new deliveries; workers hand back what is buffered.
    private func beginShutdown() {
        let (consumer, ended) = self.state.withLock { state in
            state.shuttingDown = true
            return (state.consumer, state.consumerEnded)
        }
        if let consumer { consumer.channel.requestCancel(consumerTag: consumer.tag) }
        ended?.fire()
    }

    /// Declares the topology and starts consuming into `queue`; retries with backoff until it
    /// works, the connection is closed, or shutdown begins (then nil). Returns the signal that
    /// fires when this consumer ends.
    private func setUp(into queue: DeliveryQueue) async -> Signal? {
        var attempt = 0
        while !self.shuttingDown && !Task.isCancelled {
            var channel: AMQPChannel?
            do {
                try await self.connection.waitUntilConnected(timeout: .seconds(5))
                let ch = try await self.connection.openChannel()
                channel = ch
                try await self.spec.declare(on: ch)
                try await ch.setPrefetch(self.options.prefetch)
                let ended = Signal()
                let tag = try await ch.consume(queue: self.spec.name, noAck: false,
                                               handler: { delivery in queue.push((delivery, ch)) },
                                               ended: { ended.fire() })
                let cancelNow = self.state.withLock { state in
                    state.consumer = (ch, tag)
                    state.consumerEnded = ended
                    return state.shuttingDown
                }
                if cancelNow {
                    ch.requestCancel(consumerTag: tag)
                    ended.fire()
                }
                return ended
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

/// Handlers busy right now, and workers still running.
private final class WorkerCounters: Sendable {
    let busy = Atomic<Int>(0)
    let running: Atomic<Int>
    init(workers: Int) { self.running = Atomic(workers) }
}
