import AiraPostgres
import Logging
import Metrics
import ServiceLifecycle
import Synchronization

/// Checks the read replica every `interval` (``PostgresReadRouter/check()``): whether reads may
/// go to it, and how far behind it is. Exposes `aira_gateway_read_replica_usable` (0/1) and
/// `aira_gateway_read_replica_lag_seconds`, and logs each change of mind with its reason.
final class ReplicaWatch: Service, Sendable {
    let router: PostgresReadRouter
    let interval: Duration
    let logger: Logger

    init(router: PostgresReadRouter, interval: Duration, logger: Logger) {
        self.router = router
        self.interval = interval
        self.logger = logger
    }

    func run() async throws {
        guard self.router.replica != nil else {
            // Nothing to watch: every read goes to the primary. A service that returns early
            // would end the gateway, so this one waits for shutdown like the others.
            try? await gracefulShutdown()
            return
        }
        let usable = Gauge(label: "aira_gateway_read_replica_usable")
        let lag = Gauge(label: "aira_gateway_read_replica_lag_seconds")
        let logger = self.logger
        let last = LastDecision()
        await cancelWhenGracefulShutdown {
            await self.router.watch(every: self.interval) { status in
                usable.record(status.usable ? 1 : 0)
                if let seconds = status.lagSeconds { lag.record(seconds) }
                if last.changed(to: status.usable) {
                    if status.usable {
                        logger.notice("reads go to the replica", metadata: ["lagSeconds": "\(status.lagSeconds ?? 0)"])
                    } else {
                        logger.warning("reads go to the primary", metadata: ["reason": "\(status.reason ?? "?")"])
                    }
                }
            }
        }
    }
}

/// The last usable/unusable decision, to log changes only.
private final class LastDecision: Sendable {
    private let value = Mutex<Bool?>(nil)
    func changed(to new: Bool) -> Bool {
        self.value.withLock { old in
            defer { old = new }
            return old != new
        }
    }
}
