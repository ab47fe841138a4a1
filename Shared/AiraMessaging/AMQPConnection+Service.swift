import AiraAMQP
import ServiceLifecycle

/// As a Service the connection runs until graceful shutdown, then closes. List it first in a
/// ServiceGroup so it shuts down last, after the consumers that use it have drained.
extension AMQPConnection: Service {
    public func run() async throws {
        self.start()
        try? await gracefulShutdown()
        await self.close()
    }
}
