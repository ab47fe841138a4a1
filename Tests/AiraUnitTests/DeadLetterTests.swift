@testable import AiraMessaging
import AiraCore
import AiraAMQP
import Foundation
import Testing

@Suite("Dead letters: filters and replay envelope")
struct DeadLetterTests {
    func letter(id: String, type: String, error: String, errorType: String, lastFailed: Date, broker: Bool = false) -> DeadLetter {
        var headers: AMQPTable = [AiraHeader.traceparent: .string("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")]
        if broker {
            headers["x-death"] = .array([.table(["reason": .string("delivery_limit"), "queue": .string("audit"),
                                                 "routing-keys": .array([.string("audit.login")]),
                                                 "time": .timestamp(UInt64(lastFailed.timeIntervalSince1970))])])
        } else {
            headers[AiraHeader.error] = .string(error)
            headers[AiraHeader.errorType] = .string(errorType)
            headers[AiraHeader.lastFailedAt] = .string(iso8601(lastFailed))
            headers[AiraHeader.firstFailedAt] = .string(iso8601(lastFailed.addingTimeInterval(-60)))
            headers[AiraHeader.attempts] = .int(5)
            headers[AiraHeader.disposition] = .string("retries_exhausted")
            headers[AiraHeader.queue] = .string("audit")
            headers[AiraHeader.originalRoutingKey] = .string("audit.login")
        }
        let props = AMQPProperties(headers: headers, deliveryMode: 2, expiration: "1000", messageID: id, type: type)
        return DeadLetter(AMQPDelivery(deliveryTag: 1, redelivered: false, exchange: "", routingKey: "audit.dlq",
                                       consumerTag: "c", properties: props, body: Array("{}".utf8), channelEpoch: 1))
    }

    @Test("filters combine with AND")
    func filters() {
        let now = Date()
        let a = letter(id: "a", type: "audit.event.v1", error: "connection refused", errorType: "db_down", lastFailed: now)
        let b = letter(id: "b", type: "email.send.v1", error: "SMTP 550 no such user", errorType: "smtp_550", lastFailed: now.addingTimeInterval(-7200))
        #expect(DeadLetterFilter().matches(a) && DeadLetterFilter().isEmpty)
        #expect(DeadLetterFilter(ids: ["a"]).matches(a) && !DeadLetterFilter(ids: ["a"]).matches(b))
        #expect(DeadLetterFilter(type: "email.send.v1").matches(b) && !DeadLetterFilter(type: "email.send.v1").matches(a))
        #expect(DeadLetterFilter(errorContains: "smtp 550").matches(b))
        #expect(DeadLetterFilter(errorContains: "DB_DOWN").matches(a)) // matches the error type too
        #expect(DeadLetterFilter(since: now.addingTimeInterval(-3600)).matches(a))
        #expect(!DeadLetterFilter(since: now.addingTimeInterval(-3600)).matches(b))
        #expect(!DeadLetterFilter(type: "audit.event.v1", errorContains: "smtp").matches(a))
    }

    @Test("messages the broker dead-lettered read their reasons from x-death")
    func brokerDeath() {
        let at = Date(timeIntervalSince1970: 1_790_000_000)
        let d = letter(id: "x", type: "audit.event.v1", error: "", errorType: "", lastFailed: at, broker: true)
        #expect(d.disposition == "delivery_limit")
        #expect(d.queue == "audit")
        #expect(d.originalRoutingKey == "audit.login")
        #expect(d.lastFailedAt == at)
        #expect(d.error?.contains("delivery_limit") == true)
    }

    @Test("a replayed message starts over: attempts 0, history cleared, replay time set")
    func replayEnvelope() {
        let now = Date(timeIntervalSince1970: 1_790_000_000)
        let d = letter(id: "a", type: "audit.event.v1", error: "boom", errorType: "t", lastFailed: now)
        let p = DeadLetterQueues.replayProperties(d, now: now)
        #expect(p.messageID == "a" && p.type == "audit.event.v1")
        #expect(p.headers[AiraHeader.attempts] == .int(0))
        #expect(p.headers[AiraHeader.replayedAt] == .string(iso8601(now)))
        for h in [AiraHeader.error, AiraHeader.errorType, AiraHeader.disposition, AiraHeader.firstFailedAt, AiraHeader.lastFailedAt, AiraHeader.queue] {
            #expect(p.headers[h] == nil, "\(h) should be cleared")
        }
        #expect(p.headers[AiraHeader.originalRoutingKey] == .string("audit.login"))
        #expect(p.headers[AiraHeader.traceparent] != nil)
        #expect(p.expiration == nil && p.deliveryMode == 2)
        #expect(DeadLetterQueues.workQueue(for: "audit.dlq") == "audit" && DeadLetterQueues.deadLetterQueue(for: "audit") == "audit.dlq")
    }
}
