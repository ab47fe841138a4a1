import Foundation

/// One dedicated OS thread that owns one non-Sendable resource (a C connection) and runs every
/// call on it, so blocking C calls never run on the cooperative pool or a NIO event loop.
///
/// This is the one place in Aira's request/response clients (Redis, PostgreSQL) that crosses
/// threads: the resource is created, used and destroyed on `thread` only, which is what makes
/// the `@unchecked Sendable` sound. Calls are served in submission order.
package final class OwnerThread<Resource>: @unchecked Sendable {
    package typealias Job = @Sendable (inout Resource?) -> Void

    private let mailbox = Mailbox<Job>()

    /// Starts the thread; the resource starts out `nil` and is created by the first job that
    /// needs it (`connect` steps run on this thread too).
    package init(name: String) {
        let mailbox = self.mailbox
        startDedicatedThread(name: name) {
            var resource: Resource? = nil
            while true {
                let jobs = mailbox.drain()
                if jobs.isEmpty {
                    if mailbox.isClosed { break }
                    _ = mailbox.wait(timeoutMilliseconds: -1)
                    continue
                }
                for job in jobs { job(&resource) }
            }
            for job in mailbox.drain() { job(&resource) }
            resource = nil
        }
    }

    /// Runs `body` on the owner thread and returns its result.
    package func run<T: Sendable>(
        _ body: @escaping @Sendable (inout Resource?) throws -> T
    ) async throws -> T {
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<T, any Error>) in
            let accepted = self.mailbox.submit { resource in
                continuation.resume(with: Result { try body(&resource) })
            }
            if !accepted { continuation.resume(throwing: OwnerThreadClosed()) }
        }
    }

    /// Lets queued jobs finish, drops the resource on its thread and ends the thread.
    package func shutdown() {
        for job in self.mailbox.close() {
            var none: Resource? = nil
            job(&none)
        }
    }
}

/// The owner thread was shut down before the call could run.
package struct OwnerThreadClosed: Error, CustomStringConvertible {
    package var description: String { "connection closed" }
}
