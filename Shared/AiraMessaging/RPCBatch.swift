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
///   requests' bodies; one deadline (the earliest of its calls') as for a single call; header
///   `x-aira-batch-calls`: each call's own request id and `traceparent`, in the same order;
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

    /// How a caller batches (``RPCClient/call(_:routingKey:expecting:timeout:batching:requestID:traceparent:)``).
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

    /// What one call of a batch carries besides its request (header `x-aira-batch-calls`).
    public struct CallIDs: Sendable, Hashable {
        /// The HTTP request behind the call (`x-aira-request-id`).
        public var requestID: String?
        /// The call's W3C trace context.
        public var traceparent: String?
        public init(requestID: String? = nil, traceparent: String? = nil) {
            self.requestID = requestID
            self.traceparent = traceparent
        }
    }

    /// One call of a batch as its server sees it: the request, and a context of its own (its id
    /// `<batch message id>#<index>`, its request id and trace; follow-up work shared with the batch).
    public struct Call<Request: Sendable>: Sendable {
        public let request: Request
        public let context: MessageContext
    }

    /// What a batch handler (``RPCRoutes/onBatch(_:_:)``) makes of one call: its answer now, or
    /// work whose answer goes back in a reply of its own when done. Errors are answered as a
    /// single call's would be (``RPCErrorReply/answering(_:)``), without in-process retries.
    public enum Outcome<Response: Sendable>: Sendable {
        case answer(Result<Response, any Error>)
        case later(@Sendable () async throws -> Response)
    }

    /// One answer of a batch reply: the index of its call, and its encoded response or typed error.
    public struct Answer: Sendable {
        public var index: Int
        public var result: Result<[UInt8], RPCErrorReply>
        public init(index: Int, result: Result<[UInt8], RPCErrorReply>) {
            self.index = index
            self.result = result
        }
    }

    /// The `x-aira-batch-calls` header for calls carrying `ids` (nil when none carries any).
    package static func header(_ ids: [CallIDs]) -> AMQPFieldValue? {
        guard ids.contains(where: { $0.requestID != nil || $0.traceparent != nil }) else { return nil }
        return .array(ids.map { call in
            var table: AMQPTable = [:]
            if let id = call.requestID { table[AiraHeader.requestID] = .string(id) }
            if let trace = call.traceparent { table[AiraHeader.traceparent] = .string(trace) }
            return .table(table)
        })
    }

    /// The ids of each of `count` calls from a batch message's headers (empty where it has none).
    package static func callIDs(_ headers: AMQPTable, count: Int) -> [CallIDs] {
        guard case .array(let items)? = headers[AiraHeader.batchCalls] else { return Array(repeating: CallIDs(), count: count) }
        return (0..<count).map { i in
            guard i < items.count, case .table(let table) = items[i] else { return CallIDs() }
            return CallIDs(requestID: table[AiraHeader.requestID]?.stringValue, traceparent: table[AiraHeader.traceparent]?.stringValue)
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

    public static func encodeReplies(_ results: [Answer]) -> [UInt8] {
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
                out.append(contentsOf: error.encoded)
            }
            out.append(UInt8(ascii: "}"))
        }
        out.append(UInt8(ascii: "]"))
        return out
    }

    /// The answers in a batch reply body (index and outcome); throws when it is malformed.
    public static func decodeReplies(_ body: [UInt8]) throws -> [Answer] {
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
                return Answer(index: index, result: .success(Array(rest.dropFirst(Self.okKey.count))))
            }
            if rest.starts(with: Self.errorKey) {
                return Answer(index: index,
                              result: .failure(try MessageCoding.decode(RPCErrorReply.self, from: Array(rest.dropFirst(Self.errorKey.count)))))
            }
            throw JSONTree.Malformed(description: "reply is neither ok nor error")
        }
    }
}

extension RPCRoutes {
    /// Serves batches of `Request` (``RPCBatch``) with `handler`, which gets every decodable
    /// call of the message at once — so it can share work between them, such as one Redis
    /// round trip for all their cache lookups — and returns one outcome per call, in order:
    /// the answers it has go back at once in one reply; each `.later` runs concurrently and is
    /// answered on its own. A request of the batch that does not decode is answered
    /// `bad_request` with the reason; the others are served. A batch that is not a JSON array is
    /// dead-lettered like any undecodable request.
    public mutating func onBatch<Request: MessageContract, Response: Encodable & Sendable>(
        _ type: Request.Type, _ handler: @escaping @Sendable ([RPCBatch.Call<Request>]) async -> [RPCBatch.Outcome<Response>]
    ) {
        self.decoders[RPCBatch.messageType(of: Request.self)] = { body in
            let ranges = try JSONTree.arrayElementRanges(body)
            guard !ranges.isEmpty else { throw JSONTree.Malformed(description: "an empty batch") }
            var decodedList: [Indexed<Request>] = []
            var refusedList: [RPCBatch.Answer] = []
            for (index, range) in ranges.enumerated() {
                do {
                    decodedList.append(Indexed(index: index, value: try Request.decode(from: Array(body[range]))))
                } catch {
                    refusedList.append(RPCBatch.Answer(index: index, result: .failure(RPCErrorReply(
                        code: RPCErrorReply.badRequestCode, message: "undecodable \(Request.messageType): \(MessageCoding.describe(error))"))))
                }
            }
            let (decoded, refused, count) = (decodedList, refusedList, ranges.count)
            return { (batch: MessageContext) -> RPCRoutes.Reply in
                let ids = RPCBatch.callIDs(batch.message.headers, count: count)
                func context(_ index: Int) -> MessageContext {
                    batch.call(index, requestID: ids[index].requestID, traceparent: ids[index].traceparent)
                }
                for answer in refused {
                    if case .failure(let refusal) = answer.result {
                        context(answer.index).logger.error("batched request refused", metadata: [LogKey.error: "\(refusal.message)"])
                    }
                }
                let calls = decoded.map { RPCBatch.Call(request: $0.value, context: context($0.index)) }
                let outcomes = calls.isEmpty ? [] : await handler(calls)
                func encoded(_ result: Result<Response, any Error>) -> Result<[UInt8], RPCErrorReply> {
                    switch result {
                    case .success(let response):
                        do { return .success(try MessageCoding.encode(response)) } catch {
                            return .failure(RPCErrorReply(code: RPCErrorReply.internalCode, message: "response not encodable"))
                        }
                    case .failure(let error):
                        return .failure(RPCErrorReply.answering(error))
                    }
                }
                var now = refused
                var later: [Indexed<@Sendable () async throws -> Response>] = []
                for (n, call) in decoded.enumerated() {
                    switch n < outcomes.count ? outcomes[n] : .answer(.failure(RPCErrorReply(code: RPCErrorReply.internalCode,
                                                                                               message: "no answer for this request"))) {
                    case .answer(let result): now.append(RPCBatch.Answer(index: call.index, result: encoded(result)))
                    case .later(let work): later.append(Indexed(index: call.index, value: work))
                    }
                }
                if later.isEmpty { return .response(RPCBatch.encodeReplies(now)) }
                // Sent even when empty: the first reply gives the caller's batch slot back, so
                // questions waiting for the upstream do not hold up the batches behind them.
                batch.publisher.reply(to: batch.message, body: RPCBatch.encodeReplies(now), status: RPCReplyStatus.ok)
                await withTaskGroup(of: Void.self) { group in
                    for item in later {
                        group.addTask {
                            let result: Result<Response, any Error>
                            do { result = .success(try await item.value()) } catch { result = .failure(error) }
                            let answer = RPCBatch.Answer(index: item.index, result: encoded(result))
                            batch.publisher.reply(to: batch.message, body: RPCBatch.encodeReplies([answer]), status: RPCReplyStatus.ok)
                        }
                    }
                }
                return .sentInParts
            }
        }
    }
}

/// A value and its position. (A struct rather than an `(Int, T)` tuple: Swift 6.3.1's optimiser
/// garbled the Int of such tuples captured by child tasks in release builds.)
package struct Indexed<Value: Sendable>: Sendable {
    package let index: Int
    package let value: Value
    package init(index: Int, value: Value) {
        self.index = index
        self.value = value
    }
}

