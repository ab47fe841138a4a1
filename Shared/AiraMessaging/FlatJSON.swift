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
            index -= 1
            do { return try JSONTree.readString(bytes, at: &index) } catch { throw Unsupported() }
        }
    }
}
