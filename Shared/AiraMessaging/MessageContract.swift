import AiraCore
import Foundation

/// A message body Aira sends over the broker: JSON, with a versioned type name such as
/// `audit.event.v1`. A breaking change gets a new type name, never an edit of the old one.
public protocol MessageContract: Codable, Sendable {
    static var messageType: String { get }
    /// Every message type a consumer of this contract takes: its own, and older or smaller
    /// shapes it can be built from (an audit batch also takes a single audit event). The default
    /// is just ``messageType``.
    static var acceptedMessageTypes: [String] { get }
    /// Decodes a body. The default is ``MessageCoding/decode(_:from:)``; a contract on a hot
    /// path may read its JSON faster (see ``JSONTree``) as long as it falls back to the default
    /// for anything it does not handle, so results and errors stay the same.
    static func decode(from body: [UInt8]) throws -> Self
    /// Decodes a body of one of ``acceptedMessageTypes``. The default handles ``messageType``.
    static func decode(type: String, from body: [UInt8]) throws -> Self
    /// The body. The default is ``MessageCoding/encode(_:)``; a contract published at high rates
    /// may write its JSON directly, as long as ``decode(from:)`` reads it back the same.
    func encoded() throws -> [UInt8]
}

extension MessageContract {
    public static var acceptedMessageTypes: [String] { [Self.messageType] }
    public static func decode(from body: [UInt8]) throws -> Self { try MessageCoding.decode(Self.self, from: body) }
    public static func decode(type: String, from body: [UInt8]) throws -> Self { try Self.decode(from: body) }
    public func encoded() throws -> [UInt8] { try MessageCoding.encode(self) }
}

/// JSON as every Aira message uses it: ISO 8601 dates with fractional seconds.
public enum MessageCoding {
    private static let encoder: JSONEncoder = {
        let encoder = JSONEncoder()
        encoder.outputFormatting = .withoutEscapingSlashes
        encoder.dateEncodingStrategy = .custom { date, encoder in
            var c = encoder.singleValueContainer()
            try c.encode(iso8601(date))
        }
        return encoder
    }()

    private static let decoder: JSONDecoder = {
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .custom { decoder in
            let c = try decoder.singleValueContainer()
            let text = try c.decode(String.self)
            guard let date = parseISO8601(text) else {
                throw DecodingError.dataCorruptedError(in: c, debugDescription: "not an ISO 8601 date: \(text)")
            }
            return date
        }
        return decoder
    }()

    /// A ``FastJSONEncodable`` value writes itself; anything else goes through JSONEncoder.
    public static func encode<T: Encodable>(_ value: T) throws -> [UInt8] {
        if let fast = value as? any FastJSONEncodable { return try fast.fastJSON() }
        return Array(try Self.encoder.encode(value))
    }

    /// A ``FastJSONDecodable`` type reads itself from a ``JSONTree`` when it can; anything it
    /// does not handle (and every error) goes through JSONDecoder.
    public static func decode<T: Decodable>(_ type: T.Type, from bytes: [UInt8]) throws -> T {
        if let fast = type as? any FastJSONDecodable.Type, let tree = try? JSONTree.parse(bytes),
           let value = (try? fast.init(json: tree)) as? T {
            return value
        }
        return try Self.decoder.decode(T.self, from: Data(bytes))
    }

    /// Always JSONEncoder (for tests comparing the fast writers with it).
    public static func encodeWithFoundation<T: Encodable>(_ value: T) throws -> [UInt8] { Array(try Self.encoder.encode(value)) }

    /// Always JSONDecoder (for tests comparing the fast readers with it).
    public static func decodeWithFoundation<T: Decodable>(_ type: T.Type, from bytes: [UInt8]) throws -> T {
        try Self.decoder.decode(T.self, from: Data(bytes))
    }

    /// A readable one-line reason for a decoding failure (goes into `x-aira-error`).
    public static func describe(_ error: any Error) -> String {
        guard let e = error as? DecodingError else { return String(describing: error) }
        func path(_ ctx: DecodingError.Context) -> String {
            let p = ctx.codingPath.map { $0.intValue.map { "[\($0)]" } ?? $0.stringValue }.joined(separator: ".")
            return p.isEmpty ? "body" : p
        }
        switch e {
        case .keyNotFound(let key, let ctx): return "missing field '\(key.stringValue)' at \(path(ctx))"
        case .typeMismatch(let type, let ctx): return "wrong type at \(path(ctx)): expected \(type)"
        case .valueNotFound(let type, let ctx): return "null at \(path(ctx)): expected \(type)"
        case .dataCorrupted(let ctx):
            let underlying = (ctx.underlyingError as NSError?)?.localizedDescription
            return "invalid JSON at \(path(ctx)): \(ctx.debugDescription)\(underlying.map { " (\($0))" } ?? "")"
        @unknown default: return String(describing: e)
        }
    }
}
