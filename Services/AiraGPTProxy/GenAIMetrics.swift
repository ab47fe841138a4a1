import AiraLLM
import Prometheus
import Synchronization

/// The proxy's model metrics in the OpenTelemetry GenAI semantic conventions, as Prometheus
/// names them (docs/operations.md, "Metrics"):
///
/// - `gen_ai_client_operation_duration_seconds{gen_ai_operation_name, gen_ai_request_model, cache, error_type}`:
///   a question from the proxy taking it to its answer (`cache` `hit`, or `miss` for an answer
///   the upstream gave — this question's own call or another's in single flight); failed calls
///   carry `error_type` (the error's code).
/// - `gen_ai_client_token_usage{gen_ai_token_type, gen_ai_operation_name, gen_ai_request_model, cache}`:
///   tokens per answer, `input` and `output` (for a hit: what the cached answer used when made,
///   i.e. what it saved).
/// - `aira_gpt_cost_usd_total{model}`: what the upstream calls cost (price table);
///   `aira_gpt_cost_saved_usd_total{model}`: what answers that cost nothing (cache hits, single-flight
///   followers) would have cost.
///
/// Buckets are the conventions' advisory ones. The handles for a model and cache are made once
/// and kept: the cached-answer path records four values and looks up nothing in the registry.
final class GenAIMetrics: Sendable {
    struct Handles: Sendable {
        let duration: DurationHistogram
        let input: ValueHistogram
        let output: ValueHistogram
        let cost: Counter
    }

    private let registry: PrometheusCollectorRegistry
    private let prices: PriceTable
    /// Per model: the handles of a hit and of a miss (looked up by the model's name alone).
    private let handles = Mutex<[String: (hit: Handles?, miss: Handles?)]>([:])
    private let failures = Mutex<[String: DurationHistogram]>([:])

    static let durationBuckets: [Duration] = [0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92]
        .map { Duration.nanoseconds(Int64($0 * 1e9)) }
    static let tokenBuckets: [Double] = [1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262_144, 1_048_576, 4_194_304]

    init(registry: PrometheusCollectorRegistry, prices: PriceTable) {
        self.registry = registry
        self.prices = prices
    }

    static var durationName: MetricNameDescriptor { MetricNameDescriptor(metricName: "gen_ai_client_operation_duration", unitName: "seconds",
                                                   helpText: "GenAI operation duration (OpenTelemetry gen_ai.client.operation.duration)") }
    static var tokensName: MetricNameDescriptor { MetricNameDescriptor(metricName: "gen_ai_client_token_usage",
                                                 helpText: "Tokens per answer (OpenTelemetry gen_ai.client.token.usage)") }
    static var spentName: MetricNameDescriptor { MetricNameDescriptor(metricName: "aira_gpt_cost_usd_total",
                                                helpText: "What upstream calls cost, in dollars (AIRA_GPT_PRICES)") }
    static var savedName: MetricNameDescriptor { MetricNameDescriptor(metricName: "aira_gpt_cost_saved_usd_total",
                                                helpText: "What answers that cost nothing (cache hits, single-flight followers) would have cost, in dollars") }

    private func handles(model: String, cached: Bool) -> Handles {
        if let found = self.handles.withLock({ cached ? $0[model]?.hit : $0[model]?.miss }) { return found }
        // The model is the caller's choice: past 200 models, new ones share the series "other".
        let crowded = self.handles.withLock { $0.count >= 200 && $0[model] == nil }
        let labels = [("gen_ai_operation_name", "chat"), ("gen_ai_request_model", crowded ? "other" : model), ("cache", cached ? "hit" : "miss")]
        let made = Handles(
            duration: self.registry.makeDurationHistogram(descriptor: Self.durationName, labels: labels, buckets: Self.durationBuckets),
            input: self.registry.makeValueHistogram(descriptor: Self.tokensName, labels: labels + [("gen_ai_token_type", "input")],
                                                    buckets: Self.tokenBuckets),
            output: self.registry.makeValueHistogram(descriptor: Self.tokensName, labels: labels + [("gen_ai_token_type", "output")],
                                                     buckets: Self.tokenBuckets),
            cost: self.registry.makeCounter(descriptor: cached ? Self.savedName : Self.spentName, labels: [("model", crowded ? "other" : model)]))
        return self.handles.withLock { handles in
            if let raced = cached ? handles[model]?.hit : handles[model]?.miss { return raced }
            guard !crowded else { return made }
            if cached { handles[model, default: (nil, nil)].hit = made } else { handles[model, default: (nil, nil)].miss = made }
            return made
        }
    }

    /// An answered question: its duration and tokens; `paid` says whether its cost was spent
    /// (this question's own upstream call) or saved (a cache hit or a single-flight follower).
    func answered(model: String, cached: Bool, paid: Bool, usage: Usage?, duration: Duration) {
        let h = self.handles(model: model, cached: cached)
        h.duration.record(duration)
        guard let usage else { return }
        h.input.record(Double(usage.promptTokens))
        h.output.record(Double(usage.completionTokens))
        guard let price = self.prices.price(model) else { return }
        let dollars = Double(price.cost(prompt: usage.promptTokens, completion: usage.completionTokens)) / 1_000_000
        guard dollars > 0 else { return }
        if paid || cached {
            h.cost.increment(by: dollars)
        } else {
            self.handles(model: model, cached: true).cost.increment(by: dollars)
        }
    }

    /// A question whose upstream call failed, by the error's code.
    func failed(model: String, errorType: String, duration: Duration) {
        let key = model + "\u{1F}" + errorType
        if let found = self.failures.withLock({ $0[key] }) {
            found.record(duration)
            return
        }
        let crowded = self.failures.withLock { $0.count >= 200 }
        let histogram = self.registry.makeDurationHistogram(
            descriptor: Self.durationName,
            labels: [("gen_ai_operation_name", "chat"), ("gen_ai_request_model", crowded ? "other" : model), ("cache", "miss"),
                     ("error_type", errorType)],
            buckets: Self.durationBuckets)
        if !crowded { self.failures.withLock { $0[key] = histogram } }
        histogram.record(duration)
    }
}
