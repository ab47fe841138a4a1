import AiraAMQP
import AiraCore
import AiraPostgres
import AiraRedis
import AiraServiceKit
import Foundation
import Testing

@Suite("Configuration")
struct ConfigurationTests {
    @Test("AMQP URLs")
    func amqpURL() throws {
        let c = try AMQPConfiguration(url: "amqp://user:p%40ss@broker.local:5673/prod%2Fv1")
        #expect(c.host == "broker.local" && c.port == 5673 && c.user == "user" && c.password == "p@ss" && c.vhost == "prod/v1")
        let d = try AMQPConfiguration(url: "amqp://127.0.0.1")
        #expect(d.port == 5672 && d.vhost == "/" && d.user == "guest")
        #expect(throws: AMQPError.self) { try AMQPConfiguration(url: "http://x") }
    }

    @Test("AMQP URLs naming a cluster's nodes: each node, shared credentials and vhost")
    func amqpCluster() throws {
        let c = try AMQPConfiguration(url: "amqp://aira:p%40ss@rabbit-0:5672,rabbit-1,10.0.0.3:5674,[::1]:5675/prod")
        #expect(c.nodes == [.init(host: "rabbit-0", port: 5672), .init(host: "rabbit-1", port: 5672),
                            .init(host: "10.0.0.3", port: 5674), .init(host: "::1", port: 5675)])
        #expect(c.user == "aira" && c.password == "p@ss" && c.vhost == "prod")
        #expect(c.host == "rabbit-0" && c.port == 5672)
        #expect(c.nodes.map(\.description) == ["rabbit-0:5672", "rabbit-1:5672", "10.0.0.3:5674", "[::1]:5675"])
        let single = try AMQPConfiguration(url: "amqp://guest:guest@127.0.0.1:5673/")
        #expect(single.nodes == [.init(host: "127.0.0.1", port: 5673)])
        for bad in ["amqp://u:p@a:5672,,b/", "amqp://u:p@a:notaport,b/", "amqp://u:p@a,b:70000/", "amqp://u:p@/"] {
            #expect(throws: AMQPError.self, "\(bad)") { try AMQPConfiguration(url: bad) }
        }
    }

    @Test("Redis URLs")
    func redisURL() throws {
        let c = try RedisConfiguration(url: "redis://:secret@cache:6380/2")
        #expect(c.host == "cache" && c.port == 6380 && c.password == "secret" && c.database == 2)
        #expect(throws: RedisError.self) { try RedisConfiguration(url: "redis://cache/notanumber") }
        #expect(c.sentinel == nil)

        // Through Sentinel: several sentinels (default port 26379), the primary's name after `#`.
        let s = try RedisConfiguration(url: "redis-sentinel://:p%40ss@rfs-aira-redis,10.0.0.2:26380,[::1]/3#mymaster")
        #expect(s.sentinel?.primaryName == "mymaster")
        #expect(s.sentinel?.nodes.map(\.description) == ["rfs-aira-redis:26379", "10.0.0.2:26380", "[::1]:26379"])
        #expect(s.password == "p@ss" && s.database == 3)
        for bad in ["redis-sentinel://s1:26379/0", "redis-sentinel://s1,,s2#m", "redis-sentinel://s1:99999#m", "redis-sentinel://s1/x#m"] {
            #expect(throws: RedisError.self, "\(bad)") { try RedisConfiguration(url: bad) }
        }
        // Failover replies are retriable server errors; others are not.
        #expect(RedisError.server("READONLY You can't write against a read only replica.").isRetriable)
        #expect(RedisError.server("LOADING Redis is loading the dataset in memory").isRetriable)
        #expect(!RedisError.server("WRONGTYPE Operation against a key").isRetriable)
    }

    @Test("durations and lists")
    func durations() throws {
        #expect(EnvironmentReader.parseDuration("250ms") == .milliseconds(250))
        #expect(EnvironmentReader.parseDuration("5s") == .seconds(5))
        #expect(EnvironmentReader.parseDuration("2m") == .seconds(120))
        #expect(EnvironmentReader.parseDuration("1h") == .seconds(3600))
        #expect(EnvironmentReader.parseDuration("1.5") == .milliseconds(1500))
        #expect(EnvironmentReader.parseDuration("soon") == nil)
        #expect(EnvironmentReader.parseDuration("-1s") == nil)
        let env = EnvironmentReader(["TIERS": "1s, 10s,1m", "N": "12", "BAD": "x", "FLAG": "yes"])
        #expect(try env.durations("TIERS", default: []) == [.seconds(1), .seconds(10), .seconds(60)])
        #expect(try env.int("N", default: 1) == 12)
        #expect(try env.int("MISSING", default: 7) == 7)
        #expect(try env.bool("FLAG", default: false))
        #expect(throws: ConfigurationError.self) { try env.int("BAD", default: 1) }
        #expect(throws: ConfigurationError.self) { try env.int("N", default: 1, range: 1...10) }
        #expect(formatDuration(.milliseconds(1500)) == "1500ms")
        #expect(formatDuration(.seconds(600)) == "10m")
    }

    @Test("service settings: defaults and clear errors")
    func settings() throws {
        let s = try ServiceSettings(name: "aira-x", defaultPort: 9100, environment: EnvironmentReader([:]))
        #expect(s.httpPort == 9100 && s.httpHost == "127.0.0.1" && s.logLevel == .info && s.logFormat == .json)
        #expect(s.consumer.concurrency == 16 && s.consumer.prefetch == 64)
        let custom = try ServiceSettings(name: "aira-x", defaultPort: 9100,
                                         environment: EnvironmentReader(["AIRA_CONCURRENCY": "3", "AIRA_PREFETCH": "30", "AIRA_HTTP_PORT": "0"]))
        #expect(custom.consumer.concurrency == 3 && custom.consumer.prefetch == 30 && custom.httpPort == 0)
        #expect {
            _ = try ServiceSettings(name: "aira-x", defaultPort: 1, environment: EnvironmentReader(["AIRA_LOG_LEVEL": "loud"]))
        } throws: { error in
            "\(error)".contains("AIRA_LOG_LEVEL")
        }
    }
}

@Suite("SQL building")
struct PostgresQueryTests {
    @Test("interpolated values become parameters")
    func binds() {
        let name = "Robert'); DROP TABLE students;--"
        let id = 42
        let none: Int? = nil
        let q: PostgresQuery = "SELECT * FROM \(identifier: "my \"table\"") WHERE name = \(name) AND id = \(id) AND x IS \(none)"
        #expect(q.sql == #"SELECT * FROM "my ""table""" WHERE name = $1 AND id = $2 AND x IS $3"#)
        #expect(q.binds == [name, "42", nil])
        #expect(PostgresBytes([0, 255, 16]).postgresText == "\\x00ff10")
        #expect(true.postgresText == "true")
    }

    @Test("array literals quote every element and escape quotes and backslashes; nil is NULL")
    func arrays() {
        #expect(PostgresArray(["a", nil, #"say "hi""#, #"C:\x"#, "NULL", "", "{x,y}"]).postgresText
                == #"{"a",NULL,"say \"hi\"","C:\\x","NULL","","{x,y}"}"#)
        #expect(PostgresArray([]).postgresText == "{}")
    }

    @Test("timestamps read back from PostgreSQL's text format")
    func dates() {
        let d = Date(postgresText: "2026-11-21 18:05:41.123456+00")
        #expect(d.map { abs($0.timeIntervalSince1970 - 1_795_284_341.123456) < 0.001 } == true)
        #expect(Date(postgresText: "2026-11-21 18:05:41+00") != nil)
        #expect(Date(postgresText: "not a date") == nil)
    }

    @Test("migrations load from NNNN_name.sql files in order")
    func loadMigrations() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("aira-mig-\(UUID())")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        try "CREATE TABLE b ();".write(to: dir.appendingPathComponent("0010_second.sql"), atomically: true, encoding: .utf8)
        try "CREATE TABLE a ();".write(to: dir.appendingPathComponent("0002_first.sql"), atomically: true, encoding: .utf8)
        try "notes".write(to: dir.appendingPathComponent("README.txt"), atomically: true, encoding: .utf8)
        let m = try Migration.load(from: dir)
        #expect(m.map(\.version) == [2, 10])
        #expect(m.map(\.name) == ["first", "second"])
        #expect(m[0].checksum != m[1].checksum)
        try "x".write(to: dir.appendingPathComponent("bad.sql"), atomically: true, encoding: .utf8)
        #expect(throws: PostgresError.self) { try Migration.load(from: dir) }
    }
}
