import AiraRedis
import Foundation
import Testing

@Suite("Redis client", .enabled(if: TestServers.available))
struct RedisClientTests {
    let redis: RedisClient
    let prefix = uniqueName("redis")

    init() throws {
        redis = RedisClient(configuration: try RedisConfiguration(url: TestServers.redisURL!))
    }

    @Test("strings, expiry, NX, counters")
    func strings() async throws {
        let k = "\(prefix):s"
        #expect(try await redis.get(k) == nil)
        #expect(try await redis.set(k, "v1"))
        #expect(try await redis.get(k) == "v1")
        #expect(try await redis.set(k, "v2", condition: .ifNotExists) == false)
        #expect(try await redis.get(k) == "v1")
        #expect(try await redis.set("\(k):nx", "a", expire: .seconds(30), condition: .ifNotExists))
        let ttl = try #require(try await redis.ttl("\(k):nx"))
        #expect(ttl > .seconds(25) && ttl <= .seconds(30))
        #expect(try await redis.set("\(k):px", "a", expire: .milliseconds(150)))
        #expect(try await eventually(timeout: .seconds(3)) { try await redis.get("\(k):px") == nil })
        #expect(try await redis.incr("\(k):n") == 1)
        #expect(try await redis.incr("\(k):n", by: 5) == 6)
        #expect(try await redis.expire("\(k):n", after: .seconds(10)))
        #expect(try await redis.del(k, "\(k):nx", "\(k):n") == 3)
        // Binary-safe values.
        let bytes: [UInt8] = [0, 1, 2, 255, 0, 10]
        try await redis.set("\(k):bin", bytes: bytes)
        #expect(try await redis.getBytes("\(k):bin") == bytes)
        try await redis.del("\(k):bin")
    }

    @Test("sets, hashes, pipelines, server errors")
    func collections() async throws {
        let k = "\(prefix):c"
        #expect(try await redis.sadd("\(k):set", ["a", "b", "c"]) == 3)
        #expect(try await redis.sismember("\(k):set", "b"))
        #expect(try await redis.srem("\(k):set", ["b"]) == 1)
        #expect(try await redis.smembers("\(k):set") == ["a", "c"])
        #expect(try await redis.scard("\(k):set") == 2)
        #expect(try await redis.hset("\(k):h", ["f1": "1", "f2": "two"]) == 2)
        #expect(try await redis.hincrby("\(k):h", "f1", by: 4) == 5)
        #expect(try await redis.hget("\(k):h", "f2") == "two")
        #expect(try await redis.hgetall("\(k):h") == ["f1": "5", "f2": "two"])

        let replies = try await redis.pipeline((0..<100).map { _ in ["INCR", "\(k):p"] } + [["GET", "\(k):p"], ["HGET", "\(k):set", "x"]])
        #expect(replies.count == 102)
        #expect(replies[99] == RedisValue.integer(100))
        #expect(replies[100].string == "100")
        if case .error(let e) = replies[101] { #expect(e.hasPrefix("WRONGTYPE")) } else { Issue.record("expected WRONGTYPE") }

        await #expect {
            try await redis.send("HGET", "\(k):set", "x")
        } throws: { error in
            if case RedisError.server(let text) = error { return text.hasPrefix("WRONGTYPE") }
            return false
        }
        try await redis.del("\(k):set", "\(k):h", "\(k):p")
    }

    @Test("atomic scripts, loaded again after SCRIPT FLUSH")
    func scripts() async throws {
        let k = "\(prefix):lua"
        let incrWithCap = RedisScript("""
            local v = redis.call('INCR', KEYS[1])
            if v == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
            if v > tonumber(ARGV[1]) then return {0, v} end
            return {1, v}
            """)
        for i in 1...3 {
            let r = try await redis.eval(incrWithCap, keys: [k], args: ["2", "60000"]).array
            #expect(r?.first == .integer(i <= 2 ? 1 : 0))
        }
        try await redis.send("SCRIPT", "FLUSH")
        let again = try await redis.eval(incrWithCap, keys: [k], args: ["2", "60000"]).array
        #expect(again?.last == .integer(4))
        #expect(try #require(try await redis.ttl(k)) > .seconds(50))
        try await redis.del(k)
    }

    @Test("many concurrent callers share the pool")
    func concurrency() async throws {
        // A patient pool: this is about sharing 8 connections, not about lease timeouts.
        var config = redis.configuration
        config.leaseTimeout = .seconds(30)
        let redis = RedisClient(configuration: config)
        defer { Task { await redis.shutdown() } }
        let k = "\(prefix):conc"
        try await withThrowingTaskGroup(of: Void.self) { group in
            for _ in 0..<500 { group.addTask { _ = try await redis.incr(k) } }
            try await group.waitForAll()
        }
        #expect(try await redis.get(k) == "500")
        try await redis.del(k)
    }

    @Test("Redis down: refused connections fail fast and clearly")
    func down() async throws {
        let dead = RedisClient(configuration: RedisConfiguration(port: try closedPort()))
        let started = ContinuousClock.now
        await #expect {
            _ = try await dead.get("x")
        } throws: { error in
            guard let e = error as? RedisError, case .connectFailed(let text) = e else { return false }
            return e.isRetriable && text.contains("127.0.0.1")
        }
        #expect(ContinuousClock.now - started < .milliseconds(500))
        #expect(await dead.ping() == false)
    }

    @Test("Redis hung: a command times out instead of hanging the caller")
    func hung() async throws {
        let silent = try SilentServer()
        let client = RedisClient(configuration: RedisConfiguration(port: silent.port, commandTimeout: .milliseconds(300)))
        let started = ContinuousClock.now
        await #expect(throws: RedisError.self) { _ = try await client.get("x") }
        let elapsed = ContinuousClock.now - started
        #expect(elapsed >= .milliseconds(250) && elapsed < .seconds(2))
        withExtendedLifetime(silent) {}
    }
}

@Suite("Redis auto-pipelining", .enabled(if: TestServers.available))
struct RedisAutoPipelineTests {
    @Test("2,000 concurrent callers over two round trips at a time: every caller gets its own replies, counters exact")
    func concurrentCallers() async throws {
        var config = try RedisConfiguration(url: TestServers.redisURL!)
        config.pipelines = 2
        let redis = RedisClient(configuration: config)
        let prefix = uniqueName("autopipe")
        try await withThrowingTaskGroup(of: Void.self) { group in
            for i in 0..<2000 {
                group.addTask {
                    try await redis.set("\(prefix):k\(i)", "v\(i)")
                    #expect(try await redis.get("\(prefix):k\(i)") == "v\(i)")
                    _ = try await redis.incr("\(prefix):n\(i % 10)")
                    let replies = try await redis.pipeline([["GET", "\(prefix):k\(i)"], ["STRLEN", "\(prefix):k\(i)"]])
                    #expect(replies[0].string == "v\(i)" && replies[1].int == Int64("v\(i)".utf8.count))
                }
            }
            try await group.waitForAll()
        }
        for n in 0..<10 { #expect(try await redis.get("\(prefix):n\(n)") == "200") }
        // A server error stays with its own caller.
        await #expect(throws: RedisError.self) { try await redis.send("INCR", "\(prefix):k1") }
        #expect(try await redis.get("\(prefix):k2") == "v2")
        for i in stride(from: 0, to: 2000, by: 200) {
            _ = try await redis.send(["DEL"] + (i..<(i + 200)).map { "\(prefix):k\($0)" })
        }
        _ = try await redis.send(["DEL"] + (0..<10).map { "\(prefix):n\($0)" })
        await redis.shutdown()
    }
}
