import AiraRedis
import Foundation
import Subprocess
import Testing

/// A replicated Redis of its own (a primary, a replica and a sentinel: three `redis-server`
/// processes on free ports under a temporary folder), failed over while a client writes.
/// The redis-server the sentinel tests start (AIRA_REDIS_SERVER, default Debian's).
let redisServerPath = ProcessInfo.processInfo.environment["AIRA_REDIS_SERVER"] ?? "/usr/bin/redis-server"

@Suite("Redis through Sentinel", .enabled(if: TestServers.available && FileManager.default.isExecutableFile(atPath: redisServerPath)),
       .serialized)
struct RedisSentinelTests {
    static let server = redisServerPath

    /// Three servers and their folder; `stop()` kills them (by pid file) and removes it.
    struct Replicated {
        let folder: URL
        let primary: Int
        let replica: Int
        let sentinel: Int
        let name = uniqueName("primary")

        init() async throws {
            self.folder = FileManager.default.temporaryDirectory.appendingPathComponent(uniqueName("aira-sentinel"))
            try FileManager.default.createDirectory(at: self.folder, withIntermediateDirectories: true)
            (self.primary, self.replica, self.sentinel) = (try freePort(), try freePort(), try freePort())
            let dir = self.folder.path
            try await Self.shell("""
                \(RedisSentinelTests.server) --port \(primary) --bind 127.0.0.1 --daemonize yes --pidfile \(dir)/primary.pid \
                  --dir \(dir) --save '' --appendonly no --logfile \(dir)/primary.log
                \(RedisSentinelTests.server) --port \(replica) --bind 127.0.0.1 --daemonize yes --pidfile \(dir)/replica.pid \
                  --dir \(dir) --save '' --appendonly no --logfile \(dir)/replica.log --replicaof 127.0.0.1 \(primary)
                cat > \(dir)/sentinel.conf <<CONF
                port \(sentinel)
                bind 127.0.0.1
                daemonize yes
                pidfile \(dir)/sentinel.pid
                logfile \(dir)/sentinel.log
                dir \(dir)
                sentinel monitor \(name) 127.0.0.1 \(primary) 1
                sentinel down-after-milliseconds \(name) 1000
                sentinel failover-timeout \(name) 10000
                CONF
                \(RedisSentinelTests.server) \(dir)/sentinel.conf --sentinel
                """)
        }

        func stop() async {
            let dir = self.folder.path
            try? await Self.shell("for f in \(dir)/*.pid; do [ -f \"$f\" ] && kill -9 $(cat \"$f\") 2>/dev/null; done; rm -rf \(dir)")
        }

        /// A client of one server, without Sentinel.
        func direct(_ port: Int) throws -> RedisClient {
            RedisClient(configuration: try RedisConfiguration(url: "redis://127.0.0.1:\(port)"))
        }

        static func shell(_ script: String) async throws {
            let result = try await Subprocess.run(.path("/bin/bash"), arguments: ["-ec", script], output: .discarded, error: .discarded)
            try #require(result.terminationStatus.isSuccess, "shell: \(script)")
        }
    }

    @Test("the client finds the primary through the sentinels (skipping one that is down) and follows it through a failover")
    func failover() async throws {
        let r = try await Replicated()
        do {
            let down = try closedPort()
            let client = RedisClient(configuration: try RedisConfiguration(
                url: "redis-sentinel://127.0.0.1:\(down),127.0.0.1:\(r.sentinel)/0#\(r.name)"))
            let primary = try r.direct(r.primary), replica = try r.direct(r.replica), sentinel = try r.direct(r.sentinel)
            let key = uniqueName("sentinel")

            // The replica has synced and the sentinel knows the primary.
            #expect(try await eventually(timeout: .seconds(15), every: .milliseconds(100)) {
                let info = try await replica.send("INFO", "replication").string ?? ""
                let known = (try? await sentinel.send("SENTINEL", "get-master-addr-by-name", r.name).array?.count) ?? 0
                return info.contains("master_link_status:up") && known == 2
            })
            #expect(try await client.incr(key) == 1)
            #expect(try await primary.get(key) == "1", "the first write went to the primary")

            // A forced failover: the replica is promoted, the old primary becomes its replica.
            try await sentinel.send("SENTINEL", "FAILOVER", r.name)
            var failed = 0
            var lastValue: Int64 = 1
            let deadline = ContinuousClock.now + .seconds(20)
            while ContinuousClock.now < deadline {
                do {
                    lastValue = try await client.incr(key)
                    let promoted = (try? await replica.send("ROLE").array?.first?.string) == "master"
                    if promoted, try await replica.get(key) == String(lastValue) { break }
                } catch let error as RedisError {
                    #expect(error.isRetriable, "a failover's errors are retriable: \(error)")
                    failed += 1
                }
                try await Task.sleep(for: .milliseconds(50))
            }
            #expect(try await replica.send("ROLE").array?.first?.string == "master", "the sentinel promoted the replica")
            #expect(try await replica.get(key) == String(lastValue), "writes after the failover reach the new primary")
            #expect(try await client.incr(key) == lastValue + 1)
            #expect(try await client.get(key) == String(lastValue + 1))
            // Every write the client saw succeed is there (the counter never went back).
            #expect(lastValue >= 2)
            TestServers.logger.info("sentinel failover", metadata: ["failed_writes": "\(failed)", "value": "\(lastValue)"])
        } catch {
            await r.stop()
            throw error
        }
        await r.stop()
    }

    @Test("no sentinel knows the name: a clear, retriable error naming each sentinel's answer")
    func unknownName() async throws {
        let r = try await Replicated()
        do {
            let client = RedisClient(configuration: try RedisConfiguration(
                url: "redis-sentinel://127.0.0.1:\(r.sentinel)#no-such-primary"))
            await #expect {
                try await client.get("x")
            } throws: { error in
                guard let e = error as? RedisError, e.isRetriable else { return false }
                return "\(e)".contains("monitors no primary named 'no-such-primary'")
            }
        } catch {
            await r.stop()
            throw error
        }
        await r.stop()
    }
}
