// aira-test-worker: a real consumer process, built like every Aira worker, that the
// integration tests start, scale, kill and stop. What it does with a message is in the message:
//   ok              record it as handled
//   sleep           sleep `sleepMilliseconds`, then record
//   crash           exit the process mid-message (before the ack), every time
//   crash-once      crash the first time this message id is seen, then handle it
//   transient       fail transiently (retry tiers), permanent: fail permanently
// It records in Redis: SADD <key>:done id (idempotent), HINCRBY <key>:by-worker <worker> 1,
// SADD <key>:started id.
//
// Environment (beyond the usual AIRA_*): AIRA_TEST_QUEUE, AIRA_TEST_BINDING, AIRA_TEST_KEY,
// AIRA_WORKER_ID, AIRA_DELIVERY_LIMIT, AIRA_RETRY_TIERS, AIRA_MAX_ATTEMPTS.
import AiraCore
import AiraMessaging
import AiraRedis
import AiraServiceKit
import Foundation
import Logging

struct TestJob: MessageContract {
    static let messageType = "test.job.v1"
    var id: String
    var action: String
    var sleepMilliseconds: Int?
}

struct WorkerHandler: MessageHandler {
    let redis: RedisClient
    let key: String
    let worker: String

    func handle(_ job: TestJob, context: MessageContext) async throws {
        try await self.redis.sadd("\(self.key):started", [job.id])
        switch job.action {
        case "crash":
            context.logger.warning("crashing on purpose", metadata: ["job": "\(job.id)"])
            _exit(3) // like a crash: no cleanup, no ack
        case "crash-once":
            if try await self.redis.set("\(self.key):crashed:\(job.id)", "1", expire: .seconds(600), condition: .ifNotExists) {
                context.logger.warning("crashing on purpose (once)", metadata: ["job": "\(job.id)"])
                _exit(3)
            }
        case "sleep":
            try await Task.sleep(for: .milliseconds(job.sleepMilliseconds ?? 1000))
        case "transient":
            throw TransientError(code: "test_transient", "transient failure (test)")
        case "permanent":
            throw PermanentError(code: "test_permanent", "permanent failure (test)")
        default:
            break
        }
        // Idempotent effect: a redelivered message is counted once in :done.
        if try await self.redis.sadd("\(self.key):done", [job.id]) == 1 {
            _ = try await self.redis.hincrby("\(self.key):by-worker", self.worker, by: 1)
        }
    }
}

do {
    let env = EnvironmentReader()
    let settings = try ServiceSettings(name: "aira-test-worker", defaultPort: 0,
                                       consumerDefaults: ConsumerOptions(concurrency: 4, prefetch: 8, shutdownTimeout: .seconds(10)))
    let (logger, registry) = ServiceHost.bootstrap(settings)
    guard let queue = env.optionalString("AIRA_TEST_QUEUE"), let key = env.optionalString("AIRA_TEST_KEY") else {
        throw ConfigurationError(key: "AIRA_TEST_QUEUE/AIRA_TEST_KEY", value: "", expected: "both set")
    }
    let spec = QueueSpec(name: queue, bindings: [env.string("AIRA_TEST_BINDING", default: "\(queue).key")],
                         retry: RetryPolicy(tiers: try env.durations("AIRA_RETRY_TIERS", default: [.milliseconds(200)]),
                                            maxAttempts: try env.int("AIRA_MAX_ATTEMPTS", default: 3, range: 1...100)),
                         deliveryLimit: try env.int("AIRA_DELIVERY_LIMIT", default: 5, range: 1...99))
    let redis = RedisClient(configuration: try settings.redisConfiguration())
    let connection = try await ServiceHost.connectBroker(settings, logger: logger)
    let publisher = try await MessagePublisher.open(on: connection)
    let worker = env.string("AIRA_WORKER_ID", default: "\(getpid())")
    let consumer = QueueConsumer(spec: spec, handler: WorkerHandler(redis: redis, key: key, worker: worker),
                                 connection: connection, publisher: publisher, options: settings.consumer, logger: logger)
    try await ServiceHost.run(ServiceHost.group(settings: settings, logger: logger, registry: registry, connection: connection,
                                                clients: [redis], services: [consumer],
                                                readiness: [ReadinessCheck("broker") { connection.isConnected },
                                                            ReadinessCheck("redis") { await redis.ping() }]),
                              logger: logger)
} catch {
    exitOnStartupFailure("aira-test-worker", error)
}
