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

    @Test("groups by error type and text: largest first, ids in queue order, first and last failure of each group")
    func groups() {
        let t0 = Date(timeIntervalSince1970: 1_800_000_000)
        let letters = [
            letter(id: "a", type: "audit.event.v1", error: "timeout", errorType: "db", lastFailed: t0),
            letter(id: "b", type: "audit.event.v1", error: "bad json", errorType: "decoding_failed", lastFailed: t0.addingTimeInterval(5)),
            letter(id: "c", type: "audit.event.v1", error: "timeout", errorType: "db", lastFailed: t0.addingTimeInterval(10)),
            letter(id: "d", type: "audit.event.v1", error: "other timeout", errorType: "db", lastFailed: t0.addingTimeInterval(20)),
            letter(id: "e", type: "audit.event.v1", error: "timeout", errorType: "db", lastFailed: t0.addingTimeInterval(30)),
        ]
        let groups = DeadLetterGroup.groups(letters)
        #expect(groups.map(\.ids) == [["a", "c", "e"], ["b"], ["d"]])
        #expect(groups[0].count == 3 && groups[0].errorType == "db" && groups[0].error == "timeout")
        #expect(groups[0].firstFailedAt == t0.addingTimeInterval(-60))
        #expect(groups[0].lastFailedAt == t0.addingTimeInterval(30))
        #expect(DeadLetterGroup.groups([]).isEmpty)
        let view = DeadLetterView(letters[0], includeBody: true, bodyLimit: 1)
        #expect(view.body == "{" && view.headers?[AiraHeader.errorType] == "db")
        #expect(DeadLetterView(letters[0], includeBody: false).headers == nil)
    }

    @Test("queue overview from the management API: counts, retry tiers summed, rates; missing queues as nil")
    func overview() {
        typealias Info = ManagementAPI.QueueInfo
        let infos = [
            Info(name: "audit.events", messages_ready: 4, messages_unacknowledged: 2, consumers: 3,
                 message_stats: .init(publish_details: .init(rate: 12.5), deliver_get_details: .init(rate: 11), ack_details: .init(rate: 10))),
            Info(name: "audit.events.dlq", messages_ready: 7), Info(name: "audit.events.retry.1s", messages_ready: 1, messages_unacknowledged: 1),
            Info(name: "audit.events.retry.10s", messages_ready: 3), Info(name: "unrelated", messages_ready: 9),
        ]
        let rows = QueueOverview.rows(from: infos, only: [])
        #expect(rows == [QueueOverview(queue: "audit.events", ready: 4, unacked: 2, consumers: 3, retrying: 5, deadLetters: 7,
                                       publishRate: 12.5, deliverRate: 11, ackRate: 10)])
        let named = QueueOverview.rows(from: infos, only: ["email.send"])
        #expect(named == [QueueOverview(queue: "email.send", ready: nil, unacked: nil, consumers: nil, retrying: 0, deadLetters: nil)])
    }
}
