// aira-gpt-proxy: answers gpt.ask RPCs from an OpenAI-compatible upstream, with a Redis answer
// cache, per-user daily quotas and single-flight upstream calls. See docs/gpt.md.
import AiraServiceKit

await ServiceHost.main(GPTProxyConfiguration.self) { try await buildGPTProxy($0, logger: $1, registry: $2) }
