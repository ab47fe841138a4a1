import AiraCore
import ServiceLifecycle

extension BatchQueue {
    /// The body of a batching `Service`'s `run()`: `takers` loops hand each batch to `handle`
    /// until graceful shutdown (or cancellation: the service group ends when a sibling fails to
    /// start) closes the queue — what is already queued is still handled — and whatever arrives
    /// after the last batch is failed with `late()` (its submitter retries).
    public func serveUntilShutdown(takers: Int, late: @escaping @Sendable () -> any Error,
                                   _ handle: @escaping @Sendable ([Entry]) async -> Void) async {
        await withTaskCancellationOrGracefulShutdownHandler {
            await withTaskGroup(of: Void.self) { group in
                for _ in 0..<max(1, takers) {
                    group.addTask {
                        while let batch = await self.nextBatch() { await handle(batch) }
                    }
                }
            }
        } onCancelOrGracefulShutdown: {
            self.close()
        }
        self.failRemaining(late())
    }
}
