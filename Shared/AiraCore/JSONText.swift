/// Aira's one JSON writer: JSON text written by hand where an encoder would cost too much (per
/// event, per user, per cached answer). The reader is ``JSONTree``.
public enum JSONText {
    /// `s` as a JSON string: quotes, backslashes and control characters escaped.
    public static func appendQuoted(_ s: String, to out: inout [UInt8]) {
        // The string's own UTF-8 bytes (native and small strings have them in one piece):
        // scanning and copying a buffer, not the generic UTF8View one index at a time.
        if s.utf8.withContiguousStorageIfAvailable({ Self.appendQuoted(utf8: $0, to: &out) }) == nil {
            let bytes = Array(s.utf8)
            bytes.withUnsafeBufferPointer { Self.appendQuoted(utf8: $0, to: &out) }
        }
    }

    /// UTF-8 text as a JSON string: quotes, backslashes and control characters escaped.
    public static func appendQuoted(utf8 bytes: UnsafeBufferPointer<UInt8>, to out: inout [UInt8]) {
        out.append(UInt8(ascii: "\""))
        // Most strings (ids, types, addresses, answers) need no escaping: copied in one go.
        var clean = true
        for byte in bytes where byte < 0x20 || byte == UInt8(ascii: "\"") || byte == UInt8(ascii: "\\") {
            clean = false
            break
        }
        if clean {
            out.append(contentsOf: bytes)
            out.append(UInt8(ascii: "\""))
            return
        }
        for byte in bytes {
            switch byte {
            case UInt8(ascii: "\""): out += [UInt8(ascii: "\\"), UInt8(ascii: "\"")]
            case UInt8(ascii: "\\"): out += [UInt8(ascii: "\\"), UInt8(ascii: "\\")]
            case UInt8(ascii: "\n"): out += [UInt8(ascii: "\\"), UInt8(ascii: "n")]
            case UInt8(ascii: "\r"): out += [UInt8(ascii: "\\"), UInt8(ascii: "r")]
            case UInt8(ascii: "\t"): out += [UInt8(ascii: "\\"), UInt8(ascii: "t")]
            case 0..<0x20: out += [UInt8(ascii: "\\"), UInt8(ascii: "u"), 48, 48, Hex.digit(byte >> 4), Hex.digit(byte & 15)]
            default: out.append(byte)
            }
        }
        out.append(UInt8(ascii: "\""))
    }

    public static func quoted(_ s: String) -> String {
        var out: [UInt8] = []
        out.reserveCapacity(s.utf8.count + 2)
        Self.appendQuoted(s, to: &out)
        return String(decoding: out, as: UTF8.self)
    }
}

extension JSONText {
    /// `,"key":` (or without the comma for the first member).
    @inlinable
    public static func appendKey(_ key: StaticString, first: Bool = false, to out: inout [UInt8]) {
        if !first { out.append(UInt8(ascii: ",")) }
        out.append(UInt8(ascii: "\""))
        out.append(contentsOf: UnsafeBufferPointer(start: key.utf8Start, count: key.utf8CodeUnitCount))
        out.append(contentsOf: [UInt8(ascii: "\""), UInt8(ascii: ":")])
    }

    /// A number as JSON: integers as they are, doubles in their shortest round-tripping form.
    public static func append(_ value: Int, to out: inout [UInt8]) { out.append(contentsOf: String(value).utf8) }
    public static func append(_ value: Double, to out: inout [UInt8]) throws {
        guard value.isFinite else {
            throw EncodingError.invalidValue(value, .init(codingPath: [], debugDescription: "\(value) is not a valid JSON number"))
        }
        out.append(contentsOf: value.description.utf8)
    }
    public static func append(_ value: Bool, to out: inout [UInt8]) { out.append(contentsOf: (value ? "true" : "false").utf8) }
}

extension JSONText {
    /// `{"k":"v",…}`, keys sorted (so equal objects encode equally); what JSONEncoder writes for
    /// a `[String: String]` with `.sortedKeys`.
    public static func object(_ object: [String: String]) -> String {
        var out: [UInt8] = []
        Self.appendObject(object, to: &out)
        return String(decoding: out, as: UTF8.self)
    }

    /// Appends `object` as ``object(_:)`` writes it; `sorted: false` skips ordering the keys
    /// (for readers that do not care, such as PostgreSQL's jsonb).
    public static func appendObject(_ object: [String: String], sorted: Bool = true, to out: inout [UInt8]) {
        out.append(UInt8(ascii: "{"))
        var first = true
        func member(_ key: String, _ value: String) {
            if !first { out.append(UInt8(ascii: ",")) }
            first = false
            Self.appendQuoted(key, to: &out)
            out.append(UInt8(ascii: ":"))
            Self.appendQuoted(value, to: &out)
        }
        if sorted {
            for key in object.keys.sorted() { member(key, object[key]!) }
        } else {
            for (key, value) in object { member(key, value) }
        }
        out.append(UInt8(ascii: "}"))
    }
}

/// A type that writes its own JSON (faster than JSONEncoder on hot paths); JSONDecoder must
/// read the result back to the same value.
public protocol FastJSONEncodable: Encodable {
    /// Throws for what JSON cannot say (a non-finite number), as JSONEncoder does.
    func appendJSON(to out: inout [UInt8]) throws
}

extension FastJSONEncodable {
    public func fastJSON() throws -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(256)
        try self.appendJSON(to: &out)
        return out
    }
}
