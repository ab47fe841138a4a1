import AiraContracts
import AiraCore
import AiraLLM
import AiraMessaging
import Foundation
import Testing

/// Every hand-written codec (a contract's JSON written twice: by its `Codable` declaration and by
/// hand for speed), checked against that declaration field by field, so that a field one side
/// forgets cannot pass unnoticed:
/// - the codecs tested here are exactly the types declared `FastJSONEncodable`/`FastJSONDecodable`
///   in Shared/ (plus the audit event's own), found in the source — a new one without a test fails;
/// - each type's samples between them set every field its declaration has (walked with `Mirror`:
///   every optional once non-nil, every collection once non-empty), so a forgotten field cannot
///   hide behind its default;
/// - for each sample, the hand-written writer says what JSONEncoder says, and the hand-written
///   reader reads back from JSONEncoder's text what JSONEncoder wrote.
@Suite("Every field of every hand-written codec")
struct ContractCodecTests {
    struct Codec: Sendable {
        let name: String
        let samples: [any Sendable]
        /// The sample's JSON as the hand-written writer and as JSONEncoder write it.
        let written: @Sendable (any Sendable) throws -> (fast: [UInt8], foundation: [UInt8])
        /// JSONEncoder's text read by the hand-written reader, written again by JSONEncoder.
        let readBack: @Sendable ([UInt8]) throws -> [UInt8]
    }

    static func codec<T: FastJSONEncodable & FastJSONDecodable & Encodable & Sendable>(_ samples: [T]) -> Codec {
        Codec(name: String(describing: T.self), samples: samples,
              written: { value in
                  let v = value as! T
                  return (try v.fastJSON(), try MessageCoding.encodeWithFoundation(v))
              },
              readBack: { body in try MessageCoding.encodeWithFoundation(try T(json: try JSONTree.parse(body))) })
    }

    static let user = UUID(uuidString: "6F1C2A9E-0B7D-4E55-9A3B-1C2D3E4F5A6B")!
    static let resetAt = Date(timeIntervalSince1970: 1_763_856_000.5)
    static let parameters = SamplingParameters(temperature: 0.7, topP: 0.9, maxTokens: 100, stop: ["\n", "END"], seed: -3,
                                               presencePenalty: -0.5, frequencyPenalty: 1e-5)
    static let client = ClientInfo(ip: "::1", userAgent: "curl/8 \"x\"")
    static let usage = Usage(promptTokens: 3, completionTokens: 5)
    static let quota = QuotaStatus(used: 4, limit: 100, resetAt: resetAt)

    static let codecs: [Codec] = [
        codec([ChatMessage(role: "user", content: "Why \"blue\"?\n日本 🎈 \u{01}")]),
        codec([parameters, SamplingParameters()]),
        codec([client, ClientInfo(ip: "127.0.0.1")]),
        codec([usage]),
        codec([quota]),
        codec([AskRequest(userId: user, role: "ADMIN", model: "gpt-x", messages: [ChatMessage(role: "user", content: "hi")],
                          parameters: parameters, cache: .refresh, stream: true, conversationId: "conv_1-x", client: client),
               AskRequest(userId: user, role: "USER", model: nil, messages: [ChatMessage(role: "user", content: "hi")],
                          client: ClientInfo(ip: "127.0.0.1"))]),
        codec([AskResponse(id: "chatcmpl-1", answer: "Rayleigh.\n", model: "m", finishReason: "stop", cached: true, usage: usage,
                           quota: quota, conversationId: "c1"),
               AskResponse(id: "x", answer: "", model: "m", finishReason: "length", cached: false, usage: nil, quota: quota,
                           conversationId: nil, upstreamMs: 812.375)]),
        // The audit event's codec is its own (encoded() and fastDecode), not FastJSON's.
        Codec(name: "AuditEvent",
              samples: [AuditEvent(id: "e1", type: "login", userId: user, actorId: UUID(), at: resetAt, ip: "10.0.0.1",
                                   attributes: ["reason": "ok", "email": "a@b.c"]),
                        AuditEvent(type: "login_failed", userId: nil)],
              written: { value in
                  let event = value as! AuditEvent
                  return (event.encoded(), try MessageCoding.encodeWithFoundation(event))
              },
              readBack: { body in try MessageCoding.encodeWithFoundation(try AuditEvent.fastDecode(try JSONTree.parse(body))) }),
    ]

    /// The JSON value of `bytes`, UUIDs in lower case (Aira writes them so; JSONEncoder in upper).
    static func object(_ bytes: [UInt8]) throws -> NSObject {
        func canonical(_ value: Any) -> Any {
            switch value {
            case let s as String: return UUID(uuidString: s).map { $0.uuidString.lowercased() } ?? s
            case let a as [Any]: return a.map(canonical)
            case let d as [String: Any]: return d.mapValues(canonical)
            default: return value
            }
        }
        return canonical(try JSONSerialization.jsonObject(with: Data(bytes), options: [.fragmentsAllowed])) as! NSObject
    }

    @Test("the codecs tested are exactly the ones declared in Shared/")
    func everyDeclaredCodec() throws {
        let shared = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("Shared")
        let pattern = try NSRegularExpression(pattern: #"(?:extension|struct)\s+(\w+)\s*:[^{]*\bFastJSON(?:En|De)codable"#)
        var declared: Set<String> = ["AuditEvent"]
        let files = FileManager.default.enumerator(at: shared, includingPropertiesForKeys: nil)!
        for case let file as URL in files where file.pathExtension == "swift" {
            let text = try String(contentsOf: file, encoding: .utf8)
            for match in pattern.matches(in: text, range: NSRange(text.startIndex..., in: text)) {
                declared.insert(String(text[Range(match.range(at: 1), in: text)!]))
            }
        }
        #expect(declared.count > 5, "the scan found the declarations: \(declared)")
        #expect(Set(Self.codecs.map(\.name)) == declared, "a codec declared in Shared/ has no samples here, or the other way round")
    }

    @Test("each codec's samples set every field of its declaration at least once")
    func samplesSetEveryField() {
        for codec in Self.codecs {
            var all = Set<String>(), set = Set<String>()
            for sample in codec.samples { Self.walk(sample, path: codec.name, all: &all, set: &set) }
            #expect(all.count > 1, "\(codec.name) has fields")
            #expect(all.subtracting(set).isEmpty, "\(codec.name): fields no sample sets: \(all.subtracting(set).sorted())")
        }
    }

    @Test("for every sample: the hand-written writer says what JSONEncoder says, and the hand-written reader reads it back whole")
    func bothWays() throws {
        for codec in Self.codecs {
            for sample in codec.samples {
                let (fast, foundation) = try codec.written(sample)
                #expect(try Self.object(fast) == Self.object(foundation),
                        "\(codec.name) writer: \(String(decoding: fast, as: UTF8.self)) JSONEncoder: \(String(decoding: foundation, as: UTF8.self))")
                let back = try codec.readBack(foundation)
                #expect(try Self.object(back) == Self.object(foundation), "\(codec.name) reader: \(String(decoding: back, as: UTF8.self))")
            }
        }
    }

    /// Records every field path under `value` (`all`) and those holding something (`set`): an
    /// optional that is not nil, a collection that is not empty, any other value.
    static func walk(_ value: Any, path: String, all: inout Set<String>, set: inout Set<String>) {
        all.insert(path)
        if value is String || value is Date || value is UUID || value is Bool || value is Int || value is Double {
            set.insert(path)
            return
        }
        let mirror = Mirror(reflecting: value)
        switch mirror.displayStyle {
        case .optional:
            guard let wrapped = mirror.children.first?.value else { return }
            set.insert(path)
            self.walk(wrapped, path: path, all: &all, set: &set)
        case .collection, .set:
            guard !mirror.children.isEmpty else { return }
            set.insert(path)
            for child in mirror.children { self.walk(child.value, path: path + "[]", all: &all, set: &set) }
        case .dictionary:
            if !mirror.children.isEmpty { set.insert(path) }
        case .struct, .class:
            set.insert(path)
            for child in mirror.children {
                self.walk(child.value, path: path + "." + (child.label ?? "?"), all: &all, set: &set)
            }
        default:
            set.insert(path) // enums and other leaves
        }
    }
}
