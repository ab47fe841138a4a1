import AiraContracts
import AiraCore
import AiraLLM
import AiraMessaging
import Foundation
import Logging
import Metrics
import Synchronization

/// Answers `gpt.ask`: cache → quota → single flight → upstream → cache, with an audit event
/// per question. See docs/gpt.md.
struct GPTService: Sendable {
    let upstream: Upstream
    let store: AnswerStore
    let cacheVersion: String
    /// Questions per day by role (`USER`, `ADMIN`).
    let quotas: [String: Int]
    let trail: AuditTrail
    let defaultDeadline: Duration = .seconds(60)
    let local = LocalFlights()

    private static let asked = Counter(label: "aira_gpt_questions_total", dimensions: [("cached", "false")])
    private static let askedCached = Counter(label: "aira_gpt_questions_total", dimensions: [("cached", "true")])

    var routes: RPCRoutes {
        var routes = RPCRoutes()
        routes.on(AskRequest.self) { try await self.ask($0, context: $1) }
        return routes
    }

    func ask(_ request: AskRequest, context: MessageContext) async throws -> AskResponse {
        let started = ContinuousClock.now
        let deadline = context.message.deadline ?? Date().addingTimeInterval(self.defaultDeadline.seconds)
        guard !request.messages.isEmpty, request.messages.contains(where: { $0.role == "user" && !$0.content.isEmpty }) else {
            throw RPCErrorReply(code: GPTError.invalidInput, message: "ask something: no user message")
        }
        if let c = request.conversationId, c.isEmpty || c.count > 64 || !c.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "-" || $0 == "_" }) {
            throw RPCErrorReply(code: GPTError.invalidInput, message: "conversationId: 1–64 letters, digits, '-' or '_'")
        }
        let model = request.model ?? self.upstream.configuration.model
        let limit = self.quotas[request.role] ?? self.quotas["USER"] ?? 100
        var messages = request.messages
        if let c = request.conversationId { messages = await self.store.history(user: request.userId, conversation: c) + messages }
        let key = CacheKey(model: model, version: self.cacheVersion, messages: messages, parameters: request.parameters)
        let (quotaKey, resetAt) = AnswerStore.quotaKey(user: request.userId, now: Date())

        // 1. The cache (free: a cached answer costs nothing, so it does not count).
        if request.cache == .use {
            let (hit, used) = await self.store.lookup(key, quotaKey: quotaKey)
            if let hit {
                if request.stream { try context.sendPartialReply(AskChunk(delta: hit.text)) }
                let quota = QuotaStatus(used: min(used ?? 0, limit), limit: limit, resetAt: resetAt)
                return try await self.finish(request, messages: messages, completion: hit, cached: true, quota: quota,
                                             started: started, context: context)
            }
        }
        // 2. The quota.
        guard let quota = await self.store.consumeQuota(user: request.userId, limit: limit) else {
            throw RPCErrorReply(code: GPTError.quotaExceeded,
                                message: "daily question quota of \(limit) used up; it resets at \(iso8601(resetAt))",
                                details: ["limit": String(limit), "resetAt": iso8601(resetAt)])
        }
        // 3. One upstream call for identical questions in flight, here and on other instances.
        let upstreamRequest = ChatCompletionRequest(model: model, messages: messages, parameters: request.parameters)
        let streamTo: @Sendable (String) async -> Void = { piece in try? context.sendPartialReply(AskChunk(delta: piece)) }
        let onDelta = request.stream ? streamTo : nil
        let completion: Completion
        do {
            if request.cache == .bypass {
                completion = try await self.upstream.complete(upstreamRequest, deadline: deadline, onDelta: onDelta)
            } else {
                completion = try await self.local.run(key.description) {
                    try await self.distributed(key, upstreamRequest, deadline: deadline, onDelta: onDelta)
                } follower: { completion in
                    if request.stream { try? context.sendPartialReply(AskChunk(delta: completion.text)) }
                }
            }
        } catch {
            await self.store.refundQuota(user: request.userId)
            throw error
        }
        return try await self.finish(request, messages: messages, completion: completion, cached: false, quota: quota,
                                     started: started, context: context)
    }

    /// Leads or follows the question across instances; the leader caches the answer.
    private func distributed(_ key: CacheKey, _ request: ChatCompletionRequest, deadline: Date,
                             onDelta: (@Sendable (String) async -> Void)?) async throws -> Completion {
        switch await self.store.join(key, deadline: deadline) {
        case .answered(let completion):
            if let onDelta { await onDelta(completion.text) }
            return completion
        case .alone:
            return try await self.callAndCache(key, request, deadline: deadline, onDelta: onDelta)
        case .lead(let token):
            do {
                let completion = try await self.callAndCache(key, request, deadline: deadline, onDelta: onDelta)
                await self.store.finish(key, token: token, completion: completion)
                return completion
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

    private func finish(_ request: AskRequest, messages: [ChatMessage], completion: Completion, cached: Bool, quota: QuotaStatus,
                        started: ContinuousClock.Instant, context: MessageContext) async throws -> AskResponse {
        if let c = request.conversationId {
            await self.store.append(request.messages + [ChatMessage(role: "assistant", content: completion.text)],
                                    user: request.userId, conversation: c)
        }
        (cached ? Self.askedCached : Self.asked).increment()
        let elapsed = ContinuousClock.now - started
        var attributes = ["cached": String(cached), "model": completion.model, "finishReason": completion.finishReason,
                          "latencyMs": String(elapsed.milliseconds),
                          "question": String((request.messages.last(where: { $0.role == "user" })?.content ?? "").prefix(500))]
        if let usage = completion.usage {
            attributes["promptTokens"] = String(usage.promptTokens)
            attributes["completionTokens"] = String(usage.completionTokens)
        }
        if let c = request.conversationId { attributes["conversationId"] = c }
        let event = AuditEvent(type: "gpt.asked", userId: request.userId, ip: request.client.ip, attributes: attributes)
        // After the reply: the confirm of a persistent audit event is not the caller's wait.
        context.afterReply {
            do {
                try await self.trail.record(event)
            } catch {
                context.logger.error("audit event not published", metadata: ["event": "gpt.asked", LogKey.error: "\(error)"])
            }
        }
        return AskResponse(id: "chatcmpl-\(MessageID.random().prefix(18))", answer: completion.refusal ?? completion.text,
                           model: completion.model, finishReason: completion.finishReason, cached: cached, usage: completion.usage,
                           quota: quota, conversationId: request.conversationId)
    }
}

/// Single flight inside one process: the first caller for a key runs the work, the others
/// await its result.
final class LocalFlights: Sendable {
    private let flights = Mutex<[String: Task<Completion, any Error>]>([:])

    func run(_ key: String, _ work: @escaping @Sendable () async throws -> Completion,
             follower: @Sendable (Completion) async -> Void) async throws -> Completion {
        let (task, leader) = self.flights.withLock { flights -> (Task<Completion, any Error>, Bool) in
            if let existing = flights[key] { return (existing, false) }
            let task = Task { try await work() }
            flights[key] = task
            return (task, true)
        }
        if leader {
            defer { _ = self.flights.withLock { $0.removeValue(forKey: key) } }
            return try await task.value
        }
        let completion = try await task.value
        await follower(completion)
        return completion
    }
}
