import AiraContracts
import AiraCore
import AiraMessaging
import AiraPostgres
import AiraServiceKit
import Foundation

/// Hands the events of a message (a batch, or a single event) to the batcher and returns when
/// they are committed: the runtime acks after that, so an event is acknowledged only once it is
/// stored. A batched event is keyed by its `id`, a single event by the message id.
struct AuditHandler: MessageHandler {
    let batcher: AuditBatcher

    func handle(_ batch: AuditBatch, context: MessageContext) async throws {
        var rows: [AuditRow] = []
        rows.reserveCapacity(batch.events.count)
        var invalid: [String] = []
        for event in batch.events {
            guard let id = event.id ?? (context.messageID.isEmpty ? nil : context.messageID) else {
                throw PermanentError(code: "missing_message_id", "an audit event needs a message id (it is the idempotency key)")
            }
            guard !event.type.isEmpty, event.type.utf8.count <= 100 else {
                invalid.append(id)
                continue
            }
            rows.append(AuditRow(messageID: id, event: event))
        }
        // The valid events are stored even when others are not: the message then goes to the
        // dead-letter queue naming the rest, and a replay stores nothing twice.
        let refused = try await self.batcher.store(rows)
        if !invalid.isEmpty {
            throw PermanentError(code: "invalid_event", "event type must be 1–100 bytes (events \(Self.list(invalid)))")
        }
        if !refused.isEmpty {
            throw PermanentError(code: "audit_row_refused", "the database refused \(Self.list(refused.map { "\($0.id): \($0.reason)" }))")
        }
    }

    static func list(_ items: [String]) -> String {
        items.count <= 5 ? items.joined(separator: ", ") : items.prefix(5).joined(separator: ", ") + " and \(items.count - 5) more"
    }
}
