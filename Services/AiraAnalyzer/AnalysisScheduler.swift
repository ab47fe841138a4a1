import AiraAnalysis
import AiraCore
import Foundation
import Logging
import Metrics
import ServiceLifecycle
import Synchronization

/// Wakes at each run's due time and at least every check interval. Each check (every instance
/// makes them): start the due days that have no run yet (the newest `catchUpDays`: missed days are
/// caught up), and pick up runs that are requested or were left half-way. Only the instance that
/// takes a day's lock works on it; the others find it taken and move on.
final class AnalysisScheduler: Service, Sendable {
    let schedule: Schedule
    let checkInterval: Duration
    let coordinator: RunCoordinator
    let runs: AnalysisRuns
    let logger: Logger
    private let stopping = Atomic<Bool>(false)
    private static let latestUsers = Gauge(label: "aira_analysis_latest_run_users")
    private static let latestPublished = Gauge(label: "aira_analysis_latest_run_published")
    private static let latestFinished = Gauge(label: "aira_analysis_latest_run_finished")
    private static let latestFailed = Gauge(label: "aira_analysis_latest_run_failed")
    private static let latestCompleted = Gauge(label: "aira_analysis_latest_run_completed")
    private static let latestDuration = Gauge(label: "aira_analysis_latest_run_duration_seconds")

    init(schedule: Schedule, checkInterval: Duration, coordinator: RunCoordinator, runs: AnalysisRuns, logger: Logger) {
        self.schedule = schedule
        self.checkInterval = checkInterval
        self.coordinator = coordinator
        self.runs = runs
        self.logger = logger
    }

    func run() async throws {
        self.logger.info("analysis schedule", metadata: [
            "time": "\(self.schedule.secondsOfDay / 3600):\(self.schedule.secondsOfDay % 3600 / 60)", "timezone": "\(self.schedule.timezoneName)",
            "catch_up_days": "\(self.schedule.catchUpDays)", "next": "\(iso8601(self.schedule.nextTrigger(after: Date())))"])
        // Cancellation too: the service group cancels its services when a sibling fails to start.
        await withTaskCancellationOrGracefulShutdownHandler {
            while !self.stopping.load(ordering: .acquiring) {
                await self.check()
                // Until the next due time or the next check, whichever is first, in short slices
                // so that shutdown is prompt.
                let untilDue = Duration.seconds(max(0.05, self.schedule.nextTrigger(after: Date()).timeIntervalSinceNow))
                let wake = ContinuousClock.now + min(self.checkInterval, untilDue)
                while ContinuousClock.now < wake && !self.stopping.load(ordering: .acquiring) {
                    try? await Task.sleep(for: min(.milliseconds(200), wake - .now))
                }
            }
        } onCancelOrGracefulShutdown: {
            self.stopping.store(true, ordering: .releasing)
            self.coordinator.stop()
        }
    }

    func check() async {
        do {
            let now = Date()
            let due = self.schedule.dueDays(at: now)
            let existing = try await self.runs.existing(due)
            for day in due where !existing.contains(day) {
                guard !self.stopping.load(ordering: .acquiring) else { return }
                // Started within a check interval of its due time: on schedule; later: caught up.
                let late = now.timeIntervalSince(self.schedule.dueAt(day)) > max(60, self.checkInterval.seconds * 2)
                try await self.coordinator.drive(day, trigger: late ? "catch_up" : "schedule", timezone: self.schedule.timezoneName)
            }
            for run in try await self.runs.unfinished() {
                guard !self.stopping.load(ordering: .acquiring) else { return }
                try await self.coordinator.drive(run.day, trigger: run.trigger, timezone: run.timezone)
            }
            if let latest = try await self.runs.list(limit: 1).first {
                Self.latestUsers.record(latest.usersTotal)
                Self.latestPublished.record(latest.published)
                Self.latestFinished.record(latest.finished)
                Self.latestFailed.record(latest.failed)
                Self.latestCompleted.record(latest.status == .completed ? 1 : 0)
                Self.latestDuration.record(Double(latest.durationMs ?? 0) / 1000)
            }
        } catch {
            self.logger.warning("analysis check failed; retrying at the next check", metadata: [LogKey.error: "\(error)"])
        }
    }
}
