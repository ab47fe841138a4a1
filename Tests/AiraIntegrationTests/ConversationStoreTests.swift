import AiraLLM
import AiraRedis
import Foundation
import Testing

@Suite("Conversations in Redis (ConversationStore): what the proxy writes and the gateway lists", .enabled(if: TestServers.available))
struct ConversationStoreTests {
    let redis: RedisClient
    let store: ConversationStore

    init() throws {
        redis = RedisClient(configuration: try RedisConfiguration(url: TestServers.redisURL!))
        store = ConversationStore(redis: redis, ttl: .seconds(600))
    }

    @Test("append, history, list newest first, rename, delete; the last 40 messages kept; every key expires")
    func lifecycle() async throws {
        let user = UUID()
        let t0 = Date(timeIntervalSince1970: 1_800_000_000)
        try await store.append([.init(role: "user", content: "  How do\nrabbits   dig?  "), .init(role: "assistant", content: "With paws.")],
                               user: user, conversation: "a", now: t0)
        try await store.append([.init(role: "user", content: "Second topic")], user: user, conversation: "b", now: t0.addingTimeInterval(5))
        try await store.append([.init(role: "user", content: "And burrows?"), .init(role: "assistant", content: "Deep.")],
                               user: user, conversation: "a", now: t0.addingTimeInterval(10))

        let list = try await store.list(user: user, limit: 10)
        #expect(list.map(\.id) == ["a", "b"])
        #expect(list[0].title == "How do rabbits dig?" && list[0].messageCount == 4)
        #expect(list[0].createdAt == t0 && list[0].updatedAt == t0.addingTimeInterval(10))
        #expect(try await store.list(user: user, limit: 1).map(\.id) == ["a"])
        #expect(try await store.history(user: user, conversation: "a").map(\.content) == ["  How do\nrabbits   dig?  ", "With paws.", "And burrows?", "Deep."])
        #expect(try await store.list(user: UUID(), limit: 10).isEmpty)

        for key in ["gpt:conv:\(user.lowercasedString):a", "gpt:conv-meta:\(user.lowercasedString):a", "gpt:convs:\(user.lowercasedString)"] {
            let ttl = try #require(try await redis.ttl(key), "\(key) has no TTL")
            #expect(ttl > .seconds(590) && ttl <= .seconds(600))
        }

        #expect(try await store.rename(user: user, conversation: "a", title: "Rabbits"))
        #expect(try await store.get(user: user, conversation: "a")?.title == "Rabbits")
        let long = String(repeating: "burrow ", count: 40)
        #expect(try await store.rename(user: user, conversation: "a", title: long))
        #expect(try await store.get(user: user, conversation: "a")?.title == String(long.trimmingCharacters(in: .whitespaces).prefix(199)) + "…")
        #expect(try await store.rename(user: user, conversation: "nope", title: "x") == false)
        #expect(try await redis.exists("gpt:conv-meta:\(user.lowercasedString):nope") == false)

        #expect(try await store.delete(user: user, conversation: "a"))
        #expect(try await store.delete(user: user, conversation: "a") == false)
        #expect(try await store.get(user: user, conversation: "a") == nil)
        #expect(try await store.list(user: user, limit: 10).map(\.id) == ["b"])

        let many = (0..<30).flatMap { i in [ChatMessage(role: "user", content: "q\(i)"), ChatMessage(role: "assistant", content: "a\(i)")] }
        try await store.append(many, user: user, conversation: "long")
        let kept = try await store.history(user: user, conversation: "long")
        #expect(kept.count == ConversationStore.maxMessages && kept.first?.content == "q10" && kept.last?.content == "a29")
    }

    @Test("a conversation that expired leaves the list when it is next listed")
    func expiredLeavesIndex() async throws {
        let user = UUID()
        try await store.append([.init(role: "user", content: "short-lived")], user: user, conversation: "gone")
        try await store.append([.init(role: "user", content: "still here")], user: user, conversation: "kept")
        _ = try await redis.del("gpt:conv:\(user.lowercasedString):gone", "gpt:conv-meta:\(user.lowercasedString):gone")
        #expect(try await store.list(user: user, limit: 10).map(\.id) == ["kept"])
        #expect(try await redis.send("ZCARD", "gpt:convs:\(user.lowercasedString)").int == 1)
    }

    @Test("titles and ids")
    func titlesAndIDs() {
        #expect(ConversationStore.title(from: "   ") == "New chat")
        #expect(ConversationStore.title(from: String(repeating: "word ", count: 40)).count == 80)
        #expect(ConversationStore.title(from: "요리 레시피\n알려줘") == "요리 레시피 알려줘")
        #expect(ConversationStore.isValidID("a-B_9") && ConversationStore.isValidID(String(repeating: "x", count: 64)))
        for bad in ["", "a/b", "a b", "é", String(repeating: "x", count: 65)] { #expect(!ConversationStore.isValidID(bad), "\(bad)") }
    }
}
