import AiraCore
@testable import aira_gpt_proxy
import Foundation
import Testing

/// `AIRA_GPT_UPSTREAMS` and the order endpoints are tried in.
@Suite("Upstream endpoints")
struct UpstreamEndpointTests {
    static func parse(_ text: String, _ env: [String: String] = [:]) -> Result<[UpstreamEndpoint], UpstreamEndpoint.ParseError> {
        UpstreamEndpoint.parse(text, environment: EnvironmentReader(env))
    }

    @Test("a JSON array of endpoints; keys inline or from a variable; defaults weight 1, priority 0, every model")
    func parsing() throws {
        let endpoints = try Self.parse("""
            [{"name": "openai", "url": "https://api.openai.com/", "apiKeyEnv": "OPENAI_KEY", "models": ["gpt-4o-mini"], "weight": 3},
             {"name": "backup_1", "url": "http://10.0.0.5:8000", "apiKey": "k", "priority": 1}]
            """, ["OPENAI_KEY": "sk-test"]).get()
        #expect(endpoints == [
            UpstreamEndpoint(name: "openai", url: "https://api.openai.com", apiKey: "sk-test", models: ["gpt-4o-mini"], weight: 3, priority: 0),
            UpstreamEndpoint(name: "backup_1", url: "http://10.0.0.5:8000", apiKey: "k", models: [], weight: 1, priority: 1),
        ])
        #expect(endpoints[0].serves("gpt-4o-mini") && !endpoints[0].serves("gpt-4o"))
        #expect(endpoints[1].serves("anything"))
        let bad: [(String, String)] = [
            ("[]", "no upstream"),
            ("{}", "Array"),
            (#"[{"url": "http://a"}]"#, "missing 'name'"),
            (#"[{"name": "a", "url": "ftp://a"}]"#, "http:// or https://"),
            (#"[{"name": "a", "url": "http://a"}, {"name": "a", "url": "http://b"}]"#, "used twice"),
            (#"[{"name": "a b", "url": "http://a"}]"#, "letters, digits"),
            (#"[{"name": "a", "url": "http://a", "weight": 0}]"#, "weight 1–1000"),
            (#"[{"name": "a", "url": "http://a", "priority": -1}]"#, "priority 0–100"),
            (#"[{"name": "a", "url": "http://a", "apiKeyEnv": "MISSING_KEY"}]"#, "MISSING_KEY is not set"),
            ("not json", ""),
        ]
        for (text, reason) in bad {
            guard case .failure(let error) = Self.parse(text) else {
                Issue.record("accepted: \(text)")
                continue
            }
            #expect(reason.isEmpty || error.reason.contains(reason), "\(text): \(error.reason)")
        }
    }

    @Test("the order: lower priority first; within a priority the first is chosen in proportion to weight; only endpoints serving the model")
    func order() {
        let endpoints = [
            UpstreamEndpoint(name: "heavy", url: "http://a", weight: 3),
            UpstreamEndpoint(name: "light", url: "http://b", weight: 1),
            UpstreamEndpoint(name: "backup", url: "http://c", priority: 1),
            UpstreamEndpoint(name: "special", url: "http://d", models: ["special"], priority: 0),
        ]
        var rng = SplitMix(seed: 42)
        var first: [String: Int] = [:]
        for _ in 0..<10_000 {
            let order = UpstreamEndpoint.order(endpoints, model: "m", using: &rng).map(\.name)
            #expect(order.count == 3 && order.last == "backup" && Set(order.prefix(2)) == ["heavy", "light"])
            first[order[0], default: 0] += 1
        }
        // 3 : 1 → 75 % ± 1.5 % (more than 3.4 standard deviations).
        #expect(abs(Double(first["heavy"] ?? 0) / 10_000 - 0.75) < 0.015, "\(first)")
        #expect(UpstreamEndpoint.order(endpoints, model: "special", using: &rng).map(\.name).contains("special"))
        #expect(UpstreamEndpoint.order([endpoints[3]], model: "m", using: &rng).isEmpty)
    }

    @Test("without AIRA_GPT_UPSTREAMS, one endpoint named default from AIRA_GPT_UPSTREAM_URL; a bad list stops start-up naming it")
    func configuration() throws {
        let single = try GPTProxyConfiguration(environment: EnvironmentReader(["AIRA_GPT_UPSTREAM_URL": "http://127.0.0.1:9/", "AIRA_GPT_API_KEY": "k"]))
        #expect(single.upstream.endpoints == [UpstreamEndpoint(name: "default", url: "http://127.0.0.1:9", apiKey: "k")])
        #expect(single.upstream.breaker.failures == 5 && single.upstream.breaker.cooldown == .seconds(30))
        do {
            _ = try GPTProxyConfiguration(environment: EnvironmentReader(["AIRA_GPT_UPSTREAMS": #"[{"name": "x"}]"#]))
            Issue.record("a list without url was accepted")
        } catch let error as ConfigurationError {
            #expect(error.key == "AIRA_GPT_UPSTREAMS")
            #expect(error.description.contains("missing 'url'"), "\(error)")
        }
    }
}
