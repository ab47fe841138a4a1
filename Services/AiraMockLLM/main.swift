// aira-mock-llm: an OpenAI-compatible stand-in upstream for development, tests and benchmarks.
// POST /v1/chat/completions answers deterministically (the same conversation and model always
// get the same answer), after AIRA_MOCK_LATENCY, streaming in pieces of 1–6 characters when asked.
//
// Failures on demand, for the next N requests (POST /mock/fail {"mode":…, "count":N}) or for
// one request by a marker in its last message (e.g. "[[mock:500]]"):
//   429 (with Retry-After: 1) · 500 · hang (no answer for 10 minutes) ·
//   truncate (finish_reason "length") · empty (empty content) · refuse (a refusal) ·
//   slow (a stream with 400 ms between pieces, for clients that stop a stream mid-way) ·
//   cut (a stream that stops after half its pieces, without a finish or [DONE]; a request
//   that is not streamed is answered normally).
// Usage counts a word as a token; an answer longer than `max_tokens` words is cut there
// (finish_reason "length").
// {"mode":…, "always":true} (or AIRA_MOCK_FAIL=mode at start) fails every request that way: one
// upstream of several that is down, for the failover tests.
// GET /mock/stats → {"calls":…, "streams":…, "failed":…}; GET /mock/last → {"messages": […]} of the
// last call as received; POST /mock/reset clears stats and failures.
import AiraCore
import AiraLLM
import AiraMessaging
import AiraServiceKit
import Crypto
import Foundation
import Hummingbird
import Logging
import NIOCore
import Synchronization

struct Failure: Codable, Sendable {
    var mode: String
    var count: Int?
    /// Every request fails this way until `/mock/reset` (as `AIRA_MOCK_FAIL` does from the start).
    var always: Bool?
}

final class MockState: Sendable {
    struct State {
        var calls = 0
        var streams = 0
        var failed = 0
        var failures: [Failure] = []
        var always: String?
        /// The messages of the last call, as received (`GET /mock/last`).
        var last: [ChatMessage] = []
    }
    let state = Mutex(State())

    /// Counts the call and takes the next injected failure, if any.
    func begin(stream: Bool, marker: String?) -> String? {
        self.state.withLock { s in
            s.calls += 1
            if stream { s.streams += 1 }
            var mode = marker ?? s.always
            if mode == nil, !s.failures.isEmpty {
                mode = s.failures[0].mode
                s.failures[0].count = (s.failures[0].count ?? 1) - 1
                if s.failures[0].count! <= 0 { s.failures.removeFirst() }
            }
            if mode != nil { s.failed += 1 }
            return mode
        }
    }
}

func json(_ status: HTTPResponse.Status, _ value: some Encodable, headers: HTTPFields = [:]) -> Response {
    var fields = headers
    fields[.contentType] = "application/json"
    return Response(status: status, headers: fields, body: .init(byteBuffer: ByteBuffer(bytes: (try? MessageCoding.encode(value)) ?? [])))
}

func errorBody(_ message: String, type: String) -> [String: [String: String]] { ["error": ["message": message, "type": type]] }

/// The deterministic answer to a conversation.
func answer(to request: ChatCompletionRequest, model: String) -> String {
    let question = request.messages.last(where: { $0.role == "user" })?.content ?? ""
    let seed = SHA256.hash(data: Data((model + "\u{1F}" + request.messages.map { $0.role + ":" + $0.content }.joined(separator: "\u{1E}")).utf8))
    let tag = seed.prefix(4).hexString
    return "Mock answer \(tag) from \(model): you asked \"\(question.prefix(120))\". Here is what I know about it."
}

/// `text` in pieces of 3, 1, 4, 1, 5, 2, 6, … characters (repeating).
func streamPieces(_ text: String) -> [String] {
    let lengths = [3, 1, 4, 1, 5, 2, 6]
    var pieces: [String] = []
    var rest = Substring(text)
    while !rest.isEmpty {
        let n = lengths[pieces.count % lengths.count]
        pieces.append(String(rest.prefix(n)))
        rest = rest.dropFirst(n)
    }
    return pieces
}

do {
    let settings = try ServiceSettings(name: "aira-mock-llm", defaultPort: 8090)
    let env = settings.environment
    let (logger, registry) = ServiceHost.bootstrap(settings)
    let latency = try env.duration("AIRA_MOCK_LATENCY", default: .milliseconds(20))
    let chunkDelay = try env.duration("AIRA_MOCK_CHUNK_DELAY", default: .milliseconds(5))
    let apiKey = env.optionalString("AIRA_MOCK_API_KEY")
    let state = MockState()
    state.state.withLock { $0.always = env.optionalString("AIRA_MOCK_FAIL") }

    let router = Router()
    ObservabilityRoutes.add(to: router, registry: registry, checks: [], shutdown: ShutdownFlag())
    router.get("/mock/stats") { _, _ in
        let s = state.state.withLock { ($0.calls, $0.streams, $0.failed) }
        return json(.ok, ["calls": s.0, "streams": s.1, "failed": s.2])
    }
    router.get("/mock/last") { _, _ in
        json(.ok, ["messages": state.state.withLock { $0.last }])
    }
    router.post("/mock/reset") { _, _ in
        state.state.withLock { $0 = MockState.State() }
        return json(.ok, ["reset": true])
    }
    router.post("/mock/fail") { request, _ in
        let body = try await request.body.collect(upTo: 4096)
        let failure = try MessageCoding.decode(Failure.self, from: Array(body.readableBytesView))
        state.state.withLock { s in
            if failure.always == true { s.always = failure.mode } else { s.failures.append(failure) }
        }
        return json(.ok, ["queued": failure.mode])
    }
    router.post("/v1/chat/completions") { request, context -> Response in
        if let apiKey, request.headers[.authorization] != "Bearer \(apiKey)" {
            return json(.unauthorized, errorBody("invalid api key", type: "invalid_request_error"))
        }
        let body = try await request.body.collect(upTo: 1 << 20)
        let completion: ChatCompletionRequest
        do {
            completion = try MessageCoding.decode(ChatCompletionRequest.self, from: Array(body.readableBytesView))
        } catch {
            return json(.badRequest, errorBody(MessageCoding.describe(error), type: "invalid_request_error"))
        }
        state.state.withLock { $0.last = completion.messages }
        let model = completion.model ?? "mock-1"
        let last = completion.messages.last?.content ?? ""
        let marker = last.range(of: #"\[\[mock:([a-z0-9]+)\]\]"#, options: .regularExpression).map { String(last[$0].dropFirst(7).dropLast(2)) }
        let stream = completion.stream ?? false
        let failure = state.begin(stream: stream, marker: marker)
        try await Task.sleep(for: latency)

        var text = answer(to: completion, model: model)
        var finish = "stop"
        var refusal: String?
        switch failure {
        case "429":
            return json(.tooManyRequests, errorBody("rate limited (mock)", type: "rate_limit_error"), headers: [.retryAfter: "1"])
        case "500":
            return json(.internalServerError, errorBody("upstream exploded (mock)", type: "server_error"))
        case "hang":
            try await Task.sleep(for: .seconds(600))
        case "truncate":
            text = String(text.prefix(20))
            finish = "length"
        case "empty":
            text = ""
        case "refuse":
            text = ""
            refusal = "I can't help with that."
        default:
            break
        }
        // A word is a token here: an answer longer than max_tokens is cut there, as real models do.
        if let maxTokens = completion.parameters.maxTokens, maxTokens >= 0 {
            let words = text.split(separator: " ")
            if words.count > maxTokens {
                text = words.prefix(maxTokens).joined(separator: " ")
                finish = "length"
            }
        }
        let id = "chatcmpl-mock-\(MessageID.random().prefix(8))"
        let created = Int(Date().timeIntervalSince1970)
        let usage = Usage(promptTokens: completion.messages.reduce(0) { $0 + $1.content.split(separator: " ").count },
                          completionTokens: text.split(separator: " ").count)
        guard stream else {
            return json(.ok, ChatCompletion(id: id, created: created, model: model,
                                            choices: [.init(message: .init(content: refusal == nil ? text : nil, refusal: refusal),
                                                            finishReason: finish)],
                                            usage: usage))
        }
        let finishReason = finish
        let wordDelay = failure == "slow" ? Duration.milliseconds(400) : chunkDelay
        // Pieces of 1–6 characters, as a tokenizer cuts text (not at spaces): a client or cache
        // that re-cut the text at words would not reproduce them.
        let words = streamPieces(text)
        let events = ResponseBody { writer in
            func send(_ chunk: ChatCompletionChunk) async throws {
                try await writer.write(ByteBuffer(string: "data: " + String(decoding: try MessageCoding.encode(chunk), as: UTF8.self) + "\n\n"))
            }
            try await send(ChatCompletionChunk(id: id, created: created, model: model,
                                               choices: [.init(delta: .init(role: "assistant", content: ""), finishReason: nil)]))
            for (i, word) in words.enumerated() where !word.isEmpty {
                if failure == "cut", i >= words.count / 2 {
                    try await writer.finish(nil)
                    return
                }
                try await Task.sleep(for: wordDelay)
                try await send(ChatCompletionChunk(id: id, created: created, model: model,
                                                   choices: [.init(delta: .init(content: word), finishReason: nil)]))
            }
            try await send(ChatCompletionChunk(id: id, created: created, model: model,
                                               choices: [.init(delta: .init(), finishReason: finishReason)], usage: usage))
            try await writer.write(ByteBuffer(string: "data: [DONE]\n\n"))
            try await writer.finish(nil)
        }
        return Response(status: .ok, headers: [.contentType: "text/event-stream", .cacheControl: "no-cache"], body: events)
    }

    let app = Application(router: router,
                          configuration: .init(address: .hostname(settings.httpHost, port: settings.httpPort), serverName: "aira-mock-llm"),
                          onServerRunning: { channel in
                              logger.info("mock LLM listening", metadata: ["address": "\(channel.localAddress?.description ?? "?")"])
                          },
                          logger: logger)
    try await app.runService()
} catch {
    exitOnStartupFailure("aira-mock-llm", error)
}
