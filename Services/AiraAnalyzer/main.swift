// aira-analyzer: the nightly per-user analysis. Every instance runs the schedule (one of them
// wins each day's run and fans it out) and consumes `analysis.user` (all of them share the
// work). See docs/analyzer.md.
import AiraServiceKit

await ServiceHost.main(AnalyzerConfiguration.self) { try await buildAnalyzer($0, logger: $1, registry: $2) }
