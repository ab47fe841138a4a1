@testable import AiraServiceKit
import Foundation
#if canImport(Glibc)
import Glibc
#endif
import Hummingbird
import Logging
import HummingbirdTesting
import Metrics
import Prometheus
import Synchronization
import Testing

@Suite("Health and metrics endpoints")
struct ObservabilityTests {
    @Test("live, ready (with failing check and during shutdown), metrics")
    func endpoints() async throws {
        let registry = PrometheusCollectorRegistry()
        let counter = registry.makeCounter(name: "aira_test_total", labels: [("queue", "q1")])
        counter.increment(by: Int64(3))
        let redisUp = Atomic<Bool>(true)
        let shutdown = ShutdownFlag()
        let router = Router()
        ObservabilityRoutes.add(to: router, registry: registry, checks: [
            ReadinessCheck("broker") { true },
            ReadinessCheck("redis") { redisUp.load(ordering: .relaxed) },
        ], shutdown: shutdown)
        let app = Application(router: router)
        try await app.test(.router) { client in
            try await client.execute(uri: "/health/live", method: .get) { r in
                #expect(r.status == .ok)
            }
            try await client.execute(uri: "/health/ready", method: .get) { r in
                #expect(r.status == .ok)
                #expect(String(buffer: r.body).contains(#""status":"ready""#))
            }
            redisUp.store(false, ordering: .relaxed)
            try await client.execute(uri: "/health/ready", method: .get) { r in
                #expect(r.status == .serviceUnavailable)
                let body = String(buffer: r.body)
                #expect(body.contains(#""redis":false"#) && body.contains(#""broker":true"#))
            }
            try await client.execute(uri: "/metrics", method: .get) { r in
                #expect(r.status == .ok)
                #expect(r.headers[.contentType]?.hasPrefix("text/plain") == true)
                let text = String(buffer: r.body)
                #expect(text.contains(#"aira_test_total{queue="q1"} 3"#))
                // The allocator's gauges, refreshed at each scrape: jemalloc holds memory.
                let resident = text.split(separator: "\n").first { $0.hasPrefix("aira_allocator_resident_bytes ") }
                    .flatMap { Double($0.split(separator: " ").last ?? "") }
                #expect((resident ?? 0) > 0, "no aira_allocator_resident_bytes in /metrics")
            }
        }
    }

    @Test("a log line's metadata as JSON: nested values, keys sorted, escapes; Foundation reads it back")
    func logLineJSON() throws {
        let fields: Logger.Metadata = ["b": "x/y \"quoted\"\n", "a": .array(["1", .stringConvertible(2)]),
                                       "c": .dictionary(["z": "1", "y": .dictionary([:])])]
        var out: [UInt8] = []
        JSONLogHandler.append(.dictionary(fields), to: &out)
        #expect(String(decoding: out, as: UTF8.self) == #"{"a":["1","2"],"b":"x/y \"quoted\"\n","c":{"y":{},"z":"1"}}"#)
        let back = try #require(try JSONSerialization.jsonObject(with: Data(out)) as? [String: Any])
        #expect(back["b"] as? String == "x/y \"quoted\"\n")
    }

    @Test("the process's malloc is jemalloc")
    func allocatorIsJemalloc() throws {
        let before = try #require(Allocator.stats(), "jemalloc's statistics cannot be read")
        #expect(before.allocated > 0 && before.active >= before.allocated && before.resident > 0)
        // A plain malloc must show up in jemalloc's counters: it does only if jemalloc serves
        // this process's malloc (glibc's would leave them where they were).
        let size = 64 << 20
        let block = try #require(malloc(size))
        memset(block, 1, size)
        let during = try #require(Allocator.stats())
        free(block)
        let after = try #require(Allocator.stats())
        // Other tests allocate and free at the same time: allow them 16 MiB either way.
        #expect(during.allocated - before.allocated > size - (16 << 20))
        #expect(during.allocated - after.allocated > size - (16 << 20))
    }
}
