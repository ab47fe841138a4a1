import AiraServiceKit
import Hummingbird
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
                #expect(String(buffer: r.body).contains(#"aira_test_total{queue="q1"} 3"#))
            }
        }
    }
}
