import AiraLLM
import AiraRedis
import Foundation
import Hummingbird

/// `/api/gpt/conversations`: the user's conversations with the model, as aira-gpt-proxy keeps
/// them (``ConversationStore``): list (most recently used first), read one with its messages,
/// rename, delete. A question joins a conversation through `conversationId` on
/// `/api/gpt/qna` or the `X-Aira-Conversation` header on `/v1/chat/completions`.
struct ConversationRoutes: Sendable {
    let store: ConversationStore
    let bodyLimit: Int

    struct Rename: Decodable { var title: String }

    func list(_ request: Request, context: GatewayContext) async throws -> Response {
        let user = try AuthRoutes.userID(try context.user())
        var limit = 50
        if let raw = request.uri.queryParameters.get("limit") {
            guard let n = Int(raw), (1...200).contains(n) else { throw APIError.badRequest("invalid_request", "'limit' must be 1–200") }
            limit = n
        }
        let items = try await self.redis(context, { try await self.store.list(user: user, limit: limit) })
        return JSONResponse.make(.ok, PageBody(items: items, nextCursor: nil))
    }

    func get(_ request: Request, context: GatewayContext) async throws -> Response {
        let (user, id) = try self.target(context)
        guard let conversation = try await self.redis(context, { try await self.store.get(user: user, conversation: id) }) else {
            throw APIError.notFound("conversation")
        }
        return JSONResponse.make(.ok, conversation)
    }

    func rename(_ request: Request, context: GatewayContext) async throws -> Response {
        let (user, id) = try self.target(context)
        let body = try await JSONBody.decode(Rename.self, from: request, limit: self.bodyLimit)
        let title = try required(body.title, "title")
        guard title.count <= 200 else { throw APIError.badRequest("invalid_request", "'title' must be at most 200 characters") }
        guard try await self.redis(context, { try await self.store.rename(user: user, conversation: id, title: title) }),
              let conversation = try await self.redis(context, { try await self.store.get(user: user, conversation: id) }) else {
            throw APIError.notFound("conversation")
        }
        return JSONResponse.make(.ok, ConversationStore.Summary(id: id, title: conversation.title, createdAt: conversation.createdAt,
                                                                updatedAt: conversation.updatedAt,
                                                                messageCount: conversation.messages.count))
    }

    func delete(_ request: Request, context: GatewayContext) async throws -> Response {
        let (user, id) = try self.target(context)
        guard try await self.redis(context, { try await self.store.delete(user: user, conversation: id) }) else {
            throw APIError.notFound("conversation")
        }
        return Response(status: .noContent)
    }

    /// The caller and the conversation id in the path (one that cannot exist is a 404).
    private func target(_ context: GatewayContext) throws -> (UUID, String) {
        let user = try AuthRoutes.userID(try context.user())
        guard let id = context.parameters.get("id"), ConversationStore.isValidID(id) else { throw APIError.notFound("conversation") }
        return (user, id)
    }

    /// Conversations live in Redis: while it is unreachable they are a 503, not a 500.
    private func redis<T>(_ context: GatewayContext, _ body: () async throws -> T) async throws -> T {
        try await backend("conversations are not reachable right now, try again", context, body)
    }
}
