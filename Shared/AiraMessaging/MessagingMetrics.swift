import Metrics

/// Per-queue metrics of the consumer runtime. Labels are bounded: queue names and fixed
/// outcome/disposition values, never message ids or error texts.
struct QueueMetrics: Sendable {
    let received: Counter
    let succeeded: Counter
    let retried: Counter
    let deadLettered: [FailurePlan.Disposition: Counter]
    let expired: Counter
    let duration: Metrics.Timer
    let inFlight: Gauge

    init(queue: String) {
        let q = [("queue", queue)]
        self.received = Counter(label: "aira_messages_received_total", dimensions: q)
        self.succeeded = Counter(label: "aira_messages_succeeded_total", dimensions: q)
        self.retried = Counter(label: "aira_messages_retried_total", dimensions: q)
        var dl: [FailurePlan.Disposition: Counter] = [:]
        for d in [FailurePlan.Disposition.permanent, .retriesExhausted, .deliveryLimit] {
            dl[d] = Counter(label: "aira_messages_dead_lettered_total", dimensions: q + [("disposition", d.rawValue)])
        }
        self.deadLettered = dl
        self.expired = Counter(label: "aira_rpc_expired_total", dimensions: q)
        self.duration = Metrics.Timer(label: "aira_handler_duration_seconds", dimensions: q, preferredDisplayUnit: .seconds)
        self.inFlight = Gauge(label: "aira_messages_in_flight", dimensions: q)
    }
}
