import DequeModule
import Synchronization

/// Callers waiting in line for what their owner hands out — a connection, a slot, a batch being
/// due: the one waiter queue of Aira (connection pools, the upstream limiter, batch queues).
///
/// It lives inside its owner's lock-protected state, so the owner's decision ("hand this to a
/// waiter, or keep it") and the line change together and no wake-up is lost. Every waiter is
/// resumed exactly once, outside the lock: by the owner (``popFirst()``, ``removeAll()``), at
/// its deadline, or when its task is cancelled (``WaitingLine/waitInLine(_:deadline:timer:timeout:orNow:)``).
public struct Waiters<Value: Sendable>: Sendable {
    public typealias Continuation = CheckedContinuation<Value, any Error>
    public typealias ID = UInt64

    private struct Entry: Sendable {
        let id: ID
        let deadline: ContinuousClock.Instant?
        let continuation: Continuation
    }

    private var line = Deque<Entry>()

    public init() {}

    public var count: Int { self.line.count }
    public var isEmpty: Bool { self.line.isEmpty }

    /// An id for a caller about to wait, taken before it suspends so that its cancellation can
    /// name it (unique across lines: a line may be made when it is first needed).
    static func newID() -> ID { waiterIDs.wrappingAdd(1, ordering: .relaxed).newValue }

    mutating func append(_ id: ID, deadline: ContinuousClock.Instant?, _ continuation: Continuation) {
        self.line.append(Entry(id: id, deadline: deadline, continuation: continuation))
    }

    /// The longest-waiting caller, to hand something to.
    public mutating func popFirst() -> Continuation? { self.line.popFirst()?.continuation }

    /// Every caller (shutdown, or everyone has something to look at).
    public mutating func removeAll() -> [Continuation] {
        defer { self.line.removeAll() }
        return self.line.map(\.continuation)
    }

    /// Waiter `id`, if it is still in line.
    mutating func remove(_ id: ID) -> Continuation? {
        guard let index = self.line.firstIndex(where: { $0.id == id }) else { return nil }
        return self.line.remove(at: index).continuation
    }

    /// Takes out the callers whose deadline has come; also says when the next one comes.
    mutating func removeExpired(now: ContinuousClock.Instant) -> (expired: [Continuation], next: ContinuousClock.Instant?) {
        var expired: [Continuation] = []
        var next: ContinuousClock.Instant?
        self.line.removeAll { entry in
            guard let deadline = entry.deadline else { return false }
            if deadline <= now {
                expired.append(entry.continuation)
                return true
            }
            next = next.map { min($0, deadline) } ?? deadline
            return false
        }
        return (expired, next)
    }
}

private let waiterIDs = Atomic<UInt64>(0)

/// An owner of one or more lines of ``Waiters`` in its lock-protected state: gives
/// ``waitInLine(_:deadline:timer:timeout:orNow:)`` its lock.
public protocol WaitingLine: AnyObject, Sendable {
    associatedtype LineState
    /// Runs `body` under the owner's lock.
    func withLineState<R: Sendable>(_ body: (inout LineState) -> R) -> R
}

extension WaitingLine {
    /// Waits in `line` for a value: `orNow` first decides under the lock whether there is one
    /// for the caller at once (a result), or it must wait (nil) — then it waits until the owner
    /// hands it one, its `deadline` passes (throws `timeout()`), or its task is cancelled
    /// (throws `CancellationError`). Deadlines are kept by one `timer` per line, not a task per
    /// waiter, and nothing polls.
    public func waitInLine<Value: Sendable>(_ line: any WritableKeyPath<LineState, Waiters<Value>> & Sendable,
                                            deadline: ContinuousClock.Instant? = nil, timer: DeadlineTimer? = nil,
                                            timeout: @escaping @Sendable () -> any Error = { CancellationError() },
                                            orNow: (inout LineState) -> Result<Value, any Error>?) async throws -> Value {
        precondition(deadline == nil || timer != nil, "a deadline needs a timer")
        let id = Waiters<Value>.newID()
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: Waiters<Value>.Continuation) in
                let now = self.withLineState { state -> Result<Value, any Error>? in
                    if let result = orNow(&state) { return result }
                    state[keyPath: line].append(id, deadline: deadline, continuation)
                    return nil
                }
                if let now {
                    continuation.resume(with: now)
                    return
                }
                // Cancelled before it was in line (the handler found nothing to take out).
                if Task.isCancelled, let waiting = self.withLineState({ $0[keyPath: line].remove(id) }) {
                    waiting.resume(throwing: CancellationError())
                    return
                }
                if let deadline, let timer { self.arm(timer, line, at: deadline, timeout: timeout) }
            }
        } onCancel: {
            self.withLineState { $0[keyPath: line].remove(id) }?.resume(throwing: CancellationError())
        }
    }

    private func arm<Value: Sendable>(_ timer: DeadlineTimer, _ line: any WritableKeyPath<LineState, Waiters<Value>> & Sendable,
                                      at deadline: ContinuousClock.Instant, timeout: @escaping @Sendable () -> any Error) {
        timer.arm(deadline) { [weak self] in
            guard let self else { return }
            let (expired, next) = self.withLineState { $0[keyPath: line].removeExpired(now: .now) }
            for waiter in expired { waiter.resume(throwing: timeout()) }
            if let next { self.arm(timer, line, at: next, timeout: timeout) }
        }
    }
}

/// The deadlines of a whole line kept by one sleeping task: armed for the earliest, re-armed
/// when an earlier one comes; at that instant it runs what it was armed with.
public final class DeadlineTimer: Sendable {
    private struct Armed {
        var at: ContinuousClock.Instant
        var task: Task<Void, Never>
    }

    private let armed = Mutex<Armed?>(nil)

    public init() {}

    /// Runs `fire` at `deadline`, unless an earlier deadline is armed already (whose `fire` then
    /// runs, and re-arms for what is left).
    public func arm(_ deadline: ContinuousClock.Instant, _ fire: @escaping @Sendable () -> Void) {
        self.armed.withLock { armed in
            if let current = armed, current.at <= deadline { return }
            armed?.task.cancel()
            let task = Task { [weak self] in
                guard (try? await Task.sleep(until: deadline, clock: .continuous)) != nil else { return }
                self?.armed.withLock { if $0?.at == deadline { $0 = nil } }
                fire()
            }
            armed = Armed(at: deadline, task: task)
        }
    }

    deinit { self.armed.withLock { $0?.task.cancel() } }
}
