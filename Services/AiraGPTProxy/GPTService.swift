import AiraContracts
import AiraCore
import AiraLLM
import AiraMessaging
import AiraRedis
import AiraServiceKit
import Foundation
import Logging
import Metrics
import Synchronization

/// Answers `gpt.ask`: cache → budgets → quota → single flight → upstream → cache, with an
/// audit event per question. See docs/gpt.md.
struct GPTService: Sendable {
    let upstream: Upstream
    let store: AnswerStore
    let budgets: BudgetStore
    let metrics: GenAIMetrics
    let cacheVersion: String
    /// Questions per day by role (`USER`, `ADMIN`).
    let quotas: [String: Int]
    let trail: AuditTrail
    /// Replaces personal data in the question the audit event keeps; nil keeps it as asked
    /// (`AIRA_GPT_REDACT_AUDIT=false`).
    let auditRedactor: PIIRedactor?
    /// Replaces personal data in what goes upstream with numbered placeholders, put back in the
    /// answer (`AIRA_GPT_REDACT_UPSTREAM`); nil sends the conversation as asked.
    var upstreamRedactor: PIIRedactor? = nil
    /// Pause between the pieces of an answer replayed to a stream (`AIRA_GPT_CACHE_REPLAY_DELAY`; zero: all at once).
    var replayDelay: Duration = .zero
    let defaultDeadline: Duration = .seconds(60)
    let local = LocalFlights()

    private static let asked = Counter(label: "aira_gpt_questions_total", dimensions: [("cached", "false")])
    private static let askedCached = Counter(label: "aira_gpt_questions_total", dimensions: [("cached", "true")])
    private static let quotaRejected = Counter(label: "aira_gpt_quota_rejections_total")

    /// Creates the metrics at zero, so dashboards and alerts see them before the first event.
    static func exposeMetrics() {
        _ = (Self.asked, Self.askedCached, Self.quotaRejected)
        Upstream.exposeMetrics()
        BudgetStore.exposeMetrics()
    }

    var routes: RPCRoutes {
        var routes = RPCRoutes()
        routes.on(AskRequest.self) { try await self.ask($0, context: $1) }
        routes.onBatch(AskRequest.self) { await self.ask(batch: $0) }
        routes.on(QuotaRequest.self) { request, _ in
            let limit = self.quotas[request.role] ?? self.quotas["USER"] ?? 100
            return await self.store.quota(user: request.userId, limit: limit)
        }
        routes.on(UsageRequest.self) { request, _ in
            do {
                return try await self.budgets.report(user: request.userId, role: request.role)
            } catch let error as RedisError {
                throw RPCErrorReply(code: GPTError.budgetUnavailable, message: "usage cannot be read right now (\(error.isRetriable ? "Redis is unavailable" : "Redis failed"))")
            }
        }
        routes.on(UsageListRequest.self) { request, _ in
            do {
                return try await self.budgets.list(request)
            } catch let error as RedisError {
                throw RPCErrorReply(code: GPTError.budgetUnavailable, message: "usage cannot be read right now (\(error.isRetriable ? "Redis is unavailable" : "Redis failed"))")
            }
        }
        return routes
    }

    /// A validated question with its cache key and quota bucket.
    struct Question: Sendable {
        let request: AskRequest
        let started: ContinuousClock.Instant
        let deadline: Date
        let model: String
        let limit: Int
        /// The conversation so far, then the new messages.
        let messages: [ChatMessage]
        let key: CacheKey
        let quotaKey: String
        let resetAt: Date
        /// The same for every delivery of this question's RPC message (its id and the question's
        /// digest): a redelivery after a crash is charged once and leads its own flight again.
        let attemptID: String
    }

    func ask(_ request: AskRequest, context: MessageContext) async throws -> AskResponse {
        let question = try await self.prepare(request, context: context)
        if request.cache == .use {
            let (hit, used) = await self.store.lookup(question.key, quotaKey: question.quotaKey)
            if let hit { return try await self.answer(question, cached: hit, used: used, context: context) }
        }
        return try await self.answerFresh(question, context: context)
    }

    /// A batch of questions (``RPCBatch``): one Redis round trip looks up every cached answer and
    /// quota count, and the cached answers go back at once; each miss then goes on as a single
    /// question does (quota, single flight, upstream) and is answered on its own when done.
    /// Streamed questions are never batched (their pieces need replies of their own).
    func ask(batch calls: [RPCBatch.Call<AskRequest>]) async -> [RPCBatch.Outcome<AskResponse>] {
        // Conversations need Redis of their own (history before, the new turn after): their
        // questions are prepared and finished concurrently, not one round trip after another.
        let converse = calls.contains { $0.request.conversationId != nil }
        let prepared = await Self.map(calls, concurrently: converse) { call -> Result<Question, any Error> in
            if call.request.stream { return .failure(RPCErrorReply(code: GPTError.invalidInput, message: "a streamed question cannot be batched")) }
            do { return .success(try await self.prepare(call.request, context: call.context)) } catch { return .failure(error) }
        }
        // Cached answers are looked up together and answered now; every other question (a
        // miss, or one that bypasses or refreshes the cache) is answered later, on its own.
        let lookups = prepared.enumerated().compactMap { index, item -> (index: Int, question: Question)? in
            guard case .success(let question) = item, question.request.cache == .use else { return nil }
            return (index, question)
        }
        let found = await self.store.lookup(lookups.map { ($0.question.key, $0.question.quotaKey) })
        let answered = await Self.map(Array(lookups.indices), concurrently: converse) { n -> Result<AskResponse, any Error>? in
            guard let hit = found[n].0 else { return nil }
            let (index, question) = (lookups[n].index, lookups[n].question)
            do { return .success(try await self.answer(question, cached: hit, used: found[n].used, context: calls[index].context)) } catch {
                return .failure(error)
            }
        }
        var now: [Int: Result<AskResponse, any Error>] = [:]
        for (n, result) in answered.enumerated() where result != nil { now[lookups[n].index] = result }
        return prepared.enumerated().map { index, item in
            switch item {
            case .failure(let refusal):
                return .answer(.failure(refusal))
            case .success(let question):
                if let result = now[index] { return .answer(result) }
                return .later { try await self.answerFresh(question, context: calls[index].context) }
            }
        }
    }

    /// `transform` of every item, in order; concurrently if asked.
    static func map<T: Sendable, R: Sendable>(_ items: [T], concurrently: Bool,
                                              _ transform: @escaping @Sendable (T) async -> R) async -> [R] {
        guard concurrently, items.count > 1 else {
            var out: [R] = []
            out.reserveCapacity(items.count)
            for item in items { out.append(await transform(item)) }
            return out
        }
        // Children return an `Indexed` (AiraMessaging), not an (Int, R) tuple.
        let done = await withTaskGroup(of: Indexed<R>.self) { group in
            for (index, item) in items.enumerated() { group.addTask { Indexed(index: index, value: await transform(item)) } }
            return await group.reduce(into: [Indexed<R>]()) { $0.append($1) }
        }
        return done.sorted { $0.index < $1.index }.map(\.value)
    }

    func prepare(_ request: AskRequest, context: MessageContext) async throws -> Question {
        let started = ContinuousClock.now
        let deadline = context.message.deadline ?? Date().addingTimeInterval(self.defaultDeadline.seconds)
        guard !request.messages.isEmpty, request.messages.contains(where: { $0.role == "user" && !$0.content.isEmpty }) else {
            throw RPCErrorReply(code: GPTError.invalidInput, message: "ask something: no user message")
        }
        if let c = request.conversationId, !ConversationStore.isValidID(c) {
            throw RPCErrorReply(code: GPTError.invalidInput, message: "conversationId: 1–64 letters, digits, '-' or '_'")
        }
        let model = request.model ?? self.upstream.configuration.model
        let limit = self.quotas[request.role] ?? self.quotas["USER"] ?? 100
        var messages = request.messages
        if let c = request.conversationId { messages = await self.store.history(user: request.userId, conversation: c) + messages }
        let key = CacheKey(model: model, version: self.cacheVersion, messages: messages, parameters: request.parameters)
        let (quotaKey, resetAt) = AnswerStore.quotaKey(user: request.userId, now: Date())
        let messageID = context.messageID.isEmpty ? MessageID.random() : context.messageID
        return Question(request: request, started: started, deadline: deadline, model: model, limit: limit, messages: messages,
                        key: key, quotaKey: quotaKey, resetAt: resetAt, attemptID: "\(messageID):\(key.digest)")
    }

    /// 1. A cached answer (free: it costs nothing, so it does not count against the quota).
    private func answer(_ question: Question, cached hit: Completion, used: Int?, context: MessageContext) async throws -> AskResponse {
        // An answer cached with placeholders is restored with this conversation's (the same ones).
        let names = self.upstreamRedactor != nil && hit.text.utf8.contains(UInt8(ascii: "[")) ? self.pseudonymize(question.messages).names
                                                                                             : Pseudonyms()
        if question.request.stream { try await self.replay(hit, names: names, context: context) }
        let quota = QuotaStatus(used: min(used ?? 0, question.limit), limit: question.limit, resetAt: question.resetAt)
        return try await self.finish(question, completion: Self.restored(hit, names), cached: true, paid: false, quota: quota,
                                     upstreamWait: nil, context: context)
    }

    /// 2. The budgets and the quota, then 3. one upstream call for identical questions in
    /// flight, here and on other instances.
    private func answerFresh(_ question: Question, context: MessageContext) async throws -> AskResponse {
        let request = question.request
        let (key, deadline, limit, resetAt) = (question.key, question.deadline, question.limit, question.resetAt)
        let maxTokens = self.budgets.maxTokens(request.parameters.maxTokens)
        // What the upstream is sent: personal data as placeholders, when so configured.
        let (sent, names) = self.pseudonymize(question.messages)
        let reservation = try await self.budgets.reserve(attemptID: question.attemptID, user: request.userId, role: request.role,
                                                         model: question.model, messages: sent, maxTokens: maxTokens)
        guard let quota = await self.store.consumeQuota(user: request.userId, limit: limit, charge: question.attemptID) else {
            await self.budgets.settle(reservation, paid: nil)
            Self.quotaRejected.increment()
            throw RPCErrorReply(code: GPTError.quotaExceeded,
                                message: "daily question quota of \(limit) used up; it resets at \(iso8601(resetAt))",
                                details: ["limit": String(limit), "resetAt": iso8601(resetAt)])
        }
        // The cache key keeps the question's own parameters; only the upstream is told the bound.
        var parameters = request.parameters
        parameters.maxTokens = maxTokens
        let upstreamRequest = ChatCompletionRequest(model: question.model, messages: sent, parameters: parameters)
        let restorer = RestoringStream(names)
        let streamTo: @Sendable (String) async -> Void = { piece in
            let out = restorer.feed(piece)
            if !out.isEmpty { try? context.sendPartialReply(AskChunk(delta: out)) }
        }
        let onDelta = request.stream ? streamTo : nil
        let fresh: Fresh
        let waiting = ContinuousClock.now
        do {
            if request.cache == .bypass {
                fresh = Fresh(completion: try await self.upstream.complete(upstreamRequest, deadline: deadline, onDelta: onDelta), paid: true)
            } else {
                fresh = try await self.local.run(key.description) {
                    try await self.distributed(key, upstreamRequest, deadline: deadline, attemptID: question.attemptID, onDelta: onDelta,
                                               names: names, context: context)
                } follower: { completion in
                    if request.stream { try? await self.replay(completion, names: names, context: context) }
                }
            }
        } catch {
            await self.budgets.settle(reservation, paid: nil)
            await self.store.refundQuota(user: request.userId, charge: question.attemptID)
            self.metrics.failed(model: question.model, errorType: (error as? RPCErrorReply)?.code ?? "internal",
                                duration: ContinuousClock.now - question.started)
            throw error
        }
        let upstreamWait = ContinuousClock.now - waiting
        if request.stream, case let tail = restorer.finish(), !tail.isEmpty { try? context.sendPartialReply(AskChunk(delta: tail)) }
        await self.budgets.settle(reservation, paid: fresh.paid ? fresh.completion : nil)
        return try await self.finish(question, completion: Self.restored(fresh.completion, names), cached: false, paid: fresh.paid, quota: quota,
                                     upstreamWait: upstreamWait, context: context)
    }

    /// Leads or follows the question across instances; the leader caches the answer.
    private func distributed(_ key: CacheKey, _ request: ChatCompletionRequest, deadline: Date, attemptID: String,
                             onDelta: (@Sendable (String) async -> Void)?, names: Pseudonyms, context: MessageContext) async throws -> Fresh {
        switch await self.store.join(key, deadline: deadline, token: attemptID) {
        case .answered(let completion):
            if onDelta != nil { try? await self.replay(completion, names: names, context: context) }
            return Fresh(completion: completion, paid: false)
        case .alone:
            return Fresh(completion: try await self.callAndCache(key, request, deadline: deadline, onDelta: onDelta), paid: true)
        case .lead(let token):
            do {
                let completion = try await self.callAndCache(key, request, deadline: deadline, onDelta: onDelta)
                await self.store.finish(key, token: token, completion: completion)
                return Fresh(completion: completion, paid: true)
            } catch {
                await self.store.finish(key, token: token, completion: nil)
                throw error
            }
        }
    }

    private func callAndCache(_ key: CacheKey, _ request: ChatCompletionRequest, deadline: Date,
                              onDelta: (@Sendable (String) async -> Void)?) async throws -> Completion {
        let completion = try await self.upstream.complete(request, deadline: deadline, onDelta: onDelta)
        if completion.isCacheable { await self.store.store(completion, key: key) }
        return completion
    }

    /// Sends a finished answer to a streaming caller piece by piece: the upstream's own pieces
    /// when it was streamed, else the text cut before each space (so a cached answer streams
    /// the same whether it was first asked streamed or not), `replayDelay` apart.
    private func replay(_ completion: Completion, names: Pseudonyms, context: MessageContext) async throws {
        let pieces = completion.chunks ?? Self.pieces(of: completion.refusal ?? completion.text)
        var restorer = StreamRestorer(names)
        for (i, piece) in pieces.enumerated() {
            if i > 0, self.replayDelay > .zero { try await Task.sleep(for: self.replayDelay) }
            let out = restorer.feed(piece)
            if !out.isEmpty { try context.sendPartialReply(AskChunk(delta: out)) }
        }
        let tail = restorer.finish()
        if !tail.isEmpty { try context.sendPartialReply(AskChunk(delta: tail)) }
    }

    /// The messages with personal data replaced by placeholders (``Pseudonyms``), and the
    /// placeholders; unchanged without an upstream redactor. The system prompt is the
    /// operator's and is sent as it is.
    func pseudonymize(_ messages: [ChatMessage]) -> (messages: [ChatMessage], names: Pseudonyms) {
        guard let redactor = self.upstreamRedactor else { return (messages, Pseudonyms()) }
        var names = Pseudonyms()
        let sent = messages.map { m in m.role == "system" ? m : ChatMessage(role: m.role, content: names.replace(m.content, redactor: redactor)) }
        return (sent, names)
    }

    /// The answer with its placeholders replaced by the values they stand for.
    static func restored(_ completion: Completion, _ names: Pseudonyms) -> Completion {
        guard !names.isEmpty else { return completion }
        var restored = completion
        restored.text = names.restore(completion.text)
        restored.refusal = completion.refusal.map { names.restore($0) }
        restored.chunks = nil
        return restored
    }

    /// `text` in pieces that start at its spaces; joined, they are `text` again.
    static func pieces(of text: String) -> [String] {
        var pieces: [String] = []
        var current = Substring()
        var start = text.startIndex
        for index in text.indices where text[index] == " " && index != text.startIndex {
            current = text[start..<index]
            if !current.isEmpty { pieces.append(String(current)) }
            start = index
        }
        current = text[start...]
        if !current.isEmpty { pieces.append(String(current)) }
        return pieces
    }

    /// `upstreamWait`: how long the question waited for the model (its own call, or another's in
    /// single flight); the gateway subtracts it from its own time for `X-Aira-Overhead-Ms`.
    private func finish(_ question: Question, completion: Completion, cached: Bool, paid: Bool, quota: QuotaStatus,
                        upstreamWait: Duration?, context: MessageContext) async throws -> AskResponse {
        let request = question.request
        if let c = request.conversationId {
            await self.store.append(request.messages + [ChatMessage(role: "assistant", content: completion.text)],
                                    user: request.userId, conversation: c)
        }
        (cached ? Self.askedCached : Self.asked).increment()
        let elapsed = ContinuousClock.now - question.started
        self.metrics.answered(model: question.model, cached: cached, paid: paid, usage: completion.usage, duration: elapsed)
        var attributes = ["cached": String(cached), "model": completion.model, "finishReason": completion.finishReason,
                          "latencyMs": String(elapsed.milliseconds),
                          "question": Self.auditedQuestion(request, redactor: self.auditRedactor)]
        if let usage = completion.usage {
            attributes["promptTokens"] = String(usage.promptTokens)
            attributes["completionTokens"] = String(usage.completionTokens)
        }
        if let c = request.conversationId { attributes["conversationId"] = c }
        // Not awaited: the confirm of a persistent audit event is not the caller's wait, and a
        // task per question waiting for it cost more than the event (the trail logs failures).
        self.trail.post(AuditEvent(type: "gpt.asked", userId: request.userId, ip: request.client.ip, attributes: attributes))
        return AskResponse(id: "chatcmpl-\(MessageID.random().prefix(18))", answer: completion.refusal ?? completion.text,
                           model: completion.model, finishReason: completion.finishReason, cached: cached, usage: completion.usage,
                           quota: quota, conversationId: request.conversationId,
                           upstreamMs: upstreamWait.map { Double($0.nanoseconds) / 1e6 })
    }
}

extension GPTService {
    /// What the audit event keeps of a question: the last user message, personal data replaced
    /// (before shortening, so nothing is cut in half and kept), its first 500 characters.
    static func auditedQuestion(_ request: AskRequest, redactor: PIIRedactor?) -> String {
        let question = request.messages.last(where: { $0.role == "user" })?.content ?? ""
        return String((redactor?.redact(question) ?? question).prefix(500))
    }
}

/// A ``StreamRestorer`` that the upstream's delta callback feeds, one piece at a time.
final class RestoringStream: Sendable {
    private let state: Mutex<StreamRestorer>

    init(_ names: Pseudonyms) { self.state = Mutex(StreamRestorer(names)) }

    func feed(_ piece: String) -> String { self.state.withLock { $0.feed(piece) } }
    func finish() -> String { self.state.withLock { $0.finish() } }
}

/// A fresh answer, and whether this question's own upstream call produced it (`paid`) or
/// another caller's did (single flight).
struct Fresh: Sendable {
    var completion: Completion
    var paid: Bool
}

/// Single flight inside one process: the first caller for a key runs the work, the others
/// await its result (and did not pay for it).
final class LocalFlights: Sendable {
    private let flights = Mutex<[String: Task<Fresh, any Error>]>([:])

    func run(_ key: String, _ work: @escaping @Sendable () async throws -> Fresh,
             follower: @Sendable (Completion) async -> Void) async throws -> Fresh {
        let (task, leader) = self.flights.withLock { flights -> (Task<Fresh, any Error>, Bool) in
            if let existing = flights[key] { return (existing, false) }
            let task = Task { try await work() }
            flights[key] = task
            return (task, true)
        }
        if leader {
            defer { _ = self.flights.withLock { $0.removeValue(forKey: key) } }
            return try await task.value
        }
        let fresh = try await task.value
        await follower(fresh.completion)
        return Fresh(completion: fresh.completion, paid: false)
    }
}
