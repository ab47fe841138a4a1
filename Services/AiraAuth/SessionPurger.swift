import AiraCore
import AiraTokens
import Logging
import Metrics
import ServiceLifecycle

/// Deletes sessions that expired (or were revoked a day ago) every `interval`, with their
/// refresh tokens (``RefreshTokens/purge(revokedKept:batch:now:)``). Every auth instance runs
/// one; two purging at once only share the work. Counts `aira_auth_sessions_purged_total`.
struct SessionPurger: Service {
    let tokens: RefreshTokens
    let interval: Duration
    let logger: Logger
    private static let purged = Counter(label: "aira_auth_sessions_purged_total")

    func run() async throws {
        await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                do {
                    let n = try await self.tokens.purge()
                    Self.purged.increment(by: n)
                    if n > 0 { self.logger.info("expired sessions deleted", metadata: ["sessions": "\(n)"]) }
                } catch is CancellationError {
                    return
                } catch {
                    self.logger.warning("session purge failed; trying again next time", metadata: [LogKey.error: "\(error)"])
                }
                try? await Task.sleep(for: self.interval)
            }
        }
    }
}
