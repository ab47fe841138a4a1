import AiraContracts
import AiraCore
import AiraLLM
import AiraMessaging
import AsyncHTTPClient
import Foundation
import Logging
import Metrics
import NIOCore
import NIOHTTP1
import Synchronization

/// An answer from the upstream (or the cache).
struct Completion: Codable, Sendable {
    var text: String
    var model: String
    var finishReason: String
    var refusal: String?
    var usage: Usage?
    /// The pieces of text as a streamed answer arrived from the upstream, in order (nil for an
    /// answer that was not streamed): a cache hit for a stream replays them.
    var chunks: [String]? = nil

    /// Only complete, non-empty, non-refusing answers are worth keeping.
    var isCacheable: Bool {
        guard self.finishReason == "stop", self.refusal == nil else { return false }
        let trimmed = self.text.trimmingCharacters(in: .whitespacesAndNewlines)
        guard !trimmed.isEmpty else { return false }
        let start = trimmed.prefix(40).lowercased()
        return !Self.refusalOpenings.contains { start.hasPrefix($0) }
    }

    static let refusalOpenings = ["i'm sorry", "i am sorry", "sorry, i can", "i can't", "i cannot", "i can not", "i'm unable",
                                  "i am unable", "i won't", "as an ai"]
}

/// Calls OpenAI-compatible `/v1/chat/completions` endpoints with a bounded number of concurrent
/// calls. For each question the endpoints that serve its model are tried by priority, weighted
/// within a priority (``UpstreamEndpoint/order(_:model:using:)``), skipping those whose circuit
/// is open (``CircuitBreakers``): a connection failure, timeout, 5xx or 429 moves on to the next
/// endpoint at once — only before the first piece of an answer reached the caller — and when
/// every one has been tried the round starts again after a backoff with full jitter (or the
/// upstream's `Retry-After`). At most `retries` retries in all, never past the caller's deadline.
struct Upstream: Sendable {
    struct Configuration: Sendable {
        var endpoints: [UpstreamEndpoint]
        var model: String
        var connectTimeout: Duration = .seconds(2)
        var readTimeout: Duration = .seconds(60)
        var retries = 3
        var backoff = Backoff(initial: .milliseconds(200), maximum: .seconds(5))
        var breaker = CircuitBreakers.Options()
    }

    let configuration: Configuration
    let http: HTTPClient
    let slots: AsyncLimiter
    let breakers: CircuitBreakers
    let logger: Logger
    private let metrics: [String: EndpointMetrics]

    struct EndpointMetrics: Sendable {
        let ok: Counter
        let failed: Counter
        let failover: Counter

        init(_ name: String) {
            self.ok = Counter(label: "aira_gpt_upstream_calls_total", dimensions: [("upstream", name), ("outcome", "ok")])
            self.failed = Counter(label: "aira_gpt_upstream_calls_total", dimensions: [("upstream", name), ("outcome", "failed")])
            self.failover = Counter(label: "aira_gpt_upstream_failovers_total", dimensions: [("upstream", name)])
        }
    }

    init(configuration: Configuration, http: HTTPClient, slots: AsyncLimiter, breakers: CircuitBreakers, logger: Logger) {
        self.configuration = configuration
        self.http = http
        self.slots = slots
        self.breakers = breakers
        self.logger = logger
        self.metrics = Dictionary(uniqueKeysWithValues: configuration.endpoints.map { ($0.name, EndpointMetrics($0.name)) })
    }

    private static let retried = Counter(label: "aira_gpt_upstream_retries_total")
    private static let latency = Timer(label: "aira_gpt_upstream_duration_seconds")
    private static let cut = Counter(label: "aira_gpt_streams_cut_total")

    /// Creates the metrics at zero, so dashboards and alerts see them before the first event.
    static func exposeMetrics() { _ = (Self.retried, Self.latency, Self.cut) }

    /// A failed attempt: whether another may help, and what to tell the caller if not.
    /// A failed attempt: `reply` is what the client is told (deliberate text only); `detail` is
    /// what the upstream said or what went wrong, for this service's log, never for the client.
    struct AttemptError: Error {
        var retriable: Bool
        var retryAfter: Duration?
        var reply: RPCErrorReply
        var detail: String? = nil

        /// The upstream's fault (counts against its circuit): what is retried, and a stream cut off.
        var upstreamFault: Bool { self.retriable || self.reply.code == GPTError.upstreamStreamCut }
    }

    /// One completion; `onDelta` (streaming) receives each piece of text as it arrives.
    func complete(_ request: ChatCompletionRequest, deadline: Date,
                  onDelta: (@Sendable (String) async -> Void)?) async throws -> Completion {
        let model = request.model ?? self.configuration.model
        var rng = SystemRandomNumberGenerator()
        let candidates = UpstreamEndpoint.order(self.configuration.endpoints, model: model, using: &rng)
        guard !candidates.isEmpty else {
            throw RPCErrorReply(code: GPTError.upstreamRejected, message: "no upstream serves the model '\(model)'")
        }
        var attempt = 0
        var tried = Set<String>()
        var lastFailure: AttemptError?
        while true {
            let remaining = deadline.timeIntervalSinceNow
            guard remaining > 0.05 else {
                throw RPCErrorReply(code: GPTError.upstreamTimeout, message: "the model did not answer in time")
            }
            var next: UpstreamEndpoint?
            for endpoint in candidates where !tried.contains(endpoint.name) {
                if await self.breakers.allows(endpoint.name) {
                    next = endpoint
                    break
                }
            }
            guard let endpoint = next else {
                // Every endpoint has its circuit open: fail fast rather than wait on them.
                guard let failure = lastFailure, !tried.isEmpty else {
                    throw RPCErrorReply(code: GPTError.upstreamUnavailable,
                                        message: "the model is unavailable: every upstream serving '\(model)' is failing (circuit open)")
                }
                // Every endpoint was tried (or is open) in this round: the next round after a
                // backoff, if it fits the deadline.
                let wait = failure.retryAfter ?? self.configuration.backoff.delay(attempt: attempt - 1)
                guard Date().addingTimeInterval(wait.seconds + 0.05) < deadline else { throw failure.reply }
                self.logger.info("upstream calls failed, retrying", metadata: [LogKey.error: "\(failure.reply.message)", "wait": "\(wait)"])
                try await Task.sleep(for: wait)
                tried = []
                continue
            }
            do {
                let started = ContinuousClock.now
                let completion = try await self.slots.withSlot(deadline: deadline) {
                    try await self.attempt(request, to: endpoint, timeout: min(remaining, self.configuration.readTimeout.seconds),
                                           onDelta: onDelta)
                }
                Self.latency.recordNanoseconds(Int64((ContinuousClock.now - started).seconds * 1e9))
                self.metrics[endpoint.name]?.ok.increment()
                await self.breakers.succeeded(endpoint.name)
                return completion
            } catch let error as AttemptError {
                self.metrics[endpoint.name]?.failed.increment()
                if error.upstreamFault { await self.breakers.failed(endpoint.name) }
                attempt += 1
                tried.insert(endpoint.name)
                lastFailure = error
                let log: Logger.Metadata = [LogKey.error: "\(error.reply.message)", "detail": "\(error.detail ?? "")",
                                            "upstream": "\(endpoint.name)", LogKey.attempts: "\(attempt)"]
                guard error.retriable, attempt <= self.configuration.retries else {
                    self.logger.warning("upstream call failed", metadata: log)
                    throw error.reply
                }
                Self.retried.increment()
                // The next endpoint not yet tried in this round is asked at once.
                if candidates.contains(where: { !tried.contains($0.name) }) {
                    self.metrics[endpoint.name]?.failover.increment()
                }
                self.logger.info("upstream call failed", metadata: log)
            }
        }
    }

    private func attempt(_ request: ChatCompletionRequest, to endpoint: UpstreamEndpoint, timeout: Double,
                         onDelta: (@Sendable (String) async -> Void)?) async throws -> Completion {
        var body = request
        body.stream = onDelta != nil
        if body.model == nil { body.model = self.configuration.model }
        var http = HTTPClientRequest(url: endpoint.url + "/v1/chat/completions")
        http.method = .POST
        http.headers.add(name: "Content-Type", value: "application/json")
        if let key = endpoint.apiKey { http.headers.add(name: "Authorization", value: "Bearer \(key)") }
        http.body = .bytes(ByteBuffer(bytes: try MessageCoding.encode(body)))

        let response: HTTPClientResponse
        do {
            response = try await self.http.execute(http, timeout: .milliseconds(Int64(timeout * 1000)))
        } catch {
            throw Self.classify(error)
        }
        guard response.status == .ok else {
            let text = (try? await response.body.collect(upTo: 64 * 1024)).map { String(buffer: $0) } ?? ""
            throw Self.failure(status: response.status, headers: response.headers, body: text)
        }
        do {
            if let onDelta {
                return try await self.readStream(response, model: body.model!, onDelta: onDelta)
            }
            let bytes = try await response.body.collect(upTo: 16 << 20)
            let completion = try MessageCoding.decode(ChatCompletion.self, from: Array(bytes.readableBytesView))
            guard let choice = completion.choices.first else {
                throw AttemptError(retriable: false, reply: RPCErrorReply(code: GPTError.upstreamBadResponse, message: "the model returned no choices"))
            }
            return Completion(text: choice.message.content ?? "", model: completion.model, finishReason: choice.finishReason ?? "stop",
                              refusal: choice.message.refusal, usage: completion.usage)
        } catch let error as AttemptError {
            throw error
        } catch let error as DecodingError {
            throw AttemptError(retriable: false, reply: RPCErrorReply(code: GPTError.upstreamBadResponse, message: "the model's answer was unreadable"),
                               detail: MessageCoding.describe(error))
        } catch {
            throw Self.classify(error)
        }
    }

    /// Server-sent events: `data: {chunk}` lines, ending with `data: [DONE]`. A stream that
    /// breaks off — the connection fails, an event is unreadable, or the body ends without
    /// `[DONE]` — is a failure: before its first piece of text went to the caller it is retried
    /// like any failed call; after, the caller has part of an answer, so it ends with
    /// `upstream_stream_cut` (the client's stream gets an error event), is counted in
    /// `aira_gpt_streams_cut_total` and is never cached.
    private func readStream(_ response: HTTPClientResponse, model: String,
                            onDelta: @Sendable (String) async -> Void) async throws -> Completion {
        var pending: [UInt8] = []
        var text = ""
        var chunks: [String] = []
        var finish: String?
        var usage: Usage?
        var actualModel = model
        func brokenOff(_ what: String) -> AttemptError {
            guard !chunks.isEmpty else {
                return AttemptError(retriable: true, reply: RPCErrorReply(code: GPTError.upstreamUnavailable, message: "the model's stream broke off"),
                                    detail: what)
            }
            Self.cut.increment()
            return AttemptError(retriable: false,
                                reply: RPCErrorReply(code: GPTError.upstreamStreamCut, message: "the model's answer broke off after \(chunks.count) pieces"),
                                detail: what)
        }
        do {
            for try await buffer in response.body {
                pending += buffer.readableBytesView
                while let newline = pending.firstIndex(of: UInt8(ascii: "\n")) {
                    let line = String(decoding: pending[..<newline], as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
                    pending.removeSubrange(...newline)
                    guard line.hasPrefix("data:") else { continue }
                    let payload = line.dropFirst(5).trimmingCharacters(in: .whitespaces)
                    if payload == "[DONE]" {
                        return Completion(text: text, model: actualModel, finishReason: finish ?? "length", usage: usage, chunks: chunks)
                    }
                    let chunk: ChatCompletionChunk
                    do {
                        chunk = try MessageCoding.decode(ChatCompletionChunk.self, from: Array(payload.utf8))
                    } catch let error as DecodingError {
                        throw brokenOff("unreadable event: \(MessageCoding.describe(error))")
                    }
                    actualModel = chunk.model
                    if let u = chunk.usage { usage = u }
                    for choice in chunk.choices where choice.index == 0 {
                        if let piece = choice.delta.content, !piece.isEmpty {
                            text += piece
                            chunks.append(piece)
                            await onDelta(piece)
                        }
                        if let f = choice.finishReason { finish = f }
                    }
                }
            }
        } catch let error as AttemptError {
            throw error
        } catch {
            throw chunks.isEmpty ? Self.classify(error) : brokenOff("\(error)")
        }
        throw brokenOff("the stream ended without [DONE]")
    }

    static func classify(_ error: any Error) -> AttemptError {
        if let e = error as? HTTPClientError, e == .deadlineExceeded || e == .readTimeout || e == .connectTimeout {
            return AttemptError(retriable: true, reply: RPCErrorReply(code: GPTError.upstreamTimeout, message: "the model did not answer in time"))
        }
        return AttemptError(retriable: true, reply: RPCErrorReply(code: GPTError.upstreamUnavailable, message: "the model is unreachable"),
                            detail: "\(error)")
    }

    static func failure(status: HTTPResponseStatus, headers: HTTPHeaders, body: String) -> AttemptError {
        let retryAfter = headers.first(name: "Retry-After").flatMap(Double.init).map { Duration.milliseconds(Int64(min($0, 60) * 1000)) }
        switch status.code {
        case 429:
            return AttemptError(retriable: true, retryAfter: retryAfter,
                                reply: RPCErrorReply(code: GPTError.upstreamUnavailable, message: "the model is over capacity (429)"))
        case 500...599:
            return AttemptError(retriable: true, retryAfter: retryAfter,
                                reply: RPCErrorReply(code: GPTError.upstreamUnavailable, message: "the model failed (\(status.code))"))
        default:
            return AttemptError(retriable: false, reply: RPCErrorReply(code: GPTError.upstreamRejected,
                                                                      message: "the model refused the request (\(status.code))"),
                                detail: String(body.prefix(300)))
        }
    }
}

/// At most `limit` holders at once; others wait in line (``Waiters``), giving up at their deadline.
final class AsyncLimiter: WaitingLine {
    struct LineState {
        var held = 0
        var waiters = Waiters<Void>()
    }

    let limit: Int
    private let state = Mutex(LineState())
    private let timer = DeadlineTimer()

    init(limit: Int) { self.limit = limit }

    func withLineState<R: Sendable>(_ body: (inout LineState) -> R) -> R { self.state.withLock { body(&$0) } }

    func withSlot<T: Sendable>(deadline: Date, _ body: () async throws -> T) async throws -> T {
        try await self.waitInLine(\.waiters, deadline: .now + .seconds(max(0, deadline.timeIntervalSinceNow)), timer: self.timer, timeout: {
            RPCErrorReply(code: GPTError.upstreamUnavailable, message: "too many questions in progress, try again")
        }) { state in
            guard state.held < self.limit else { return nil }
            state.held += 1
            return .success(())
        }
        defer { self.release() }
        return try await body()
    }

    /// Hands the slot to the longest waiter, or frees it.
    private func release() {
        let next = self.state.withLock { state -> Waiters<Void>.Continuation? in
            if let next = state.waiters.popFirst() { return next }
            state.held -= 1
            return nil
        }
        next?.resume()
    }
}
