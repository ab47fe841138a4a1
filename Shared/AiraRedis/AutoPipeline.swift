import AiraCore
import Synchronization

/// Commands from many concurrent callers, sent to Redis together: while `flushers` round trips
/// are under way, new commands gather, and the next round trip takes all of them as one
/// pipeline — at low traffic a command goes alone at once, under load dozens share a write and
/// a read (and one wake-up of the connection's thread) instead of each paying for its own.
///
/// Each caller's commands stay together and in order, and get their own replies. A connection
/// failure fails the callers of that round trip, as it would have failed each of them alone.
final class AutoPipeline: Sendable {
    private struct Waiting {
        let commands: [[[UInt8]]]
        let done: CheckedContinuation<[RedisValue], any Error>
    }

    private struct State {
        var queue: [Waiting] = []
        var flushing = 0
    }

    private let state = Mutex(State())
    private let flushers: Int
    private let send: @Sendable ([[[UInt8]]]) async throws -> [RedisValue]

    /// `send` runs one pipeline on a connection (leased for that round trip).
    init(flushers: Int, send: @escaping @Sendable ([[[UInt8]]]) async throws -> [RedisValue]) {
        self.flushers = max(1, flushers)
        self.send = send
    }

    /// Sends `commands` (with whatever else is waiting) and returns their replies in order.
    func submit(_ commands: [[[UInt8]]]) async throws -> [RedisValue] {
        try await withCheckedThrowingContinuation { (done: CheckedContinuation<[RedisValue], any Error>) in
            let start = self.state.withLock { s -> Bool in
                s.queue.append(Waiting(commands: commands, done: done))
                guard s.flushing < self.flushers else { return false }
                s.flushing += 1
                return true
            }
            if start { Task { await self.flush() } }
        }
    }

    /// Sends what is waiting, again and again until nothing is.
    private func flush() async {
        while true {
            let batch = self.state.withLock { s -> [Waiting] in
                if s.queue.isEmpty { s.flushing -= 1 }
                defer { s.queue.removeAll(keepingCapacity: true) }
                return s.queue
            }
            if batch.isEmpty { return }
            let commands = batch.count == 1 ? batch[0].commands : batch.flatMap(\.commands)
            do {
                let replies = try await self.send(commands)
                var offset = 0
                for waiting in batch {
                    let n = waiting.commands.count
                    waiting.done.resume(returning: Array(replies[offset..<(offset + n)]))
                    offset += n
                }
            } catch {
                for waiting in batch { waiting.done.resume(throwing: error) }
            }
        }
    }
}
