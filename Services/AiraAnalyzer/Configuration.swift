import AiraContracts
import AiraAnalysis
import AiraCore
import AiraMessaging
import AiraServiceKit
import Foundation

/// aira-analyzer's configuration (docs/configuration.md, "aira-analyzer").
struct AnalyzerConfiguration: ServiceConfiguration {
    static let serviceName = "aira-analyzer"
    var settings: ServiceSettings
    /// `AIRA_ANALYZER_TIME`, `AIRA_ANALYZER_TIMEZONE`, `AIRA_ANALYZER_CATCH_UP_DAYS`.
    var schedule: Schedule
    /// `AIRA_ANALYZER_CHECK_INTERVAL`: how often the schedule is looked at.
    var checkInterval: Duration
    /// `AIRA_ANALYSIS_QUEUE` with `AIRA_RETRY_TIERS` / `AIRA_MAX_ATTEMPTS` applied.
    var queue: QueueSpec
    /// `AIRA_ANALYSIS_BATCH_SIZE`, `…_BATCH_DELAY`, `…_PARALLEL_BATCHES`, `…_MAX_EVENTS`.
    var batch: AnalysisBatcher.Options
    /// The run lock, the fan-out and the model's sample (`AIRA_ANALYZER_LOCK_*`, `AIRA_ANALYSIS_FANOUT_*`,
    /// `AIRA_ANALYSIS_SAMPLE_USERS`).
    var coordinator: RunCoordinator.Options

    init(environment env: EnvironmentReader) throws {
        // Many handlers in flight, each waiting for its batch: concurrency is the batches' depth.
        self.settings = try ServiceSettings(name: Self.serviceName, defaultPort: 8086,
                                            consumerDefaults: ConsumerOptions(concurrency: 600, prefetch: 600), environment: env)
        self.schedule = try Schedule(environment: env)
        self.checkInterval = try env.duration("AIRA_ANALYZER_CHECK_INTERVAL", default: .seconds(30))
        let queueName = env.string("AIRA_ANALYSIS_QUEUE", default: "analysis.user")
        self.queue = try self.settings.queueSpec(AnalysisJob.queue(named: queueName))
        self.batch = AnalysisBatcher.Options(
            maxBatch: try env.int("AIRA_ANALYSIS_BATCH_SIZE", default: 200, range: 1...5_000),
            maxDelay: try env.duration("AIRA_ANALYSIS_BATCH_DELAY", default: .milliseconds(20)),
            parallelBatches: try env.int("AIRA_ANALYSIS_PARALLEL_BATCHES", default: max(2, ProcessInfo.processInfo.activeProcessorCount),
                                         range: 1...64),
            maxEvents: try env.int("AIRA_ANALYSIS_MAX_EVENTS", default: 20_000, range: 1...10_000_000))
        self.coordinator = RunCoordinator.Options(
            lockPrefix: env.string("AIRA_ANALYZER_LOCK_PREFIX", default: "aira:analysis:lock:"),
            lockTTL: try env.duration("AIRA_ANALYZER_LOCK_TTL", default: .seconds(30)),
            fanOutBatch: try env.int("AIRA_ANALYSIS_FANOUT_BATCH", default: 500, range: 1...10_000),
            fanOutRate: try env.int("AIRA_ANALYSIS_FANOUT_RATE", default: 0, range: 0...1_000_000),
            queue: queueName, instance: "\(ProcessInfo.processInfo.hostName)-\(getpid())",
            sampleUsers: try env.int("AIRA_ANALYSIS_SAMPLE_USERS", default: 20_000, range: 100...100_000_000))
    }
}
