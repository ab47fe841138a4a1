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
}
