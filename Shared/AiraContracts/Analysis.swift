import AiraMessaging
import Foundation

/// Analyse one user for one run of the nightly analysis (aira-analyzer publishes one per active
/// user; every analyzer instance consumes them).
public struct AnalysisJob: MessageContract {
    public static let messageType = "analysis.user.v1"
    /// The analysed day, `yyyy-MM-dd` (the run's key).
    public var day: String
    /// The run's generation: a deliberate re-run bumps it, and jobs of older generations are
    /// acknowledged without effect.
    public var generation: Int
    public var userId: UUID

    public init(day: String, generation: Int, userId: UUID) {
        self.day = day
        self.generation = generation
        self.userId = userId
    }

    /// The same job always has the same message id, so a re-published batch is recognisable.
    public var messageID: String { "analysis-\(self.day)-g\(self.generation)-\(self.userId.lowercasedString)" }

    /// The work queue (`AIRA_ANALYSIS_QUEUE` renames it; the routing key is the queue's name).
    public static func queue(named name: String = "analysis.user") -> QueueSpec {
        QueueSpec(name: name, bindings: [name])
    }
}
