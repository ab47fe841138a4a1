import AiraContracts
import AiraCore
import AiraLLM
import AiraMessaging
import Foundation
import Testing

/// The hand-written JSON of the cached-answer path must say exactly what JSONEncoder and
/// JSONDecoder say, and hand anything unusual back to them.
struct FastJSONTests {
    static let user = UUID(uuidString: "6F1C2A9E-0B7D-4E55-9A3B-1C2D3E4F5A6B")!

    static let requests: [AskRequest] = [
        AskRequest(userId: user, role: "USER", model: nil, messages: [ChatMessage(role: "user", content: "Why is the sky blue?")],
                   client: ClientInfo(ip: "127.0.0.1")),
        AskRequest(userId: user, role: "ADMIN", model: "gpt-x", messages: [
            ChatMessage(role: "system", content: "Be \"brief\"\n\ttabs\\slashes/ and é, 日本, emoji 🎈, control \u{01}"),
            ChatMessage(role: "user", content: ""),
        ], parameters: SamplingParameters(temperature: 0.7, topP: 1, maxTokens: 100, stop: ["\n", "END"], seed: -3,
                                          presencePenalty: -0.5, frequencyPenalty: 1e-5),
        cache: .refresh, stream: true, conversationId: "conv_1-x", client: ClientInfo(ip: "::1", userAgent: "curl/8 \"x\"")),
    ]

    static func foundationJSON<T: Encodable>(_ value: T) throws -> Any {
        try JSONSerialization.jsonObject(with: Data(try MessageCoding.encodeWithFoundation(value)))
    }

    static func fastJSON(_ bytes: [UInt8]) throws -> Any { try JSONSerialization.jsonObject(with: Data(bytes)) }

    /// Equal as JSON (JSONEncoder's key order is not stable between encodes).
    static func same<T: Encodable>(_ a: T, _ b: T) throws -> Bool {
        (try foundationJSON(a) as? NSObject) == (try foundationJSON(b) as? NSObject)
    }

    @Test("AskRequest: the hand-written JSON reads back through JSONDecoder, and the fast reader reads JSONEncoder's")
    func askRequest() throws {
        for request in Self.requests {
            let fast = try request.encoded()
            let viaFoundation = try MessageCoding.decodeWithFoundation(AskRequest.self, from: fast)
            #expect(NSDictionary(dictionary: try Self.foundationJSON(viaFoundation) as! [String: Any])
                == NSDictionary(dictionary: try Self.foundationJSON(request) as! [String: Any]))
            let read = try AskRequest(json: try JSONTree.parse(try MessageCoding.encodeWithFoundation(request)))
            #expect(try Self.same(read, request))
            #expect(try Self.same(try AskRequest.decode(from: fast), request))
        }
        // A non-finite parameter is refused, as JSONEncoder refuses it, whichever way it is encoded.
        var odd = Self.requests[0]
        odd.parameters.temperature = .infinity
        #expect(throws: EncodingError.self) { _ = try odd.encoded() }
        #expect(throws: EncodingError.self) { _ = try MessageCoding.encode(odd) }
        #expect(throws: EncodingError.self) { _ = try MessageCoding.encodeWithFoundation(odd) }
    }

    @Test("AskResponse and its parts: both ways against Foundation")
    func askResponse() throws {
        let responses = [
            AskResponse(id: "chatcmpl-1", answer: "Rayleigh \"scattering\".\n", model: "m", finishReason: "stop", cached: true,
                        usage: Usage(promptTokens: 3, completionTokens: 5),
                        quota: QuotaStatus(used: 4, limit: 100, resetAt: Date(timeIntervalSince1970: 1_763_856_000)), conversationId: "c1"),
            AskResponse(id: "x", answer: "", model: "m", finishReason: "length", cached: false, usage: nil,
                        quota: QuotaStatus(used: 0, limit: 1, resetAt: Date(timeIntervalSince1970: 1_763_856_000.5)), conversationId: nil,
                        upstreamMs: 20.125),
        ]
        for response in responses {
            let fast = try response.fastJSON()
            #expect(NSDictionary(dictionary: try Self.fastJSON(fast) as! [String: Any])
                == NSDictionary(dictionary: try Self.foundationJSON(response) as! [String: Any]))
            let read = try MessageCoding.decode(AskResponse.self, from: try MessageCoding.encodeWithFoundation(response))
            #expect(try Self.same(read, response))
        }
    }

    @Test("anything the fast readers do not handle goes to JSONDecoder: same values, same errors")
    func fallbacks() throws {
        // Content as text parts (OpenAI's shape) is JSONDecoder's.
        let parts = Array(#"{"role":"user","content":[{"type":"text","text":"a"},{"type":"text","text":"b"}]}"#.utf8)
        #expect(throws: (any Error).self) { _ = try ChatMessage(json: try JSONTree.parse(parts)) }
        #expect(try MessageCoding.decode(ChatMessage.self, from: parts).content == "a\nb")
        // Errors are JSONDecoder's own.
        let missing = Array(#"{"id":"x","answer":"a","model":"m","finishReason":"stop","cached":true}"#.utf8)
        #expect {
            _ = try MessageCoding.decode(AskResponse.self, from: missing)
        } throws: { error in
            MessageCoding.describe(error) == "missing field 'quota' at body"
        }
        // A duplicate key is never guessed at.
        #expect(throws: JSONTree.Unsupported.self) { _ = try JSONTree.parse(Array(#"{"a":1,"a":2}"#.utf8)) }
    }

    @Test("JSONTree reads what JSONSerialization reads, and refuses what it refuses")
    func tree() throws {
        let good = [#"{"a":[1,-2.5e3,true,false,null,"x\u00e9\ud83c\udf88\n\"\\\/"],"b":{},"c":[]}"#, "  [ 0 , 1.0 ]  ", #""plain""#, "-0"]
        for text in good {
            let tree = try JSONTree.parse(Array(text.utf8))
            #expect(Self.plain(tree) as? NSObject == (try JSONSerialization.jsonObject(with: Data(text.utf8), options: .fragmentsAllowed)) as? NSObject,
                    "\(text)")
        }
        for bad in ["{", #"{"a":}"#, "[1,]", "01", "1.", "+1", #""\ud800""#, "\"a\u{01}\"", #"{"a" 1}"#, "[1] x", "tru", #""\x""#] {
            #expect(throws: JSONTree.Unsupported.self, "\(bad)") { _ = try JSONTree.parse(Array(bad.utf8)) }
        }
    }

    static func plain(_ tree: JSONTree) -> Any {
        switch tree {
        case .null: NSNull()
        case .bool(let b): NSNumber(value: b)
        case .number(let n): Int(n).map { NSNumber(value: $0) } ?? NSNumber(value: Double(n)!)
        case .string(let s): s as NSString
        case .array(let a): a.map(Self.plain) as NSArray
        case .object(let m): Dictionary(uniqueKeysWithValues: m.map { ($0.0, Self.plain($0.1)) }) as NSDictionary
        }
    }
}

struct RPCBatchFormatTests {
    @Test("array elements are found without decoding them, strings and nesting respected")
    func slices() throws {
        let body = Array(#"[{"a":"],}"},[1,[2]],"x\"]",null , 3]"#.utf8)
        let parts = try JSONTree.arrayElementRanges(body).map { String(decoding: body[$0], as: UTF8.self) }
        #expect(parts == [#"{"a":"],}"}"#, "[1,[2]]", #""x\"]""#, "null", "3"])
        #expect(try JSONTree.arrayElementRanges(Array(" [ ] ".utf8)).isEmpty)
        // The grammar is checked inside the elements too (what they hold is not).
        for bad in ["{}", "[1", "[1,]", "[[1]", "[\"a]", "[1] 2", "[,1]", "[1}", "[tru]", "[01]", "[{\"a\"}]", "[{1:2}]", "[\"a\nb\"]", ""] {
            #expect(throws: JSONTree.Malformed.self, "\(bad)") { _ = try JSONTree.arrayElementRanges(Array(bad.utf8)) }
        }
        let deep = Array((String(repeating: "[", count: 70) + String(repeating: "]", count: 70)).utf8)
        #expect(throws: JSONTree.Malformed.self, "nesting is bounded as in parse") { _ = try JSONTree.arrayElementRanges(deep) }
    }

    @Test("batch replies: indices and outcomes round-trip; a malformed reply is refused")
    func replies() throws {
        let error = RPCErrorReply(code: "quota_exceeded", message: "used up", details: ["limit": "2"])
        let items = [
            RPCBatch.Answer(index: 3, result: .success(Array(#"{"x":"]}"}"#.utf8))), RPCBatch.Answer(index: 0, result: .failure(error)),
            RPCBatch.Answer(index: 12, result: .success(Array("[]".utf8))),
        ]
        let decoded = try RPCBatch.decodeReplies(RPCBatch.encodeReplies(items))
        #expect(decoded.map(\.index) == [3, 0, 12])
        #expect(try decoded[0].result.get() == Array(#"{"x":"]}"}"#.utf8))
        #expect(decoded[1].result == .failure(error))
        #expect(try decoded[2].result.get() == Array("[]".utf8))
        #expect(try RPCBatch.decodeReplies(RPCBatch.encodeReplies([])).isEmpty)
        for bad in [#"[{"ok":1}]"#, #"[{"i":1,"maybe":2}]"#, #"[{"i":,"ok":1}]"#, "{}"] {
            #expect(throws: (any Error).self, "\(bad)") { _ = try RPCBatch.decodeReplies(Array(bad.utf8)) }
        }
        #expect(RPCBatch.encodeRequests([Array("{}".utf8), Array("[1]".utf8)]) == Array("[{},[1]]".utf8))
    }

    @Test("batch calls' ids: each call's request id and trace survive the header, in order; calls without ids add no header")
    func callIDs() {
        let trace = TraceParent.random()
        let ids = [RPCBatch.CallIDs(requestID: "req-1", traceparent: trace), RPCBatch.CallIDs(),
                   RPCBatch.CallIDs(requestID: "req-3")]
        let header = try! #require(RPCBatch.header(ids))
        #expect(RPCBatch.callIDs([AiraHeader.batchCalls: header], count: 3) == ids)
        #expect(RPCBatch.header([RPCBatch.CallIDs(), RPCBatch.CallIDs()]) == nil)
        #expect(RPCBatch.callIDs([:], count: 2) == [RPCBatch.CallIDs(), RPCBatch.CallIDs()])
        // A header shorter than the batch (an older caller) leaves the rest without ids.
        #expect(RPCBatch.callIDs([AiraHeader.batchCalls: header], count: 4).last == RPCBatch.CallIDs())
    }
}
