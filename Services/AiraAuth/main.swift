// aira-auth: accounts, logins, sessions and roles, served over RPC (queues auth.credentials
// and auth.sessions). bcrypt runs on its own thread pool (AIRA_BCRYPT_THREADS), never on the
// cooperative pool. See docs/auth.md.
import AiraServiceKit

await ServiceHost.main(AuthConfiguration.self) { try await buildAuth($0, logger: $1, registry: $2) }
