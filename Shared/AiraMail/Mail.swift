import AiraContracts
import AiraCore
import AiraMessaging
import Foundation

/// A mail ready to send: subject and both bodies, rendered from a template.
public struct RenderedMail: Sendable {
    public var subject: String
    public var text: String
    public var html: String

    public init(subject: String, text: String, html: String) {
        self.subject = subject
        self.text = text
        self.html = html
    }
}

/// The mail templates. `{{name}}` is replaced by the parameter (HTML-escaped in the HTML body);
/// a template used without one of its parameters is a permanent error (the message is wrong,
/// retrying cannot fix it).
public struct MailTemplates: Sendable {
    public struct Template: Sendable {
        var subject: String
        var text: String
        var html: String
        var required: [String]
    }

    public var productName: String

    public init(productName: String) { self.productName = productName }

    public var templates: [String: Template] {
        [
            "verification": Template(
                subject: "Confirm your email address for {{product}}",
                text: """
                Hello,

                please confirm that {{email}} is your address by opening this link:

                {{verifyUrl}}

                The link works once. If you did not sign up for {{product}}, ignore this mail.
                """,
                html: """
                <p>Hello,</p>
                <p>please confirm that {{email}} is your address:</p>
                <p><a href="{{verifyUrl}}">Confirm my address</a></p>
                <p>The link works once. If you did not sign up for {{product}}, ignore this mail.</p>
                """,
                required: ["verifyUrl", "email"]),
            "welcome": Template(
                subject: "Welcome to {{product}} ✨",
                text: """
                Hello,

                your address {{email}} is confirmed and your {{product}} account is ready.
                Ask the assistant anything, keep playlists and upload your videos.

                — the {{product}} team
                """,
                html: """
                <p>Hello,</p>
                <p>your address {{email}} is confirmed and your {{product}} account is ready.
                Ask the assistant anything, keep playlists and upload your videos.</p>
                <p>— the {{product}} team</p>
                """,
                required: ["email"]),
        ]
    }

    public func render(_ message: EmailMessage) throws -> RenderedMail {
        guard let template = self.templates[message.template] else {
            throw PermanentError(code: "unknown_template",
                                 "no mail template '\(message.template)' (known: \(self.templates.keys.sorted().joined(separator: ", ")))")
        }
        let missing = template.required.filter { (message.parameters[$0] ?? "").isEmpty }
        guard missing.isEmpty else {
            throw PermanentError(code: "missing_parameter", "template '\(message.template)' needs \(missing.joined(separator: ", "))")
        }
        var values = message.parameters
        values["product"] = self.productName
        return RenderedMail(subject: Self.fill(template.subject, values, escape: { $0 }),
                            text: Self.fill(template.text, values, escape: { $0 }),
                            html: Self.fill(template.html, values, escape: Self.escapeHTML))
    }

    public static func fill(_ template: String, _ values: [String: String], escape: (String) -> String) -> String {
        var out = ""
        var rest = Substring(template)
        while let open = rest.range(of: "{{") {
            out += rest[..<open.lowerBound]
            guard let close = rest[open.upperBound...].range(of: "}}") else { rest = rest[open.lowerBound...]; break }
            let name = String(rest[open.upperBound..<close.lowerBound])
            out += values[name].map(escape) ?? ""
            rest = rest[close.upperBound...]
        }
        return out + rest
    }

    public static func escapeHTML(_ s: String) -> String {
        var out = ""
        for c in s {
            switch c {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += "&quot;"
            case "'": out += "&#39;"
            default: out.append(c)
            }
        }
        return out
    }
}

/// Builds the RFC 5322 / MIME message: UTF-8 subject as an encoded word (RFC 2047), a
/// multipart/alternative body with text and HTML parts in base64 (7-bit clean, lines ≤ 76), and a
/// Message-ID derived from the queue message id, so a receiver can tell a duplicate.
public enum MIMEComposer {
    public static func compose(from: String, fromName: String, to: String, mail: RenderedMail, messageID: String, domain: String,
                        date: Date = Date()) -> [UInt8] {
        let boundary = "aira-\(messageID.filter { $0.isLetter || $0.isNumber })"
        var lines = [
            "From: \(Self.encodedWord(fromName)) <\(from)>",
            "To: <\(to)>",
            "Subject: \(Self.encodedWord(mail.subject))",
            "Date: \(Self.rfc5322Date(date))",
            "Message-ID: <\(messageID)@\(domain)>",
            "MIME-Version: 1.0",
            "Content-Type: multipart/alternative; boundary=\"\(boundary)\"",
            "",
        ]
        for (type, body) in [("text/plain", mail.text), ("text/html", mail.html)] {
            lines += ["--\(boundary)", "Content-Type: \(type); charset=utf-8", "Content-Transfer-Encoding: base64", ""]
            lines += Self.base64Lines(Array(body.utf8))
        }
        lines += ["--\(boundary)--", ""]
        return Array(lines.joined(separator: "\r\n").utf8)
    }

    /// ASCII text as is; anything else as `=?UTF-8?B?…?=` words short enough for one header line each.
    public static func encodedWord(_ text: String) -> String {
        if text.unicodeScalars.allSatisfy({ $0.isASCII && $0.value >= 0x20 && $0 != "=" && $0 != "?" }) { return text }
        var words: [String] = []
        var chunk = ""
        for c in text {
            // 45 bytes of UTF-8 encode to 60 base64 characters: the word stays under 76.
            if (chunk + String(c)).utf8.count > 45 {
                words.append(chunk)
                chunk = ""
            }
            chunk.append(c)
        }
        if !chunk.isEmpty { words.append(chunk) }
        return words.map { "=?UTF-8?B?\(Data($0.utf8).base64EncodedString())?=" }.joined(separator: "\r\n ")
    }

    public static func base64Lines(_ bytes: [UInt8]) -> [String] {
        let encoded = Data(bytes).base64EncodedString()
        var out: [String] = []
        var index = encoded.startIndex
        while index < encoded.endIndex {
            let end = encoded.index(index, offsetBy: 76, limitedBy: encoded.endIndex) ?? encoded.endIndex
            out.append(String(encoded[index..<end]))
            index = end
        }
        return out
    }

    /// `Sat, 21 Nov 2026 18:05:41 +0000`.
    public static func rfc5322Date(_ date: Date) -> String {
        let seconds = Int64(date.timeIntervalSince1970.rounded(.down))
        let days = seconds >= 0 ? seconds / 86_400 : (seconds - 86_399) / 86_400
        let secondOfDay = seconds - days * 86_400
        let (y, m, d) = civilDate(daysSinceEpoch: days)
        let weekdays = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"] // 1970-01-01 was a Thursday
        let months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
        func two(_ v: Int64) -> String { v < 10 ? "0\(v)" : "\(v)" }
        let weekday = weekdays[Int(((days % 7) + 7) % 7)]
        return "\(weekday), \(d) \(months[Int(m) - 1]) \(y) \(two(secondOfDay / 3600)):\(two(secondOfDay / 60 % 60)):\(two(secondOfDay % 60)) +0000"
    }
}
