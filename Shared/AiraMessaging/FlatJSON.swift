import AiraCore

/// A reader and writer for flat JSON objects — string or null values, and objects of strings —
/// much cheaper than Foundation's JSONDecoder for contracts on hot paths (the audit writer
/// decodes every event). Anything outside that shape throws ``Unsupported``: callers then use
/// JSONDecoder, so results and error messages never differ from the general path.
public enum FlatJSON {
    public enum Value: Sendable, Equatable {
        case string(String)
        case null
        case object([String: String])
    }

    public struct Unsupported: Error { public init() {} }

    /// The top-level object's members.
    public static func parse(_ bytes: [UInt8]) throws -> [String: Value] {
        Dictionary(uniqueKeysWithValues: try Self.parseMembers(bytes).map { ($0.key, $0.value) })
    }

    /// The top-level object's members in order (no dictionary built; a duplicate key is refused).
    public static func parseMembers(_ bytes: [UInt8]) throws -> [(key: String, value: Value)] {
        try bytes.withUnsafeBufferPointer { buffer in
            var reader = Reader(bytes: buffer)
            let members = try reader.members(Self.value)
            reader.skipWhitespace()
            guard reader.index == buffer.count else { throw Unsupported() }
            return members
        }
    }

    /// A top-level array of flat objects (a batch of events), each as its members in order (no
    /// dictionary per object: a batch has hundreds; a duplicate key is still refused).
    public static func parseList(_ bytes: [UInt8]) throws -> [[(key: String, value: Value)]] {
        try bytes.withUnsafeBufferPointer { buffer in
            var reader = Reader(bytes: buffer)
            var list: [[(key: String, value: Value)]] = []
            try reader.expect(UInt8(ascii: "["))
            if reader.peek() == UInt8(ascii: "]") {
                reader.index += 1
            } else {
                while true {
                    list.append(try reader.members(Self.value))
                    switch reader.peek() {
                    case UInt8(ascii: ","): reader.index += 1; continue
                    case UInt8(ascii: "]"): reader.index += 1
                    default: throw Unsupported()
                    }
                    break
                }
            }
            reader.skipWhitespace()
            guard reader.index == buffer.count else { throw Unsupported() }
            return list
        }
    }

    private static func value(_ reader: inout Reader) throws -> Value {
        switch reader.peek() {
        case UInt8(ascii: "\""): return .string(try reader.string())
        case UInt8(ascii: "n"): try reader.literal("null"); return .null
        case UInt8(ascii: "{"): return .object(try reader.object { (r: inout Reader) throws -> String in try r.string() })
        default: throw Unsupported()
        }
    }

    /// `{"k":"v",…}` with JSON string escaping (keys sorted, so equal objects encode equally).
    public static func encode(_ object: [String: String]) -> String {
        var out: [UInt8] = []
        Self.append(object, to: &out)
        return String(decoding: out, as: UTF8.self)
    }

    /// Appends `object` as ``encode(_:)`` writes it; `sorted: false` skips ordering the keys
    /// (for readers that do not care, such as PostgreSQL's jsonb).
    public static func append(_ object: [String: String], sorted: Bool = true, to out: inout [UInt8]) {
        out.append(UInt8(ascii: "{"))
        var first = true
        func member(_ key: String, _ value: String) {
            if !first { out.append(UInt8(ascii: ",")) }
            first = false
            JSONText.appendQuoted(key, to: &out)
            out.append(UInt8(ascii: ":"))
            JSONText.appendQuoted(value, to: &out)
        }
        if sorted {
            for key in object.keys.sorted() { member(key, object[key]!) }
        } else {
            for (key, value) in object { member(key, value) }
        }
        out.append(UInt8(ascii: "}"))
    }

    private struct Reader {
        let bytes: UnsafeBufferPointer<UInt8>
        var index = 0

        init(bytes: UnsafeBufferPointer<UInt8>) { self.bytes = bytes }

        mutating func skipWhitespace() {
            while index < bytes.count, [0x20, 0x0A, 0x0D, 0x09].contains(bytes[index]) { index += 1 }
        }

        mutating func peek() -> UInt8? {
            skipWhitespace()
            return index < bytes.count ? bytes[index] : nil
        }

        mutating func expect(_ c: UInt8) throws {
            guard peek() == c else { throw Unsupported() }
            index += 1
        }

        mutating func literal(_ word: String) throws {
            for c in word.utf8 {
                guard index < bytes.count, bytes[index] == c else { throw Unsupported() }
                index += 1
            }
        }

        mutating func object<V>(_ value: (inout Reader) throws -> V) throws -> [String: V] {
            try expect(UInt8(ascii: "{"))
            var result: [String: V] = [:]
            if peek() == UInt8(ascii: "}") { index += 1; return result }
            while true {
                let key = try string()
                try expect(UInt8(ascii: ":"))
                guard result.updateValue(try value(&self), forKey: key) == nil else { throw Unsupported() } // duplicate key
                switch peek() {
                case UInt8(ascii: ","): index += 1
                case UInt8(ascii: "}"): index += 1; return result
                default: throw Unsupported()
                }
            }
        }

        /// An object's members in order; a duplicate key is refused as in ``object(_:)``.
        mutating func members<V>(_ value: (inout Reader) throws -> V) throws -> [(key: String, value: V)] {
            try expect(UInt8(ascii: "{"))
            var result: [(key: String, value: V)] = []
            result.reserveCapacity(8)
            if peek() == UInt8(ascii: "}") { index += 1; return result }
            while true {
                let key = try string()
                try expect(UInt8(ascii: ":"))
                guard !result.contains(where: { $0.key == key }) else { throw Unsupported() }
                result.append((key, try value(&self)))
                switch peek() {
                case UInt8(ascii: ","): index += 1
                case UInt8(ascii: "}"): index += 1; return result
                default: throw Unsupported()
                }
            }
        }

        mutating func string() throws -> String {
            try expect(UInt8(ascii: "\""))
            let start = index
            // Fast path: no escapes.
            while index < bytes.count, bytes[index] != UInt8(ascii: "\""), bytes[index] != UInt8(ascii: "\\"), bytes[index] >= 0x20 {
                index += 1
            }
            guard index < bytes.count else { throw Unsupported() }
            if bytes[index] == UInt8(ascii: "\"") {
                index += 1
                return try Self.validUTF8(UnsafeBufferPointer(rebasing: bytes[start..<index - 1]))
            }
            var out = Array(bytes[start..<index])
            while true {
                guard index < bytes.count else { throw Unsupported() }
                let c = bytes[index]
                index += 1
                switch c {
                case UInt8(ascii: "\""):
                    return try out.withUnsafeBufferPointer { try Self.validUTF8($0) }
                case UInt8(ascii: "\\"):
                    guard index < bytes.count else { throw Unsupported() }
                    let e = bytes[index]
                    index += 1
                    switch e {
                    case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"): out.append(e)
                    case UInt8(ascii: "b"): out.append(0x08)
                    case UInt8(ascii: "f"): out.append(0x0C)
                    case UInt8(ascii: "n"): out.append(0x0A)
                    case UInt8(ascii: "r"): out.append(0x0D)
                    case UInt8(ascii: "t"): out.append(0x09)
                    case UInt8(ascii: "u"):
                        var scalar = try hex4()
                        if (0xD800..<0xDC00).contains(scalar) {
                            try literal("\\u")
                            let low = try hex4()
                            guard (0xDC00..<0xE000).contains(low) else { throw Unsupported() }
                            scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
                        }
                        guard let u = Unicode.Scalar(scalar) else { throw Unsupported() }
                        out += Array(String(Character(u)).utf8)
                    default: throw Unsupported()
                    }
                case 0..<0x20: throw Unsupported()
                default: out.append(c)
                }
            }
        }

        mutating func hex4() throws -> UInt32 {
            guard index + 4 <= bytes.count else { throw Unsupported() }
            var v: UInt32 = 0
            for _ in 0..<4 {
                let c = bytes[index]
                index += 1
                switch c {
                case 48...57: v = v << 4 | UInt32(c - 48)
                case 65...70: v = v << 4 | UInt32(c - 55)
                case 97...102: v = v << 4 | UInt32(c - 87)
                default: throw Unsupported()
                }
            }
            return v
        }

        static func validUTF8(_ bytes: UnsafeBufferPointer<UInt8>) throws -> String {
            // ASCII (nearly every id, type and address) is valid as it is.
            if !bytes.contains(where: { $0 >= 0x80 }) { return String(decoding: bytes, as: UTF8.self) }
            guard let s = String(validating: bytes, as: UTF8.self) else { throw Unsupported() }
            return s
        }
    }
}
