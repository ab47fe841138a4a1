import AiraAMQP
import AiraCore
import Logging
import ServiceLifecycle

/// What a consumer of either kind is made of.
struct ConsumerParts: Sendable {
    let spec: QueueSpec
    let publisher: MessagePublisher
    let engine: ConsumerEngine
    let router: FailureRouter
    let metrics: QueueMetrics
    let logger: Logger

    init(spec: QueueSpec, connection: AMQPConnection, publisher: MessagePublisher, options: ConsumerOptions, logger: Logger) {
        self.spec = spec
        self.publisher = publisher
        self.logger = logger
        self.engine = ConsumerEngine(spec: spec, connection: connection, options: options, logger: logger)
        self.router = FailureRouter(spec: spec, publisher: publisher)
        self.metrics = QueueMetrics(queue: spec.name)
    }
}

/// A consumer of either kind: the engine runs it, and every delivery is counted and timed here;
/// the kind only says what handling a message means.
protocol EngineConsumer: Service, Sendable {
    var parts: ConsumerParts { get }
    func handle(_ message: InboundMessage, delivery: AMQPDelivery, channel: AMQPChannel) async
}

extension EngineConsumer {
    public func run() async throws {
        await self.parts.engine.run { delivery, channel in
            self.parts.metrics.received.increment()
            let started = ContinuousClock.now
            await self.handle(InboundMessage(delivery), delivery: delivery, channel: channel)
            self.parts.metrics.duration.recordNanoseconds((ContinuousClock.now - started).nanoseconds)
        }
    }
}
