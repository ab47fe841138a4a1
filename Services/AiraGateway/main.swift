// aira-gateway: the HTTP API. Verifies access tokens locally, rate limits in Redis, and turns
// requests into RPCs (aira-auth) and messages. See docs/api.md and docs/configuration.md.
import AiraServiceKit

await ServiceHost.main(GatewayConfiguration.self) { try await buildGateway($0, logger: $1, registry: $2) }
