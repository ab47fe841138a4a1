import AiraMessaging
import Foundation

/// Every consumer queue of Aira's topology: what `aira-admin dlq list` lists without names and
/// what the operator console shows. Each has a `.dlq`; work queues also have retry tiers.
public enum AiraTopology {
    /// The queues, RPC ones first. The analysis queue follows `AIRA_ANALYSIS_QUEUE` as the
    /// analyzer does.
    public static func consumerQueues(environment: [String: String] = ProcessInfo.processInfo.environment) -> [QueueSpec] {
        let analysis = environment["AIRA_ANALYSIS_QUEUE"].flatMap { $0.isEmpty ? nil : $0 } ?? "analysis.user"
        return [AuthRPC.credentials, AuthRPC.sessions, GPTRPC.queue,
                AuditEvent.queue, EmailMessage.queue, ThumbnailJob.queue, AnalysisJob.queue(named: analysis)]
    }

    /// The work queue a name stands for (`Q` or `Q.dlq`), if it is one of ``consumerQueues(environment:)``.
    public static func consumerQueue(named name: String) -> QueueSpec? {
        let work = DeadLetterQueues.workQueue(for: name)
        return self.consumerQueues().first { $0.name == work }
    }
}
