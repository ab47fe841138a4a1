import AiraContracts
import AiraCore
import AiraMessaging
import Foundation
import Testing

@Suite("JSON text for flat objects, and the fast audit-event decoder")
struct AuditJSONTests {
    static let tricky = ["quote": "say \"hi\"", "slash": "a\\b/c", "lines": "one\ntwo\r\tthree", "control": "\u{1}\u{1f}",
                         "unicode": "Grüße ✨ 𝄞", "empty": ""]

    static func strings(_ tree: JSONTree) throws -> [String: String] {
        Dictionary(uniqueKeysWithValues: try tree.members().map { ($0.0, try #require($0.1.string)) })
    }

    @Test("JSONText.object then JSONTree gives the same object; Foundation reads what we write")
    func roundTrip() throws {
        let text = JSONText.object(Self.tricky)
        #expect(try Self.strings(JSONTree.parse(Array(text.utf8))) == Self.tricky)
        #expect(try JSONDecoder().decode([String: String].self, from: Data(text.utf8)) == Self.tricky)
    }

    @Test("escapes as other JSON writers produce them: \\u sequences, surrogate pairs, \\/")
    func escapes() throws {
        let parsed = try JSONTree.parse(Array(#"{ "k" : "\u00fc\u2728 \ud834\udd1e \/ \b\f" , "n": null }"#.utf8))
        #expect(parsed == .object([("k", .string("ü✨ 𝄞 / \u{8}\u{c}")), ("n", .null)]))
    }

    @Test("events outside the shape AuditEvent writes are declined by the fast path (JSONDecoder then reads or refuses them)")
    func declined() throws {
        let at = #""at":"2026-11-21T00:00:00Z""#
        #expect(try AuditEvent.fastDecode(JSONTree.parse(Array(#"{"type":"x",\#(at),"attributes":{"a":"b"}}"#.utf8))).attributes == ["a": "b"])
        for body in [#"{"type":"x",\#(at),"attributes":{"a":1}}"#, #"{"type":"x",\#(at),"attributes":{"a":["x"]}}"#,
                     #"{"type":"x",\#(at),"attributes":{"a":{"b":"c"}}}"#, #"{"type":"x",\#(at),"extra":1}"#, #"{"type":1,\#(at)}"#,
                     #"{"type":"x","at":"yesterday"}"#, #"{"type":"x",\#(at),"userId":"not-a-uuid"}"#, #"{"type":"x"}"#, #"["x"]"#] {
            #expect(throws: JSONTree.Unsupported.self, "\(body)") { try AuditEvent.fastDecode(JSONTree.parse(Array(body.utf8))) }
        }
        for body in [#"{"a":"x"} trailing"#, #"{"a":"x","a":"y"}"#, #"{"a":"\ud834"}"#, "{\"a\":\"raw\ncontrol\"}", #"{"a":"x""#, ""] {
            #expect(throws: JSONTree.Unsupported.self, "\(body)") { try JSONTree.parse(Array(body.utf8)) }
        }
    }

    @Test("AuditEvent: the fast path and JSONDecoder agree; odd bodies still decode or fail as before")
    func auditEvent() throws {
        let event = AuditEvent(type: "login", userId: UUID(), actorId: UUID(), at: Date(timeIntervalSince1970: 1_795_000_000.123),
                               ip: "10.0.0.1", attributes: Self.tricky)
        let body = try MessageCoding.encode(event)
        let fast = try AuditEvent.fastDecode(JSONTree.parse(body))  // JSONEncoder's form (upper-case UUIDs) is read fast too
        let slow = try MessageCoding.decode(AuditEvent.self, from: body)
        #expect(fast.type == slow.type && fast.userId == slow.userId && fast.actorId == slow.actorId && fast.ip == slow.ip)
        #expect(fast.at == slow.at && fast.attributes == slow.attributes)
        // A number where a string belongs: the fast path declines, JSONDecoder reports the error.
        #expect(throws: DecodingError.self) { try AuditEvent.decode(from: Array(#"{"type":42,"at":"2026-11-21T00:00:00Z","attributes":{}}"#.utf8)) }
        // An extra field the fast path does not know: still decoded (by JSONDecoder).
        let extra = try AuditEvent.decode(from: Array(#"{"type":"x","at":"2026-11-21T00:00:00Z","attributes":{},"extra":[1,2]}"#.utf8))
        #expect(extra.type == "x")
    }

    static func sameEvent(_ a: AuditEvent, _ b: AuditEvent) -> Bool {
        a.id == b.id && a.type == b.type && a.userId == b.userId && a.actorId == b.actorId && a.at == b.at && a.ip == b.ip
            && a.attributes == b.attributes
    }

    @Test("AuditEvent's own encoding is what JSONDecoder and the fast path both read back")
    func auditEventEncoding() throws {
        let full = AuditEvent(id: "e-1", type: "login", userId: UUID(), actorId: UUID(), at: Date(timeIntervalSince1970: 1_795_000_000.123),
                              ip: "10.0.0.1", attributes: Self.tricky)
        let sparse = AuditEvent(type: "login_failed", userId: nil, at: Date(timeIntervalSince1970: 1_795_000_001))
        for event in [full, sparse] {
            let body = event.encoded()
            #expect(Self.sameEvent(try MessageCoding.decode(AuditEvent.self, from: body), event))
            #expect(Self.sameEvent(try AuditEvent.decode(from: body), event))
            #expect(Self.sameEvent(try AuditEvent.fastDecode(JSONTree.parse(body)), event), "every field of the event is read by the fast path")
            // The same fields JSONEncoder writes (nil ones absent), so older readers see no difference.
            let ours = try JSONSerialization.jsonObject(with: Data(body)) as? [String: Any]
            let foundation = try JSONSerialization.jsonObject(with: Data(try MessageCoding.encode(event))) as? [String: Any]
            #expect(Set(ours?.keys ?? [:].keys) == Set(foundation?.keys ?? [:].keys))
        }
    }

    @Test("AuditBatch: encoded, read back by both paths; ids required; a single event is a batch of one without its id")
    func auditBatch() throws {
        let events = (0..<50).map { (i: Int) -> AuditEvent in
            let at = Date(timeIntervalSince1970: 1_795_000_000 + Double(i))
            let ip: String? = i % 2 == 0 ? nil : "10.0.0.\(i)"
            let attributes: [String: String] = i == 7 ? Self.tricky : ["n": String(i)]
            return AuditEvent(id: "batch-\(i)", type: "video_played", userId: UUID(), at: at, ip: ip, attributes: attributes)
        }
        let body = AuditBatch(events: events).encoded()
        let fast = try AuditBatch.decode(type: AuditBatch.messageType, from: body)
        guard case .array(let items) = try JSONTree.parse(body) else { Issue.record("a batch is an array"); return }
        #expect(zip(try items.map(AuditEvent.fastDecode), events).allSatisfy(Self.sameEvent), "the batch is read by the fast path")
        let slow = try MessageCoding.decode(AuditBatch.self, from: body)
        #expect(fast.events.count == 50 && slow.events.count == 50)
        #expect(zip(fast.events, events).allSatisfy(Self.sameEvent) && zip(slow.events, events).allSatisfy(Self.sameEvent))
        // JSONEncoder's form (upper-case UUIDs) reads the same.
        #expect(zip(try AuditBatch.decode(from: try MessageCoding.encode(AuditBatch(events: events))).events, events).allSatisfy(Self.sameEvent))

        #expect(throws: AuditBatch.Invalid.self) { try AuditBatch.decode(from: Array("[]".utf8)) }
        var anonymous = events
        anonymous[3].id = nil
        #expect(throws: AuditBatch.Invalid.self) { try AuditBatch.decode(from: AuditBatch(events: anonymous).encoded()) }
        #expect(throws: DecodingError.self) { try AuditBatch.decode(from: Array(#"[{"id":"x","type":1}]"#.utf8)) }

        let single = try AuditBatch.decode(type: AuditEvent.messageType, from: events[0].encoded())
        #expect(single.events.count == 1 && single.events[0].id == nil && single.events[0].type == "video_played")
        #expect(AuditBatch.acceptedMessageTypes == ["audit.batch.v1", "audit.event.v1"])
    }
}
