import AiraMessaging
import Foundation
import NIOCore
import NIOPosix
import NIOSSL

/// One SMTP reply: a three-digit code and its text lines.
public struct SMTPReply: Sendable, CustomStringConvertible {
    public var code: Int
    public var lines: [String]
    public init(code: Int, lines: [String]) {
        self.code = code
        self.lines = lines
    }
    public var description: String { "\(self.code) \(self.lines.joined(separator: " / "))" }
}

/// What can go wrong talking to the SMTP server. 4xx replies, refused or broken connections and
/// timeouts are worth retrying; a 5xx reply is the server's final word.
public enum SMTPError: ClassifiedError, CustomStringConvertible {
    case rejected(stage: String, reply: SMTPReply)
    case connection(String)
    case timeout(stage: String)
    case protocolViolation(String)
    case tlsRequired

    public var isTransient: Bool {
        switch self {
        case .rejected(_, let reply): reply.code < 500
        case .connection, .timeout, .protocolViolation: true
        case .tlsRequired: false
        }
    }

    public var code: String {
        switch self {
        case .rejected(_, let reply): "smtp_\(reply.code)"
        case .connection: "smtp_connection"
        case .timeout: "smtp_timeout"
        case .protocolViolation: "smtp_protocol"
        case .tlsRequired: "smtp_tls_required"
        }
    }

    public var description: String {
        switch self {
        case .rejected(let stage, let reply): "SMTP server refused \(stage): \(reply)"
        case .connection(let why): "cannot reach the SMTP server: \(why)"
        case .timeout(let stage): "SMTP server did not answer \(stage) in time"
        case .protocolViolation(let why): "SMTP protocol error: \(why)"
        case .tlsRequired: "the SMTP server does not offer STARTTLS and AIRA_SMTP_TLS=required"
        }
    }
}

/// How to reach the SMTP server.
public struct SMTPSettings: Sendable {
    public enum TLSMode: String, Sendable { case off, starttls, required }
    public var host: String
    public var port: Int
    public var tls: TLSMode
    /// Check the server's certificate (off only for a development server with a self-signed one).
    public var verifyCertificate: Bool
    public var username: String?
    public var password: String?
    /// The name this client gives in EHLO.
    public var heloName: String
    public var timeout: Duration

    public init(host: String, port: Int, tls: TLSMode, verifyCertificate: Bool, username: String?, password: String?,
                heloName: String, timeout: Duration) {
        self.host = host
        self.port = port
        self.tls = tls
        self.verifyCertificate = verifyCertificate
        self.username = username
        self.password = password
        self.heloName = heloName
        self.timeout = timeout
    }
}

/// A small SMTP client (RFC 5321) on SwiftNIO: EHLO, STARTTLS when offered, AUTH PLAIN/LOGIN when
/// configured, MAIL/RCPT/DATA with dot-stuffing, QUIT. One connection per message: mail volume
/// is low and every message gets a clean session.
public struct SMTPClient: Sendable {
    public let settings: SMTPSettings
    private let sslContext: NIOSSLContext?

    public init(settings: SMTPSettings) throws {
        self.settings = settings
        if settings.tls == .off {
            self.sslContext = nil
        } else {
            var tls = TLSConfiguration.makeClientConfiguration()
            if !settings.verifyCertificate { tls.certificateVerification = .none }
            self.sslContext = try NIOSSLContext(configuration: tls)
        }
    }

    /// Delivers `data` (a complete RFC 5322 message) from `sender` to `recipient`; returns the
    /// server's reply to the end of DATA (it names the queued message).
    public func send(from sender: String, to recipient: String, data: [UInt8]) async throws -> SMTPReply {
        let session = try await SMTPSession.connect(host: self.settings.host, port: self.settings.port, timeout: self.settings.timeout)
        do {
            let reply = try await self.deliver(session, from: sender, to: recipient, data: data)
            _ = try? await session.command("QUIT", stage: "QUIT")
            session.close()
            return reply
        } catch {
            session.close()
            throw error
        }
    }

    private func deliver(_ session: SMTPSession, from sender: String, to recipient: String, data: [UInt8]) async throws -> SMTPReply {
        try Self.expect(await session.command(nil, stage: "the greeting"), 220, "the connection")
        var features = try Self.expect(await session.command("EHLO \(self.settings.heloName)", stage: "EHLO"), 250, "EHLO")
        var secure = false
        if self.settings.tls != .off {
            if Self.offers(features, "STARTTLS"), let sslContext {
                try Self.expect(await session.command("STARTTLS", stage: "STARTTLS"), 220, "STARTTLS")
                try await session.startTLS(context: sslContext, serverHostname: self.settings.host)
                features = try Self.expect(await session.command("EHLO \(self.settings.heloName)", stage: "EHLO"), 250, "EHLO after STARTTLS")
                secure = true
            } else if self.settings.tls == .required {
                throw SMTPError.tlsRequired
            }
        }
        if let username = self.settings.username {
            guard secure || self.settings.tls == .off else {
                throw SMTPError.protocolViolation("refusing to send credentials without TLS (set AIRA_SMTP_TLS=off to allow it)")
            }
            try await self.authenticate(session, features: features, username: username, password: self.settings.password ?? "")
        }
        try Self.expect(await session.command("MAIL FROM:<\(sender)>", stage: "MAIL FROM"), 250, "the sender")
        let rcpt = try await session.command("RCPT TO:<\(recipient)>", stage: "RCPT TO")
        guard rcpt.code == 250 || rcpt.code == 251 else { throw SMTPError.rejected(stage: "the recipient", reply: rcpt) }
        try Self.expect(await session.command("DATA", stage: "DATA"), 354, "DATA")
        return try Self.expect(await session.raw(Self.dotStuffed(data), stage: "the end of DATA"), 250, "the message")
    }

    private func authenticate(_ session: SMTPSession, features: SMTPReply, username: String, password: String) async throws {
        let mechanisms = features.lines.first { $0.uppercased().hasPrefix("AUTH ") }?.uppercased().split(separator: " ").dropFirst() ?? []
        if mechanisms.contains("PLAIN") {
            let token = Data(([0] + Array(username.utf8) + [0] + Array(password.utf8))).base64EncodedString()
            try Self.expect(await session.command("AUTH PLAIN \(token)", stage: "AUTH"), 235, "the credentials")
        } else if mechanisms.contains("LOGIN") {
            try Self.expect(await session.command("AUTH LOGIN", stage: "AUTH"), 334, "AUTH LOGIN")
            try Self.expect(await session.command(Data(username.utf8).base64EncodedString(), stage: "AUTH"), 334, "the user name")
            try Self.expect(await session.command(Data(password.utf8).base64EncodedString(), stage: "AUTH"), 235, "the credentials")
        } else {
            throw SMTPError.protocolViolation("credentials are configured but the server offers neither AUTH PLAIN nor AUTH LOGIN")
        }
    }

    @discardableResult
    public static func expect(_ reply: SMTPReply, _ code: Int, _ stage: String) throws -> SMTPReply {
        guard reply.code == code else { throw SMTPError.rejected(stage: stage, reply: reply) }
        return reply
    }

    public static func offers(_ ehlo: SMTPReply, _ keyword: String) -> Bool {
        ehlo.lines.dropFirst().contains { $0.uppercased() == keyword || $0.uppercased().hasPrefix(keyword + " ") }
    }

    /// The DATA payload: line endings made CRLF, a `.` doubled at the start of every line
    /// (RFC 5321 4.5.2), and the terminating `CRLF.CRLF`.
    public static func dotStuffed(_ data: [UInt8]) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(data.count + data.count / 64 + 8)
        var atLineStart = true
        var previous: UInt8 = 0
        for byte in data {
            if byte == UInt8(ascii: "\n") && previous != UInt8(ascii: "\r") { out.append(UInt8(ascii: "\r")) }
            if atLineStart && byte == UInt8(ascii: ".") { out.append(UInt8(ascii: ".")) }
            out.append(byte)
            atLineStart = byte == UInt8(ascii: "\n")
            previous = byte
        }
        if !atLineStart { out += Array("\r\n".utf8) }
        out += Array(".\r\n".utf8)
        return out
    }
}

/// One SMTP connection: commands go out, replies come back in order. Everything touching the
/// channel's handlers runs on its event loop.
final class SMTPSession: Sendable {
    private let channel: any Channel
    private let timeout: Duration

    private init(channel: any Channel, timeout: Duration) {
        self.channel = channel
        self.timeout = timeout
    }

    static func connect(host: String, port: Int, timeout: Duration) async throws -> SMTPSession {
        let bootstrap = ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .connectTimeout(.milliseconds(timeout.milliseconds))
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandlers([ByteToMessageHandler(SMTPReplyDecoder()), SMTPReplyHandler()])
                }
            }
        do {
            return SMTPSession(channel: try await bootstrap.connect(host: host, port: port).get(), timeout: timeout)
        } catch {
            throw SMTPError.connection("\(host):\(port): \(error)")
        }
    }

    /// Sends `line` (nil: just wait, for the greeting) and returns the reply.
    func command(_ line: String?, stage: String) async throws -> SMTPReply {
        try await self.exchange(line.map { Array(($0 + "\r\n").utf8) }, stage: stage)
    }

    /// Sends raw bytes (the DATA payload) and returns the reply.
    func raw(_ bytes: [UInt8], stage: String) async throws -> SMTPReply {
        try await self.exchange(bytes, stage: stage)
    }

    private func exchange(_ bytes: [UInt8]?, stage: String) async throws -> SMTPReply {
        let channel = self.channel
        let promise = channel.eventLoop.makePromise(of: SMTPReply.self)
        let timeout = TimeAmount.milliseconds(self.timeout.milliseconds)
        channel.eventLoop.execute {
            guard let handler = try? channel.pipeline.syncOperations.handler(type: SMTPReplyHandler.self) else {
                promise.fail(SMTPError.connection("connection closed"))
                return
            }
            handler.expect(promise, timeout: timeout, stage: stage, channel: channel)
            if let bytes { channel.writeAndFlush(ByteBuffer(bytes: bytes), promise: nil) }
        }
        return try await promise.futureResult.get()
    }

    /// Puts TLS under the connection (after the server's 220 to STARTTLS).
    func startTLS(context: NIOSSLContext, serverHostname: String) async throws {
        let channel = self.channel
        let isIP = serverHostname.allSatisfy { $0.isNumber || $0 == "." || $0 == ":" }
        try await channel.eventLoop.submit {
            let tls = try NIOSSLClientHandler(context: context, serverHostname: isIP ? nil : serverHostname)
            try channel.pipeline.syncOperations.addHandler(tls, position: .first)
        }.get()
    }

    func close() { self.channel.close(promise: nil) }
}

/// Assembles reply lines (`250-…` continues, `250 …` ends) into replies.
public struct SMTPReplyDecoder: ByteToMessageDecoder {
    public typealias InboundOut = SMTPReply
    private var lines: [String] = []
    private var code = 0

    public init() {}

    public mutating func decode(context: ChannelHandlerContext, buffer: inout ByteBuffer) throws -> DecodingState {
        guard let newline = buffer.readableBytesView.firstIndex(of: UInt8(ascii: "\n")) else {
            if buffer.readableBytes > 8192 { throw SMTPError.protocolViolation("reply line longer than 8 KiB") }
            return .needMoreData
        }
        var utf8 = buffer.readBytes(length: newline - buffer.readerIndex + 1) ?? []
        // Byte-wise: in a Swift String "\r\n" is one Character, equal to neither "\r" nor "\n".
        while let last = utf8.last, last == UInt8(ascii: "\n") || last == UInt8(ascii: "\r") { utf8.removeLast() }
        let line = String(decoding: utf8, as: UTF8.self)
        guard utf8.count >= 3, let code = Int(String(decoding: utf8[0..<3], as: UTF8.self)) else {
            throw SMTPError.protocolViolation("malformed reply line '\(line.prefix(80))'")
        }
        self.code = code
        self.lines.append(utf8.count > 4 ? String(decoding: utf8[4...], as: UTF8.self) : "")
        if utf8.count > 3 && utf8[3] == UInt8(ascii: "-") { return .continue }
        context.fireChannelRead(self.wrapInboundOut(SMTPReply(code: code, lines: self.lines)))
        self.lines = []
        return .continue
    }
}

/// Hands replies to the waiting command in order; fails it on timeout or when the connection ends.
final class SMTPReplyHandler: ChannelInboundHandler {
    typealias InboundIn = SMTPReply
    private var waiting: [(promise: EventLoopPromise<SMTPReply>, timer: Scheduled<Void>?)] = []
    private var unclaimed: [SMTPReply] = []
    private var failure: SMTPError?

    func expect(_ promise: EventLoopPromise<SMTPReply>, timeout: TimeAmount, stage: String, channel: any Channel) {
        if let failure { return promise.fail(failure) }
        if !self.unclaimed.isEmpty { return promise.succeed(self.unclaimed.removeFirst()) }
        let timer = channel.eventLoop.scheduleTask(in: timeout) { [weak self] in
            self?.failAll(.timeout(stage: stage))
            channel.close(promise: nil)
        }
        self.waiting.append((promise, timer))
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let reply = self.unwrapInboundIn(data)
        guard !self.waiting.isEmpty else { return self.unclaimed.append(reply) }
        let next = self.waiting.removeFirst()
        next.timer?.cancel()
        next.promise.succeed(reply)
    }

    func channelInactive(context: ChannelHandlerContext) {
        self.failAll(.connection("the server closed the connection"))
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        self.failAll(error as? SMTPError ?? .connection("\(error)"))
        context.close(promise: nil)
    }

    private func failAll(_ error: SMTPError) {
        if self.failure == nil { self.failure = error }
        let all = self.waiting
        self.waiting = []
        for w in all {
            w.timer?.cancel()
            w.promise.fail(error)
        }
    }
}
