import AiraContracts
import AiraMessaging
import Foundation
import Testing

@Suite("FlatJSON and the fast audit-event decoder")
struct FlatJSONTests {
    static let tricky = ["quote": "say \"hi\"", "slash": "a\\b/c", "lines": "one\ntwo\r\tthree", "control": "\u{1}\u{1f}",
                         "unicode": "Grüße ✨ 𝄞", "empty": ""]

    @Test("encode then parse gives the same object; Foundation reads what we write")
    func roundTrip() throws {
        let text = FlatJSON.encode(Self.tricky)
        #expect(try FlatJSON.parse(Array(#"{"a":\#(text)}"#.utf8)) == ["a": .object(Self.tricky)])
        #expect(try JSONDecoder().decode([String: String].self, from: Data(text.utf8)) == Self.tricky)
    }

    @Test("escapes as other JSON writers produce them: \\u sequences, surrogate pairs, \\/")
    func escapes() throws {
        let parsed = try FlatJSON.parse(Array(#"{ "k" : "\u00fc\u2728 \ud834\udd1e \/ \b\f" , "n": null }"#.utf8))
        #expect(parsed == ["k": .string("ü✨ 𝄞 / \u{8}\u{c}"), "n": .null])
    }

    @Test("anything outside the flat shape is refused (the caller falls back to JSONDecoder)")
    func refused() {
        for body in [#"{"a":1}"#, #"{"a":["x"]}"#, #"{"a":{"b":{"c":"d"}}}"#, #"{"a":"x"} trailing"#, #"{"a":"x","a":"y"}"#,
                     #"{"a":"\ud834"}"#, "{\"a\":\"raw\ncontrol\"}", #"["a"]"#, #"{"a":"x""#, ""] {
            #expect(throws: FlatJSON.Unsupported.self, "\(body)") { try FlatJSON.parse(Array(body.utf8)) }
        }
    }

    @Test("AuditEvent: the fast path and JSONDecoder agree; odd bodies still decode or fail as before")
    func auditEvent() throws {
        let event = AuditEvent(type: "login", userId: UUID(), actorId: UUID(), at: Date(timeIntervalSince1970: 1_795_000_000.123),
                               ip: "10.0.0.1", attributes: Self.tricky)
        let body = try MessageCoding.encode(event)
        let fast = try AuditEvent.decode(from: body)
        let slow = try MessageCoding.decode(AuditEvent.self, from: body)
        #expect(fast.type == slow.type && fast.userId == slow.userId && fast.actorId == slow.actorId && fast.ip == slow.ip)
        #expect(fast.at == slow.at && fast.attributes == slow.attributes)
        // A number where a string belongs: the fast path declines, JSONDecoder reports the error.
        #expect(throws: DecodingError.self) { try AuditEvent.decode(from: Array(#"{"type":42,"at":"2026-11-21T00:00:00Z","attributes":{}}"#.utf8)) }
        // An extra field the fast path does not know: still decoded (by JSONDecoder).
        let extra = try AuditEvent.decode(from: Array(#"{"type":"x","at":"2026-11-21T00:00:00Z","attributes":{},"extra":[1,2]}"#.utf8))
        #expect(extra.type == "x")
    }

    @Test("parseList reads an array of flat objects and refuses anything else")
    func list() throws {
        #expect(try FlatJSON.parseList(Array(" [ ] ".utf8)).isEmpty)
        let list = try FlatJSON.parseList(Array(#"[{"a":"x"},{"b":null,"c":{"d":"e"}}]"#.utf8))
        let objects = list.map { Dictionary(uniqueKeysWithValues: $0.map { ($0.key, $0.value) }) }
        let expected: [[String: FlatJSON.Value]] = [["a": .string("x")], ["b": .null, "c": .object(["d": "e"])]]
        #expect(objects == expected)
        #expect(list[1].map(\.key) == ["b", "c"], "members keep their order")
        #expect(throws: FlatJSON.Unsupported.self) { try FlatJSON.parseList(Array(#"[{"a":"x","a":"y"}]"#.utf8)) }
        for body in [#"[{"a":"x"},]"#, #"[{"a":"x"}"#, #"["a"]"#, #"{"a":"x"}"#, #"[{"a":"x"}] x"#, #"[[]]"#, ""] {
            #expect(throws: FlatJSON.Unsupported.self, "\(body)") { try FlatJSON.parseList(Array(body.utf8)) }
        }
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
