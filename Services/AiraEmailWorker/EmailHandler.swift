import AiraContracts
import AiraMail
import AiraCore
import AiraMessaging
import AiraPostgres
import AiraServiceKit
import Foundation
import Logging
import Metrics

/// Sends one queued mail. Order: already sent? (then done) → render (bad template or parameters:
/// permanent) → SMTP (4xx or no connection: transient; 5xx: permanent, with the server's reply)
/// → record the message id. The record is what stops a redelivered message from being sent
/// again; if recording fails after the server accepted the mail, it is retried in place rather
/// than handing the message back for a second send.
struct EmailHandler: MessageHandler {
    let smtp: SMTPClient
    let database: PostgresClient
    let templates: MailTemplates
    let sender: String
    let senderName: String
    let domain: String
    private static let sent = Counter(label: "aira_email_sent_total")
    private static let skipped = Counter(label: "aira_email_duplicates_skipped_total")

    func handle(_ mail: EmailMessage, context: MessageContext) async throws {
        let id = context.messageID
        guard !id.isEmpty else { throw PermanentError(code: "missing_message_id", "a mail needs a message id (its idempotency key)") }
        guard Self.isAddress(mail.to) else { throw PermanentError(code: "invalid_recipient", "'\(mail.to.prefix(100))' is not a mail address") }
        if try await self.database.query("SELECT 1 FROM sent_emails WHERE message_id = \(id)").first != nil {
            Self.skipped.increment()
            context.logger.info("mail already sent, not sending again")
            return
        }
        let rendered = try self.templates.render(mail)
        let data = MIMEComposer.compose(from: self.sender, fromName: self.senderName, to: mail.to, mail: rendered,
                                        messageID: id, domain: self.domain)
        let reply = try await self.smtp.send(from: self.sender, to: mail.to, data: data)
        Self.sent.increment()
        context.logger.info("mail sent", metadata: ["template": "\(mail.template)", "smtp_reply": "\(reply)"])
        var attempt = 0
        while true {
            do {
                try await self.database.query("""
                    INSERT INTO sent_emails (message_id, recipient, template, smtp_reply)
                    VALUES (\(id), \(mail.to), \(mail.template), \(reply.description))
                    ON CONFLICT (message_id) DO NOTHING
                    """)
                return
            } catch {
                attempt += 1
                guard attempt < 20 else {
                    context.logger.error("mail sent but not recorded: a redelivery would send it again", metadata: [LogKey.error: "\(error)"])
                    throw error
                }
                try await Task.sleep(for: Backoff(initial: .milliseconds(100), maximum: .seconds(3)).delay(attempt: attempt))
            }
        }
    }

    /// Something SMTP can carry in `RCPT TO:<…>`: local@domain, no spaces, brackets or line breaks.
    static func isAddress(_ s: String) -> Bool {
        let parts = s.split(separator: "@", omittingEmptySubsequences: false)
        return parts.count == 2 && !parts[0].isEmpty && parts[1].contains(".") && s.utf8.count <= 254
            && !s.unicodeScalars.contains { $0.value <= 0x20 || "<>\"\\(),;:[]".unicodeScalars.contains($0) || $0.value == 0x7F }
    }
}
