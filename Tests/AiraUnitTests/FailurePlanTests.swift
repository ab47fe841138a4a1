@testable import AiraMessaging
import AiraCore
import AiraAMQP
import Foundation
import Testing

@Suite("Retry and dead-letter protocol")
struct FailurePlanTests {
    let spec = QueueSpec(name: "audit", bindings: ["audit.*"],
                         retry: RetryPolicy(tiers: [.seconds(1), .seconds(10), .seconds(60)], maxAttempts: 4))

    @Test("transient failures walk the tiers, then dead-letter as exhausted")
    func tiers() {
        #expect(FailurePlan.plan(spec: spec, previousAttempts: 0, transient: true) == .retry(queue: "audit.retry.1s", attempts: 1))
        #expect(FailurePlan.plan(spec: spec, previousAttempts: 1, transient: true) == .retry(queue: "audit.retry.10s", attempts: 2))
        #expect(FailurePlan.plan(spec: spec, previousAttempts: 2, transient: true) == .retry(queue: "audit.retry.1m", attempts: 3))
        #expect(FailurePlan.plan(spec: spec, previousAttempts: 3, transient: true)
                == .deadLetter(queue: "audit.dlq", attempts: 4, disposition: .retriesExhausted))
    }

    @Test("the last tier repeats when attempts outnumber tiers")
    func lastTierRepeats() {
        let long = QueueSpec(name: "q", bindings: [], retry: RetryPolicy(tiers: [.milliseconds(500)], maxAttempts: 10))
        #expect(FailurePlan.plan(spec: long, previousAttempts: 5, transient: true) == .retry(queue: "q.retry.500ms", attempts: 6))
    }

    @Test("permanent failures dead-letter at once")
    func permanent() {
        #expect(FailurePlan.plan(spec: spec, previousAttempts: 0, transient: false)
                == .deadLetter(queue: "audit.dlq", attempts: 1, disposition: .permanent))
    }

    @Test("RPC queues never use the delay tiers")
    func rpcNoTiers() {
        let rpc = QueueSpec(name: "auth.rpc", bindings: ["auth.*"], kind: .rpc)
        #expect(rpc.retryQueues.isEmpty)
        #expect(rpc.allQueues == ["auth.rpc", "auth.rpc.dlq"])
        if case .deadLetter = FailurePlan.plan(spec: rpc, previousAttempts: 0, transient: true) {} else {
            Issue.record("RPC transient failures are not routed through tiers")
        }
    }

    @Test("the copy keeps the story: first failure, original key, and drops broker bookkeeping")
    func headers() {
        let first = Date(timeIntervalSince1970: 1_700_000_000)
        var props = AMQPProperties(headers: [
            AiraHeader.attempts: .int(1), AiraHeader.firstFailedAt: .string(iso8601(first)),
            AiraHeader.originalRoutingKey: .string("audit.login"), AiraHeader.traceparent: .string("00-aa"),
            "x-death": .array([]), "x-delivery-count": .int(2), "x-first-death-queue": .string("audit.retry.1s"),
        ], messageID: "m1")
        props.type = "audit.event.v1"
        let delivery = AMQPDelivery(deliveryTag: 1, redelivered: false, exchange: "", routingKey: "audit",
                                    consumerTag: "c", properties: props, body: [], channelEpoch: 1)
        let now = Date(timeIntervalSince1970: 1_700_000_100)
        let h = FailureRouter.headers(for: InboundMessage(delivery), queue: "audit", attempts: 2, error: "boom",
                                      errorType: "db_down", disposition: .retriesExhausted, now: now)
        #expect(h[AiraHeader.attempts] == .int(2))
        #expect(h[AiraHeader.firstFailedAt] == .string(iso8601(first)))
        #expect(h[AiraHeader.lastFailedAt] == .string(iso8601(now)))
        #expect(h[AiraHeader.originalRoutingKey] == .string("audit.login"))
        #expect(h[AiraHeader.queue] == .string("audit"))
        #expect(h[AiraHeader.error] == .string("boom"))
        #expect(h[AiraHeader.errorType] == .string("db_down"))
        #expect(h[AiraHeader.disposition] == .string("retries_exhausted"))
        #expect(h[AiraHeader.traceparent] == .string("00-aa"))
        #expect(h["x-death"] == nil && h["x-delivery-count"] == nil && h["x-first-death-queue"] == nil)
    }

    @Test("tier queue names are stable and readable")
    func names() {
        let s = QueueSpec(name: "thumbnail", bindings: ["thumbnail.generate"],
                          retry: RetryPolicy(tiers: [.milliseconds(250), .seconds(1), .seconds(90), .seconds(600), .seconds(7200)]))
        #expect(s.retryQueues == ["thumbnail.retry.250ms", "thumbnail.retry.1s", "thumbnail.retry.90s", "thumbnail.retry.10m", "thumbnail.retry.2h"])
        #expect(s.deadLetterQueue == "thumbnail.dlq")
    }
}

@Suite("Envelope and contracts")
struct EnvelopeTests {
    struct Sample: MessageContract, Equatable {
        static let messageType = "sample.v1"
        var name: String
        var at: Date
        var count: Int
    }

    @Test("JSON round trip with ISO 8601 dates")
    func roundTrip() throws {
        let s = Sample(name: "ü ✓", at: Date(timeIntervalSince1970: 1_763_000_000.125), count: 3)
        let bytes = try MessageCoding.encode(s)
        #expect(String(decoding: bytes, as: UTF8.self).contains("2025-11-13T02:13:20.125Z"))
        let back = try MessageCoding.decode(Sample.self, from: bytes)
        #expect(back.name == s.name && back.count == 3)
        #expect(abs(back.at.timeIntervalSince(s.at)) < 0.001)
    }

    @Test("decoding errors say what was wrong")
    func decodingErrors() {
        func reason(_ json: String) -> String {
            do { _ = try MessageCoding.decode(Sample.self, from: Array(json.utf8)); return "decoded" }
            catch { return MessageCoding.describe(error) }
        }
        #expect(reason(#"{"name":"a","at":"2025-01-01T00:00:00Z"}"#) == "missing field 'count' at body")
        #expect(reason(#"{"name":"a","at":"2025-01-01T00:00:00Z","count":"x"}"#).hasPrefix("wrong type at count"))
        #expect(reason(#"{"name":"a","at":"yesterday","count":1}"#).contains("not an ISO 8601 date"))
        #expect(reason("{nope").hasPrefix("invalid JSON"))
    }

    @Test("trace context: valid, child keeps the trace id")
    func traceparent() {
        let t = TraceParent.random()
        #expect(TraceParent.isValid(t))
        let child = TraceParent.child(of: t)
        #expect(child.split(separator: "-")[1] == t.split(separator: "-")[1])
        #expect(child != t)
        #expect(!TraceParent.isValid("00-abc-def-01"))
        #expect(TraceParent.isValid(TraceParent.child(of: "garbage")))
    }

    @Test("envelope properties of a new message")
    func properties() {
        let p = MessagePublisher.properties(type: "sample.v1", messageID: "m1", correlationID: nil, traceparent: "bad")
        #expect(p.messageID == "m1" && p.correlationID == "m1" && p.type == "sample.v1")
        #expect(p.deliveryMode == AMQPProperties.persistent)
        #expect(p.contentType == "application/json")
        #expect(p.headers[AiraHeader.traceparent]?.stringValue.map(TraceParent.isValid) == true)
        #expect(p.timestamp != nil)
    }

    @Test("classification: classified errors say, others retry")
    func classification() {
        struct Other: Error {}
        #expect(ErrorClassification.isTransient(TransientError(code: "t", "x")))
        #expect(!ErrorClassification.isTransient(PermanentError(code: "p", "x")))
        #expect(ErrorClassification.isTransient(Other()))
        #expect(ErrorClassification.code(PermanentError(code: "bad_email", "x")) == "bad_email")
        #expect(ErrorClassification.code(Other()) == "Other")
        #expect(ErrorClassification.message(TransientError(code: "t", String(repeating: "a", count: 5000))).count == 1001)
    }
}

@Suite("RPC queue type")
struct RPCQueueTypeTests {
    @Test("AIRA_RPC_QUEUE_TYPE: quorum by default, classic on request, anything else refused")
    func parse() throws {
        #expect(try QueueSpec.rpcQueueType([:]) == "quorum")
        #expect(try QueueSpec.rpcQueueType(["AIRA_RPC_QUEUE_TYPE": ""]) == "quorum")
        #expect(try QueueSpec.rpcQueueType(["AIRA_RPC_QUEUE_TYPE": "classic"]) == "classic")
        #expect(throws: ConfigurationError.self) { try QueueSpec.rpcQueueType(["AIRA_RPC_QUEUE_TYPE": "stream"]) }
    }
}
