import AiraAMQP
import AiraCore
import Foundation
import Metrics
import Synchronization

/// Batched RPC: many calls of one request type share one request message and one reply.
///
/// A caller under load (the gateway answering cached questions) would otherwise cost the broker
/// two messages per call. With batching, calls wait while `parallel` batches are already out and
/// go together when one comes back — at low traffic a call goes alone at once, under load up to
/// `maxBatch` share a message. Nothing waits for a timer.
///
/// On the wire (docs/messaging.md):
/// - request: type `<request type>+batch` (e.g. `gpt.ask.v1+batch`), body a JSON array of the
///   requests' bodies; one deadline (the earliest of its calls') as for a single call;
/// - reply: one or more messages, each a JSON array of answers `{"i":<index>,"ok":<response>}` or
///   `{"i":<index>,"error":<RPCErrorReply>}` (index into the request array). What the server can
///   answer at once (cached answers) comes in the first reply; slow requests (an upstream call)
///   each get a reply of their own when done, so a cached answer never waits for a slow one in
///   its batch. A reply with status `error` fails every call of the batch still unanswered.
public enum RPCBatch {
    public static let typeSuffix = "+batch"

    /// The message type of a batch of `Request`s.
    public static func messageType<Request: MessageContract>(of _: Request.Type) -> String {
        Request.messageType + Self.typeSuffix
    }

    /// How a caller batches (``RPCClient/call(_:routingKey:expecting:timeout:batching:)``).
    public struct Options: Sendable, Hashable {
        /// Most calls in one message.
        public var maxBatch: Int
        /// Batches awaiting their reply at once; further calls gather meanwhile.
        public var parallel: Int
        public init(maxBatch: Int = 64, parallel: Int = 2) {
            self.maxBatch = max(1, maxBatch)
            self.parallel = max(1, parallel)
        }
    }

    public static func encodeRequests(_ bodies: [[UInt8]]) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(bodies.reduce(2) { $0 + $1.count + 1 })
        out.append(UInt8(ascii: "["))
        for (i, body) in bodies.enumerated() {
            if i > 0 { out.append(UInt8(ascii: ",")) }
            out.append(contentsOf: body)
        }
        out.append(UInt8(ascii: "]"))
        return out
    }

    private static let indexPrefix = Array(#"{"i":"#.utf8)
    private static let okKey = Array(#","ok":"#.utf8)
    private static let errorKey = Array(#","error":"#.utf8)

    public static func encodeReplies(_ results: [(index: Int, result: Result<[UInt8], RPCErrorReply>)]) -> [UInt8] {
        var out: [UInt8] = [UInt8(ascii: "[")]
        for (n, item) in results.enumerated() {
            if n > 0 { out.append(UInt8(ascii: ",")) }
            out.append(contentsOf: Self.indexPrefix)
            out.append(contentsOf: String(item.index).utf8)
            switch item.result {
            case .success(let body):
                out.append(contentsOf: Self.okKey)
                out.append(contentsOf: body)
            case .failure(let error):
                out.append(contentsOf: Self.errorKey)
                out.append(contentsOf: (try? MessageCoding.encode(error)) ?? Array(#"{"code":"internal","message":"error not encodable"}"#.utf8))
            }
            out.append(UInt8(ascii: "}"))
        }
        out.append(UInt8(ascii: "]"))
        return out
    }

    /// The answers in a batch reply body (index and outcome); throws when it is malformed.
    public static func decodeReplies(_ body: [UInt8]) throws -> [(index: Int, result: Result<[UInt8], RPCErrorReply>)] {
        let ranges = try JSONTree.arrayElementRanges(body)
        return try ranges.map { range in
            // {"i":N,"ok":…} or {"i":N,"error":…}, as encodeReplies writes it.
            let element = body[range]
            guard element.starts(with: Self.indexPrefix), body[range.upperBound - 1] == UInt8(ascii: "}") else {
                throw JSONTree.Malformed(description: "reply is not {\"i\":…}")
            }
            var i = range.lowerBound + 5
            var index = 0
            let digitsStart = i
            while i < range.upperBound, body[i] >= UInt8(ascii: "0"), body[i] <= UInt8(ascii: "9"), i - digitsStart < 9 {
                index = index * 10 + Int(body[i] - UInt8(ascii: "0"))
                i += 1
            }
            guard i > digitsStart else { throw JSONTree.Malformed(description: "reply without an index") }
            let rest = body[i..<(range.upperBound - 1)]
            if rest.starts(with: Self.okKey) {
                return (index, .success(Array(rest.dropFirst(Self.okKey.count))))
            }
            if rest.starts(with: Self.errorKey) {
                return (index, .failure(try MessageCoding.decode(RPCErrorReply.self, from: Array(rest.dropFirst(Self.errorKey.count)))))
            }
            throw JSONTree.Malformed(description: "reply is neither ok nor error")
        }
    }
}

/// What a batch handler (``RPCRoutes/onBatch(_:_:)``) makes of one request: its answer now, or
/// work whose answer goes back in a reply of its own when done.
public enum RPCBatchOutcome<Response: Sendable>: Sendable {
    case answer(Result<Response, RPCErrorReply>)
    case later(@Sendable () async -> Result<Response, RPCErrorReply>)
}

extension RPCRoutes {
    /// Serves batches of `Request` (``RPCBatch``) with `handler`, which gets every decodable
    /// request of the message at once — so it can share work between them, such as one Redis
    /// round trip for all their cache lookups — and returns one outcome per request, in order:
    /// the answers it has go back at once in one reply; each `.later` runs concurrently and is
    /// answered on its own. A request of the batch that does not decode is answered
    /// `bad_request` with the reason; the others are served. A batch that is not a JSON array is
    /// dead-lettered like any undecodable request.
    public mutating func onBatch<Request: MessageContract, Response: Encodable & Sendable>(
        _ type: Request.Type, _ handler: @escaping @Sendable ([Request], MessageContext) async -> [RPCBatchOutcome<Response>]
    ) {
        self.decoders[RPCBatch.messageType(of: Request.self)] = { body in
            let ranges = try JSONTree.arrayElementRanges(body)
            guard !ranges.isEmpty else { throw JSONTree.Malformed(description: "an empty batch") }
            var requests: [Request] = []
            var positions: [Int] = []
            var refused: [(index: Int, result: Result<[UInt8], RPCErrorReply>)] = []
            for (index, range) in ranges.enumerated() {
                do {
                    requests.append(try Request.decode(from: Array(body[range])))
                    positions.append(index)
                } catch {
                    refused.append((index, .failure(RPCErrorReply(code: RPCErrorReply.badRequestCode,
                                                                  message: "undecodable \(Request.messageType): \(MessageCoding.describe(error))"))))
                }
            }
            let (requestList, positionList, refusedList) = (requests, positions, refused)
            return { (context: MessageContext) -> [UInt8]? in
                let (requests, positions, refused) = (requestList, positionList, refusedList)
                for item in refused {
                    if case .failure(let refusal) = item.result {
                        context.logger.error("batched request refused", metadata: [LogKey.error: "\(refusal.message)"])
                    }
                }
                let outcomes = requests.isEmpty ? [] : await handler(requests, context)
                func encoded(_ result: Result<Response, RPCErrorReply>) -> Result<[UInt8], RPCErrorReply> {
                    result.flatMap { response in
                        do { return .success(try MessageCoding.encode(response)) } catch {
                            return .failure(RPCErrorReply(code: RPCErrorReply.internalCode, message: "response not encodable: \(error)"))
                        }
                    }
                }
                var now = refused
                var later: [(index: Int, work: @Sendable () async -> Result<Response, RPCErrorReply>)] = []
                for (n, index) in positions.enumerated() {
                    switch n < outcomes.count ? outcomes[n] : .answer(.failure(RPCErrorReply(code: RPCErrorReply.internalCode,
                                                                                               message: "no answer for this request"))) {
                    case .answer(let result): now.append((index, encoded(result)))
                    case .later(let work): later.append((index, work))
                    }
                }
                if later.isEmpty { return RPCBatch.encodeReplies(now) }
                // Sent even when empty: the first reply gives the caller's batch slot back, so
                // questions waiting for the upstream do not hold up the batches behind them.
                context.reply(RPCBatch.encodeReplies(now))
                await withTaskGroup(of: Void.self) { group in
                    for item in later {
                        group.addTask { context.reply(RPCBatch.encodeReplies([(item.index, encoded(await item.work()))])) }
                    }
                }
                return nil // everything has been answered
            }
        }
    }
}

/// The calls of one request type to one routing key, gathered into batches (client side).
final class RPCBatchLane: Sendable {
    struct Call: Sendable {
        let body: [UInt8]
        let deadline: ContinuousClock.Instant
        let done: CheckedContinuation<[UInt8], any Error>
    }

    private struct State {
        var queue: [Call] = []
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
    private let register: @Sendable (String, RPCClient.ReplyRoute?) -> Void
    private let state: Mutex<State>
    private let batchSize = Recorder(label: "aira_rpc_batch_size")

    init(messageType: String, routingKey: String, options: RPCBatch.Options, channel: AMQPChannel,
         register: @escaping @Sendable (String, RPCClient.ReplyRoute?) -> Void) {
        self.messageType = messageType
        self.routingKey = routingKey
        self.state = Mutex(State(options: options))
        self.channel = channel
        self.register = register
    }

    /// Queues one encoded request; returns its response body or throws its error.
    func submit(_ body: [UInt8], timeout: Duration) async throws -> [UInt8] {
        try await withCheckedThrowingContinuation { (done: CheckedContinuation<[UInt8], any Error>) in
            let call = Call(body: body, deadline: .now + timeout, done: done)
            let batch = self.state.withLock { s -> [Call]? in
                s.queue.append(call)
                return self.takeBatch(&s)
            }
            if let batch { self.send(batch) }
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
        let batch = Array(s.queue[..<n])
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
        var properties = MessagePublisher.properties(
            type: self.messageType, messageID: flight.id, correlationID: flight.id, traceparent: nil,
            headers: [AiraHeader.deadline: .int(Int64(deadline.timeIntervalSince1970 * 1000))], persistent: false)
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
                    answers = try RPCBatch.decodeReplies(delivery.body).map { item in
                        (item.index, item.result.mapError { RPCCallError.remote($0) as any Error })
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
        for (index, result) in taken { flight.calls[index].done.resume(with: result) }
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
