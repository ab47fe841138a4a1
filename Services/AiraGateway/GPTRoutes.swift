import AiraContracts
import AiraCore
import AiraLLM
import AiraMessaging
import Foundation
import HTTPTypes
import Hummingbird
import Metrics
import NIOCore

/// `POST /api/gpt/qna` and the OpenAI-compatible `POST /v1/chat/completions` (non-streaming and
/// server-sent events), both answered by aira-gpt-proxy over the `gpt.ask` RPC.
struct GPTRoutes: Sendable {
    let calls: ServiceCalls
    let bodyLimit: Int
    let timeout: Duration
    /// Non-streamed questions share request messages (``RPCBatch``); nil sends each alone.
    let batching: RPCBatch.Options?
    /// Batches out at once follow the number of proxies consuming `gpt.ask` (at most
    /// `batching.parallel`): one batch out per proxy keeps each busy, and one batch out for one
    /// proxy gathers twice the questions per message that two did — a fifth less CPU per
    /// question on the whole path, the broker's a third less (docs/benchmarks.md).
    var parallelFollowsConsumers = false

    private var target: ServiceCalls.Target {
        var batching = self.batching
        if self.parallelFollowsConsumers, var options = batching {
            options.parallel = min(options.parallel, max(1, self.calls.presence.consumers(GPTRPC.queue.name) ?? 1))
            batching = options
        }
        return .init(queue: GPTRPC.queue.name, routingKey: AskRequest.routingKey, timeout: self.timeout, batching: batching)
    }

    struct Question: Decodable {
        var question: String
        var conversationId: String?
        var cache: CacheMode?
    }

    struct Answer: Encodable {
        var answer: String
        var cached: Bool
        var model: String
        var finishReason: String
        var conversationId: String?
        var quota: QuotaStatus
    }

    func qna(_ request: Request, context: GatewayContext) async throws -> Response {
        let claims = try context.user()
        let body = try await JSONBody.decode(Question.self, from: request, limit: self.bodyLimit)
        let ask = AskRequest(userId: try AuthRoutes.userID(claims), role: claims.role, model: nil,
                             messages: [ChatMessage(role: "user", content: try required(body.question, "question"))],
                             cache: try body.cache ?? Self.cacheMode(request), conversationId: body.conversationId,
                             client: ClientInfo(ip: context.clientIP))
        let reply = try await self.calls.call(ask, to: self.target, expecting: AskResponse.self, context: context)
        var response = JSONResponse.make(.ok, Answer(answer: reply.answer, cached: reply.cached, model: reply.model,
                                                     finishReason: reply.finishReason, conversationId: reply.conversationId,
                                                     quota: reply.quota))
        response.headers[.airaCached] = String(reply.cached)
        response.headers[.airaOverhead] = Self.overhead(reply, context: context)
        return response
    }

    /// Aira's part of the request so far, in milliseconds with two decimals: the gateway's time
    /// since it took the request, less the proxy's wait for the model. Also in
    /// `aira_gpt_overhead_seconds{cached}`.
    static func overhead(_ reply: AskResponse, context: GatewayContext) -> String {
        // Two decimals by hand: String(format:) goes through Foundation on every answer.
        let hundredths = Int((Self.overheadMs(reply, started: context.started) * 100).rounded())
        let fraction = hundredths % 100
        return "\(hundredths / 100)." + (fraction < 10 ? "0" : "") + String(fraction)
    }

    static func overheadMs(_ reply: AskResponse, started: ContinuousClock.Instant) -> Double {
        let total = Double((ContinuousClock.now - started).nanoseconds) / 1e6
        let ms = max(0, total - (reply.upstreamMs ?? 0))
        (reply.cached ? Self.overheadCached : Self.overheadFresh).recordNanoseconds(Int64(ms * 1e6))
        return ms
    }

    private static let overheadCached = Timer(label: "aira_gpt_overhead_seconds", dimensions: [("cached", "true")])
    private static let overheadFresh = Timer(label: "aira_gpt_overhead_seconds", dimensions: [("cached", "false")])

    func chatCompletions(_ request: Request, context: GatewayContext) async throws -> Response {
        let claims = try context.user()
        let body = try await JSONBody.decode(ChatCompletionRequest.self, from: request, limit: self.bodyLimit)
        guard !body.messages.isEmpty else { throw APIError.badRequest("invalid_request", "'messages' must not be empty") }
        let ask = AskRequest(userId: try AuthRoutes.userID(claims), role: claims.role, model: body.model,
                             messages: body.messages, parameters: body.parameters, cache: try Self.cacheMode(request),
                             stream: body.stream ?? false, conversationId: try Self.conversation(request),
                             client: ClientInfo(ip: context.clientIP))
        let created = Int(Date().timeIntervalSince1970)
        guard ask.stream else {
            let reply = try await self.calls.call(ask, to: self.target, expecting: AskResponse.self, context: context)
            var response = JSONResponse.make(.ok, ChatCompletion(
                id: reply.id, created: created, model: reply.model,
                choices: [.init(message: .init(content: reply.answer), finishReason: reply.finishReason)], usage: reply.usage))
            response.headers[.airaCached] = String(reply.cached)
            response.headers[.airaOverhead] = Self.overhead(reply, context: context)
            return response
        }

        let (first, rest) = try await self.calls.stream(ask, to: self.target, partial: AskChunk.self, expecting: AskResponse.self,
                                                        context: context)
        let id = "chatcmpl-\(MessageID.random().prefix(18))"
        let model = body.model ?? "default"
        let logger = context.logger
        let started = context.started
        let events = ResponseBody { writer in
            func send(_ data: some Encodable) async throws {
                var buffer = ByteBuffer(string: "data: ")
                buffer.writeBytes(try MessageCoding.encode(data))
                buffer.writeString("\n\n")
                try await writer.write(buffer)
            }
            func chunk(_ delta: ChatCompletionChunk.Choice.Delta, finish: String? = nil, usage: Usage? = nil,
                       aira: ChatCompletionChunk.AnswerInfo? = nil) -> ChatCompletionChunk {
                ChatCompletionChunk(id: id, created: created, model: model, choices: [.init(delta: delta, finishReason: finish)],
                                    usage: usage, aira: aira)
            }
            try await send(chunk(.init(role: "assistant", content: "")))
            var event: RPCStreamEvent<AskChunk, AskResponse>? = first
            do {
                while let current = event {
                    switch current {
                    case .partial(let piece):
                        try await send(chunk(.init(content: piece.delta)))
                    case .done(let reply):
                        let info = ChatCompletionChunk.AnswerInfo(cached: reply.cached, conversationId: reply.conversationId,
                                                                  quota: reply.quota,
                                                                  overheadMs: (Self.overheadMs(reply, started: started) * 100).rounded() / 100)
                        try await send(chunk(.init(), finish: reply.finishReason, usage: reply.usage, aira: info))
                    }
                    event = try await rest.next()
                }
            } catch let error as APIError {
                // Headers are gone: the failure travels as an error event, as OpenAI's API does.
                logger.warning("stream ended by an error", metadata: [LogKey.error: "\(error)"])
                try await send(APIError.ErrorBody(error: .init(code: error.code, message: error.message, details: error.details)))
            }
            try await writer.write(ByteBuffer(string: "data: [DONE]\n\n"))
            try await writer.finish(nil)
        }
        return Response(status: .ok, headers: [.contentType: "text/event-stream", .cacheControl: "no-cache"], body: events)
    }

    /// `GET /api/gpt/quota`: today's question quota `{used, limit, resetAt}` (cached answers are free).
    func quota(_ request: Request, context: GatewayContext) async throws -> Response {
        let claims = try context.user()
        let status = try await self.calls.call(QuotaRequest(userId: try AuthRoutes.userID(claims), role: claims.role),
                                               to: .init(queue: GPTRPC.queue.name, routingKey: QuotaRequest.routingKey, timeout: .seconds(5)),
                                               expecting: QuotaStatus.self, context: context)
        return JSONResponse.make(.ok, status)
    }

    /// `GET /api/users/me/usage`: the caller's budgets as they stand, and what their upstream
    /// calls cost today and this month, per model.
    func usage(_ request: Request, context: GatewayContext) async throws -> Response {
        let claims = try context.user()
        let report = try await self.calls.call(UsageRequest(userId: try AuthRoutes.userID(claims), role: claims.role),
                                               to: .init(queue: GPTRPC.queue.name, routingKey: UsageRequest.routingKey, timeout: .seconds(5)),
                                               expecting: UsageReport.self, context: context)
        return JSONResponse.make(.ok, report)
    }

    /// `GET /api/admin/usage?from=&to=&userId=&limit=`: usage per user, model and day (UTC days,
    /// both included; default today; at most 92 days; limit default 1000, at most 10000).
    func adminUsage(_ request: Request, context: GatewayContext) async throws -> Response {
        let query = request.uri.queryParameters
        let today = String(iso8601(Date()).prefix(10))
        let to = query.get("to") ?? query.get("from") ?? today
        let from = query.get("from") ?? to
        var user: UUID?
        if let text = query.get("userId") {
            guard let id = UUID(text: text) else { throw APIError.badRequest("invalid_request", "'userId' must be a user id (UUID)") }
            user = id
        }
        var limit = 1000
        if let text = query.get("limit") {
            guard let n = Int(text), (1...10_000).contains(n) else { throw APIError.badRequest("invalid_request", "'limit' must be 1–10000") }
            limit = n
        }
        let list = try await self.calls.call(UsageListRequest(from: String(from), to: String(to), userId: user, limit: limit),
                                             to: .init(queue: GPTRPC.queue.name, routingKey: UsageListRequest.routingKey, timeout: .seconds(10)),
                                             expecting: UsageList.self, context: context)
        return JSONResponse.make(.ok, list)
    }

    /// `X-Aira-Conversation: id` (Aira's extension of the OpenAI API): the proxy puts the
    /// conversation so far in front of the messages and keeps the question and its answer.
    static func conversation(_ request: Request) throws -> String? {
        guard let id = request.headers.first(.airaConversation) else { return nil }
        guard ConversationStore.isValidID(id) else {
            throw APIError.badRequest("invalid_request", "X-Aira-Conversation: 1–64 letters, digits, '-' or '_'")
        }
        return id
    }

    /// `X-Aira-Cache: use | bypass | refresh` (default use).
    static func cacheMode(_ request: Request) throws -> CacheMode {
        guard let value = request.headers[.airaCache] else { return .use }
        guard let mode = CacheMode(rawValue: value.lowercased()) else {
            throw APIError.badRequest("invalid_request", "X-Aira-Cache must be use, bypass or refresh")
        }
        return mode
    }
}

// Read and written by hand on the cached-answer path (JSONTree); anything unusual in a
// question (and every error message) still goes through JSONDecoder.
extension GPTRoutes.Question: FastJSONDecodable {
    init(json: JSONTree) throws {
        let m = try json.members()
        self.question = try m.string("question")
        self.conversationId = try m.optionalString("conversationId")
        switch m["cache"] {
        case nil, .null?: self.cache = nil
        case .string(let s)?:
            guard let mode = CacheMode(rawValue: s) else { throw JSONTree.Unsupported("cache") }
            self.cache = mode
        default: throw JSONTree.Unsupported("cache")
        }
    }
}

extension GPTRoutes.Answer: FastJSONEncodable {
    func appendJSON(to out: inout [UInt8]) throws {
        out.append(UInt8(ascii: "{"))
        JSONText.appendKey("answer", first: true, to: &out)
        JSONText.appendQuoted(self.answer, to: &out)
        JSONText.appendKey("cached", to: &out)
        JSONText.append(self.cached, to: &out)
        JSONText.appendKey("model", to: &out)
        JSONText.appendQuoted(self.model, to: &out)
        JSONText.appendKey("finishReason", to: &out)
        JSONText.appendQuoted(self.finishReason, to: &out)
        if let c = self.conversationId {
            JSONText.appendKey("conversationId", to: &out)
            JSONText.appendQuoted(c, to: &out)
        }
        JSONText.appendKey("quota", to: &out)
        try self.quota.appendJSON(to: &out)
        out.append(UInt8(ascii: "}"))
    }
}
