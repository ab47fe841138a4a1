import HummingbirdBcrypt
import NIOPosix

/// bcrypt, run on NIO's thread pool: a hash costs 50–250 ms of CPU and must never occupy the
/// cooperative pool (two threads on a 2-core machine).
public struct PasswordHasher: Sendable {
    public let cost: UInt8
    let pool: NIOThreadPool

    /// `cost` ≥ 10 in production (`AIRA_BCRYPT_COST`); tests may use 4.
    public init(cost: UInt8 = 10, pool: NIOThreadPool = .singleton) {
        precondition((4...31).contains(cost), "bcrypt cost must be 4...31")
        self.cost = cost
        self.pool = pool
    }

    public func hash(_ password: String) async throws -> String {
        let cost = self.cost
        return try await self.pool.runIfActive { Bcrypt.hash(password, cost: cost) }
    }

    public func verify(_ password: String, hash: String) async throws -> Bool {
        try await self.pool.runIfActive { Bcrypt.verify(password, hash: hash) }
    }
}
