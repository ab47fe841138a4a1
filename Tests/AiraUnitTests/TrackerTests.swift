@testable import AiraAMQP
import Testing

@Suite("Ack coalescing and confirm tracking")
struct TrackerTests {
    @Test("acks at the front become one multiple ack; the rest go singly, never held back")
    func coalesce() {
        var t = AckTracker()
        for tag in 1...10 { t.delivered(UInt64(tag)) }
        for tag in [1, 2, 3, 5] { t.requestAck(UInt64(tag)) }
        #expect(t.flush() == .init(multipleUpTo: 3, single: [5]))
        // 4 acked now: 5 was already settled, so the front run is just 4 → a plain ack.
        t.requestAck(4)
        #expect(t.flush() == .init(multipleUpTo: nil, single: [4]))
        for tag in [6, 7, 8] { t.requestAck(UInt64(tag)) }
        #expect(t.flush() == .init(multipleUpTo: 8, single: []))
        t.settledOne(9) // rejected
        t.requestAck(10)
        #expect(t.flush() == .init(multipleUpTo: nil, single: [10]))
        #expect(t.unsettledCount == 0)
    }

    @Test("a multiple ack sent directly settles everything before it")
    func settledUpTo() {
        var t = AckTracker()
        for tag in 1...5 { t.delivered(UInt64(tag)) }
        t.requestAck(2)
        t.settledUpTo(3)
        t.requestAck(5)
        #expect(t.flush() == .init(multipleUpTo: nil, single: [5]))
        #expect(t.unsettledCount == 1) // 4
    }

    @Test("confirms: single, multiple, returned, and all failed on loss")
    func confirms() {
        var c = ConfirmTracker()
        func pending(_ id: String) -> PendingPublish { PendingPublish(messageID: id, returned: nil, completion: { _ in }) }
        for i in 1...6 { #expect(c.add(pending("m\(i)")) == UInt64(i)) }
        #expect(c.take(2)?.messageID == "m2")
        #expect(c.take(2) == nil)
        c.markReturned(messageID: "m4", .unroutable(exchange: "aira", routingKey: "k", replyText: "312 NO_ROUTE"))
        let upTo4 = c.take(upTo: 4)
        #expect(upTo4.map(\.messageID) == ["m1", "m3", "m4"])
        #expect(upTo4.last?.returned != nil)
        #expect(c.pendingCount == 2)
        #expect(c.takeAll().map(\.messageID) == ["m5", "m6"])
        #expect(c.isEmpty && c.nextTag == 1)
    }
}
