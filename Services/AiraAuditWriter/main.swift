// aira-audit-writer: consumes `audit.events` (bound to `audit.#`: batches and single events) and
// stores each event once in PostgreSQL's `audit_log`, in batches. See docs/workers.md.
import AiraServiceKit

await ServiceHost.main(AuditWriterConfiguration.self) { try await buildAuditWriter($0, logger: $1, registry: $2) }
