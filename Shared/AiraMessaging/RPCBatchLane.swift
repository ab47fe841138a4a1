import AiraAMQP
import AiraCore
import DequeModule
import Foundation
import Metrics
import Synchronization

/// The calls of one request type to one routing key, gathered into batches (``RPCBatch``, the
/// client side). Each call keeps what a single call has: its request id and trace travel in the
/// batch (`x-aira-batch-calls`), and a caller whose task is cancelled stops waiting at once —
/// taken out of the lane if its batch has not left, otherwise its answer is dropped when it
/// comes (the server still serves it, bounded by the deadline, as for a single call).
final class RPCBatchLane: Sendable {
    /// One caller waiting in the lane, answered exactly once: by its batch's reply, the batch's
    /// deadline, a refusal, or its own cancellation — whichever comes first.
    final class Call: Sendable {
        let body: [UInt8]
        let ids: RPCBatch.CallIDs
        let deadline: ContinuousClock.Instant
        private let state = Mutex<State>(.created)

        private enum State {
            case created
            case waiting(CheckedContinuation<[UInt8], any Error>)
            case cancelled
            case answered
        }

        init(body: [UInt8], ids: RPCBatch.CallIDs, deadline: ContinuousClock.Instant) {
            self.body = body
            self.ids = ids
            self.deadline = deadline
        }

        /// Starts waiting on `continuation`; false if the call was cancelled first (then the
        /// caller resumes it).
        func attach(_ continuation: CheckedContinuation<[UInt8], any Error>) -> Bool {
            self.state.withLock { state in
                guard case .created = state else { return false }
                state = .waiting(continuation)
                return true
            }
        }

        /// Answers the call, unless it was answered or cancelled already.
        func answer(_ result: Result<[UInt8], any Error>) {
            let waiting = self.state.withLock { state -> CheckedContinuation<[UInt8], any Error>? in
                guard case .waiting(let c) = state else { return nil }
                state = .answered
                return c
            }
            waiting?.resume(with: result)
        }

        /// The caller's task was cancelled: it stops waiting now.
        func cancel() {
            let waiting = self.state.withLock { state -> CheckedContinuation<[UInt8], any Error>? in
                switch state {
                case .created:
                    state = .cancelled
                    return nil
                case .waiting(let c):
                    state = .answered
                    return c
                case .cancelled, .answered:
                    return nil
                }
            }
            waiting?.resume(throwing: CancellationError())
        }
    }

    private struct State {
        var queue = Deque<Call>()
        var inFlight = 0
        /// The options in force (a caller may change them: ``adopt(_:)``).
        var options: RPCBatch.Options
    }

    /// A batch awaiting its replies. Its lane slot is given back at the first reply (answers
    /// that take long must not hold up the batches behind them); it ends when every call is
    /// answered, or fails what is left at the deadline or on a refusal.
    private final class Flight: Sendable {
        let id: String
        let calls: [Call]
        /// Calls not answered yet (by index), and whether the lane slot is still held.
        let open = Mutex<(unanswered: Set<Int>, holdsSlot: Bool)>((Set(), true))
        let timer = Mutex<Task<Void, Never>?>(nil)
        init(id: String, calls: [Call]) {
            self.id = id
            self.calls = calls
            self.open.withLock { $0.unanswered = Set(calls.indices) }
        }
    }

    let messageType: String
    let routingKey: String
    private let channel: AMQPChannel
    private let register: @Sendable (String, RPCClient.ReplyHandler?) -> Void
    private let state: Mutex<State>
    private let batchSize = Recorder(label: "aira_rpc_batch_size")

    /// `register(id, handler)` routes the replies correlated to `id` to `handler` (nil: stop).
    init(messageType: String, routingKey: String, options: RPCBatch.Options, channel: AMQPChannel,
         register: @escaping @Sendable (String, RPCClient.ReplyHandler?) -> Void) {
        self.messageType = messageType
        self.routingKey = routingKey
        self.state = Mutex(State(options: options))
        self.channel = channel
        self.register = register
    }

    /// Queues one encoded request; returns its response body or throws its error.
    func submit(_ body: [UInt8], ids: RPCBatch.CallIDs, timeout: Duration) async throws -> [UInt8] {
        let call = Call(body: body, ids: ids, deadline: .now + timeout)
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<[UInt8], any Error>) in
                guard call.attach(continuation) else {
                    continuation.resume(throwing: CancellationError())
                    return
                }
                let batch = self.state.withLock { s -> [Call]? in
                    s.queue.append(call)
                    return self.takeBatch(&s)
                }
                if let batch { self.send(batch) }
            }
        } onCancel: {
            self.state.withLock { s in s.queue.removeAll { $0 === call } }
            call.cancel()
        }
    }

    /// Applies `options` from now on (the lane, its queue and its batches out stay): with more
    /// batches allowed out, waiting calls go at once.
    func adopt(_ options: RPCBatch.Options) {
        var batches: [[Call]] = []
        self.state.withLock { s in
            guard s.options != options else { return }
            s.options = options
            while let batch = self.takeBatch(&s) { batches.append(batch) }
        }
        for batch in batches { self.send(batch) }
    }

    /// Takes the next batch when a slot is free (under the lock).
    private func takeBatch(_ s: inout State) -> [Call]? {
        guard s.inFlight < s.options.parallel, !s.queue.isEmpty else { return nil }
        s.inFlight += 1
        let n = min(s.queue.count, s.options.maxBatch)
        let batch = Array(s.queue.prefix(n))
        s.queue.removeFirst(n)
        return batch
    }

    private func send(_ calls: [Call]) {
        let flight = Flight(id: MessageID.random(), calls: calls)
        let earliest = calls.map(\.deadline).min()!
        let remaining = earliest - .now
        guard remaining > .milliseconds(1) else {
            self.complete(flight, .failure(RPCCallError.timeout(.zero)))
            return
        }
        self.batchSize.record(calls.count)
        let deadline = Date().addingTimeInterval(remaining.seconds)
        var headers: AMQPTable = [AiraHeader.deadline: .int(Int64(deadline.timeIntervalSince1970 * 1000))]
        headers[AiraHeader.batchCalls] = RPCBatch.header(calls.map(\.ids))
        var properties = MessagePublisher.properties(type: self.messageType, messageID: flight.id, correlationID: flight.id,
                                                     traceparent: nil, headers: headers, persistent: false)
        properties.replyTo = RPCClient.replyQueue
        properties.expiration = String(max(1, remaining.milliseconds))
        self.register(flight.id) { [weak self] result in
            // Partial replies belong to streams, never to batches: ignore them.
            if case .success(let delivery) = result,
               delivery.properties.headers[AiraHeader.rpcStatus]?.stringValue == RPCReplyStatus.partial { return }
            self?.complete(flight, result)
        }
        let timeout = Duration.milliseconds(remaining.milliseconds)
        flight.timer.withLock {
            $0 = Task { [weak self] in
                guard (try? await Task.sleep(for: remaining)) != nil else { return }
                self?.complete(flight, .failure(RPCCallError.timeout(timeout)))
            }
        }
        self.channel.publish(exchange: AiraExchange.name, routingKey: self.routingKey, body: RPCBatch.encodeRequests(calls.map(\.body)),
                             properties: properties, mandatory: true) { [weak self] result in
            if case .failure(let error) = result { self?.complete(flight, .failure(RPCCallError.unavailable(error))) }
        }
    }

    /// Handles a reply, the timeout or a refusal: answers what it covers, gives the slot back
    /// at the first event, and ends the flight once nothing is left.
    private func complete(_ flight: Flight, _ outcome: Result<AMQPDelivery, any Error>) {
        var answers: [(Int, Result<[UInt8], any Error>)] = []
        switch outcome {
        case .failure(let error):
            answers = flight.calls.indices.map { ($0, .failure(error)) }
        case .success(let delivery):
            if delivery.properties.headers[AiraHeader.rpcStatus]?.stringValue == RPCReplyStatus.error {
                let error: RPCCallError = (try? MessageCoding.decode(RPCErrorReply.self, from: delivery.body)).map { .remote($0) }
                    ?? .invalidReply("undecodable error reply")
                answers = flight.calls.indices.map { ($0, .failure(error)) }
            } else {
                do {
                    answers = try RPCBatch.decodeReplies(delivery.body).map { answer in
                        (answer.index, answer.result.mapError { RPCCallError.remote($0) as any Error })
                    }
                } catch {
                    let failure = RPCCallError.invalidReply("batch reply: \(error)")
                    answers = flight.calls.indices.map { ($0, .failure(failure)) }
                }
            }
        }
        let (taken, releaseSlot, finished) = flight.open.withLock { open -> ([(Int, Result<[UInt8], any Error>)], Bool, Bool) in
            let taken = answers.filter { open.unanswered.remove($0.0) != nil }
            let release = open.holdsSlot
            open.holdsSlot = false
            return (taken, release, open.unanswered.isEmpty)
        }
        for (index, result) in taken { flight.calls[index].answer(result) }
        if finished {
            self.register(flight.id, nil)
            flight.timer.withLock { $0?.cancel() }
        }
        guard releaseSlot else { return }
        let next = self.state.withLock { s -> [Call]? in
            s.inFlight -= 1
            return self.takeBatch(&s)
        }
        if let next { self.send(next) }
    }
}
