import AiraContracts
import AiraMail
import AiraMessaging
import Foundation
import NIOCore
import NIOEmbedded
import Testing

@Suite("Mail: SMTP framing, MIME and templates")
struct MailTests {
    @Test("DATA payload: CRLF line endings, leading dots doubled, terminated by CRLF.CRLF")
    func dotStuffing() {
        let out = String(decoding: SMTPClient.dotStuffed(Array("Hello\n.hidden\r\n..two\nend".utf8)), as: UTF8.self)
        #expect(out == "Hello\r\n..hidden\r\n...two\r\nend\r\n.\r\n")
        let lone = String(decoding: SMTPClient.dotStuffed(Array(".\r\n".utf8)), as: UTF8.self)
        #expect(lone == "..\r\n.\r\n", "a line with only a dot would end the message early")
    }

    @Test("replies: multi-line EHLO answers are one reply; codes decide transient (4xx) and permanent (5xx)")
    func replies() throws {
        let channel = EmbeddedChannel(handler: ByteToMessageHandler(SMTPReplyDecoder()))
        try channel.writeInbound(ByteBuffer(string: "250-mail.example Hello\r\n250-PIPELINING\r\n250-STARTTLS\r\n"))
        #expect(try channel.readInbound(as: SMTPReply.self) == nil, "not complete yet")
        try channel.writeInbound(ByteBuffer(string: "250 AUTH PLAIN LOGIN\r\n451 4.3.0 try"))
        let ehlo = try #require(try channel.readInbound(as: SMTPReply.self))
        #expect(ehlo.code == 250 && ehlo.lines == ["mail.example Hello", "PIPELINING", "STARTTLS", "AUTH PLAIN LOGIN"])
        #expect(SMTPClient.offers(ehlo, "STARTTLS"))
        #expect(!SMTPClient.offers(ehlo, "SMTPUTF8"))
        try channel.writeInbound(ByteBuffer(string: " again later\r\n"))
        let later = try #require(try channel.readInbound(as: SMTPReply.self))
        #expect(SMTPError.rejected(stage: "DATA", reply: later).isTransient)
        #expect(!SMTPError.rejected(stage: "RCPT", reply: SMTPReply(code: 550, lines: ["no"])).isTransient)
        #expect(SMTPError.rejected(stage: "RCPT", reply: SMTPReply(code: 550, lines: ["no"])).code == "smtp_550")
        #expect(throws: SMTPError.self) { try channel.writeInbound(ByteBuffer(string: "hello there\r\n")) }
    }

    @Test("MIME: encoded-word UTF-8 subject, base64 parts in 76-character lines, Message-ID from the queue message id")
    func mime() throws {
        let mail = RenderedMail(subject: "Welcome to Aira ✨", text: "Grüße\n" + String(repeating: "x", count: 200), html: "<p>Grüße</p>")
        let data = MIMEComposer.compose(from: "no-reply@aira.test", fromName: "Aira", to: "a@example.com", mail: mail,
                                        messageID: "abc-123", domain: "aira.test", date: Date(timeIntervalSince1970: 1_795_000_000))
        let text = String(decoding: data, as: UTF8.self)
        #expect(data.allSatisfy { $0 < 0x80 }, "7-bit clean")
        #expect(text.split(separator: "\r\n", omittingEmptySubsequences: false).allSatisfy { $0.utf8.count <= 78 })
        #expect(text.contains("Subject: =?UTF-8?B?\(Data("Welcome to Aira ✨".utf8).base64EncodedString())?="))
        #expect(text.contains("Message-ID: <abc-123@aira.test>"))
        #expect(text.contains("Date: Wed, 18 Nov 2026 11:06:40 +0000"))
        #expect(text.contains("Content-Type: text/plain; charset=utf-8") && text.contains("Content-Type: text/html; charset=utf-8"))
        #expect(MIMEComposer.encodedWord("plain ascii") == "plain ascii")
        // A long non-ASCII subject becomes several words, each within a header line.
        let long = MIMEComposer.encodedWord(String(repeating: "ü", count: 60))
        #expect(long.components(separatedBy: "\r\n ").count == 3)
    }

    @Test("templates: parameters filled (escaped in HTML); unknown template or missing parameter is permanent")
    func templates() throws {
        let templates = MailTemplates(productName: "Aira")
        let mail = try templates.render(EmailMessage(to: "a@example.com", template: "verification",
                                                     parameters: ["verifyUrl": "http://x/verify?token=ev_1&a=<b>", "email": "a@example.com"]))
        #expect(mail.text.contains("http://x/verify?token=ev_1&a=<b>"))
        #expect(mail.html.contains("http://x/verify?token=ev_1&amp;a=&lt;b&gt;"))
        #expect(mail.subject == "Confirm your email address for Aira")
        #expect(throws: PermanentError.self) { try templates.render(EmailMessage(to: "a@b.c", template: "nope", parameters: [:])) }
        do {
            _ = try templates.render(EmailMessage(to: "a@b.c", template: "verification", parameters: ["email": "a@b.c"]))
            Issue.record("expected a permanent error")
        } catch let error as PermanentError {
            #expect(error.code == "missing_parameter" && error.message.contains("verifyUrl"))
        }
    }
}
