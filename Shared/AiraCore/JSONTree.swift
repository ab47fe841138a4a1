/// Aira's one JSON reader, for hand-written decoders on hot paths (a question and its answer
/// cross the gateway, the broker and the proxy thousands of times a second; Foundation's
/// JSONDecoder was a quarter of their CPU; the audit writer decodes every event). A parsed
/// value, or (``arrayElementRanges(_:)``) where each element of an array lies, undecoded.
/// Strict: anything not plain JSON throws, and so does a duplicate key — callers then use
/// JSONDecoder, so results and error messages never differ. The writer is ``JSONText``.
public enum JSONTree: Sendable, Equatable {
    case null
    case bool(Bool)
    /// The number's text, converted when asked for (`int`, `double`).
    case number(String)
    case string(String)
    case array([JSONTree])
    /// Members in order.
    case object([(String, JSONTree)])

    public struct Unsupported: Error, CustomStringConvertible {
        public let description: String
        public init(_ description: String) { self.description = description }
    }

    /// Bytes that are not the JSON asked for (``arrayElementRanges(_:)``).
    public struct Malformed: Error, CustomStringConvertible {
        public let description: String
        public init(description: String) { self.description = description }
    }

    public static func == (a: JSONTree, b: JSONTree) -> Bool {
        switch (a, b) {
        case (.null, .null): true
        case (.bool(let x), .bool(let y)): x == y
        case (.number(let x), .number(let y)): x == y
        case (.string(let x), .string(let y)): x == y
        case (.array(let x), .array(let y)): x == y
        case (.object(let x), .object(let y)): x.count == y.count && zip(x, y).allSatisfy { $0.0 == $1.0 && $0.1 == $1.1 }
        default: false
        }
    }

    public static func parse(_ bytes: [UInt8]) throws -> JSONTree {
        try bytes.withUnsafeBufferPointer { buffer in
            var parser = Parser(bytes: buffer)
            let value = try parser.value(depth: 0)
            parser.skipSpace()
            guard parser.index == buffer.count else { throw Unsupported("bytes after the value") }
            return value
        }
    }

    /// The byte ranges of a top-level array's elements, in order, without decoding them, so that
    /// each can be handed on or decoded by its own contract (the requests and replies of an RPC
    /// batch). The JSON grammar is checked throughout; what the elements hold is not (no
    /// duplicate-key check, escapes not decoded): whoever decodes an element does that.
    public static func arrayElementRanges(_ bytes: [UInt8]) throws -> [Range<Int>] {
        do {
            return try bytes.withUnsafeBufferPointer { buffer in
                var parser = Parser(bytes: buffer)
                parser.skipSpace()
                guard parser.peek == UInt8(ascii: "[") else { throw Unsupported("expected a JSON array") }
                parser.index += 1
                parser.skipSpace()
                var ranges: [Range<Int>] = []
                if parser.peek == UInt8(ascii: "]") {
                    parser.index += 1
                } else {
                    elements: while true {
                        parser.skipSpace()
                        let start = parser.index
                        try parser.skipValue(depth: 1)
                        ranges.append(start..<parser.index)
                        parser.skipSpace()
                        switch parser.peek {
                        case UInt8(ascii: ","): parser.index += 1
                        case UInt8(ascii: "]"): parser.index += 1; break elements
                        default: throw Unsupported("expected ',' or ']' at byte \(parser.index)")
                        }
                    }
                }
                parser.skipSpace()
                guard parser.index == buffer.count else { throw Unsupported("bytes after the array at byte \(parser.index)") }
                return ranges
            }
        } catch let error as Unsupported {
            throw Malformed(description: error.description)
        }
    }

    // MARK: Reading members

    /// The object's members; throws unless this is an object.
    public func members() throws -> [(String, JSONTree)] {
        guard case .object(let m) = self else { throw Unsupported("expected an object") }
        return m
    }

    public var string: String? { if case .string(let s) = self { s } else { nil } }
    public var isNull: Bool { if case .null = self { true } else { false } }
}

extension [(String, JSONTree)] {
    /// The member named `key` (objects here have a handful of members: a scan beats hashing).
    public subscript(_ key: String) -> JSONTree? {
        for (k, v) in self where k == key { return v }
        return nil
    }

    /// A required string member.
    public func string(_ key: String) throws -> String {
        guard case .string(let s)? = self[key] else { throw JSONTree.Unsupported("'\(key)' is not a string") }
        return s
    }

    /// An optional member read by `read` (absent or null → nil; anything `read` refuses → throws).
    private func optional<T>(_ key: String, _ what: String, _ read: (JSONTree) -> T?) throws -> T? {
        guard let value = self[key], !value.isNull else { return nil }
        guard let result = read(value) else { throw JSONTree.Unsupported("'\(key)' is not \(what)") }
        return result
    }

    public func optionalString(_ key: String) throws -> String? { try self.optional(key, "a string") { $0.string } }

    public func bool(_ key: String) throws -> Bool {
        guard let b = try self.optionalBool(key) else { throw JSONTree.Unsupported("'\(key)' is missing") }
        return b
    }

    public func optionalBool(_ key: String) throws -> Bool? {
        try self.optional(key, "a boolean") { if case .bool(let b) = $0 { b } else { nil } }
    }

    /// An integer member written as one (no fraction, no exponent).
    public func optionalInt(_ key: String) throws -> Int? {
        try self.optional(key, "an integer") { if case .number(let text) = $0 { Int(text) } else { nil } }
    }

    public func int(_ key: String) throws -> Int {
        guard let i = try self.optionalInt(key) else { throw JSONTree.Unsupported("'\(key)' is missing") }
        return i
    }

    public func optionalDouble(_ key: String) throws -> Double? {
        try self.optional(key, "a finite number") { if case .number(let text) = $0, let d = Double(text), d.isFinite { d } else { nil } }
    }

    /// An optional object member's members.
    public func optionalObject(_ key: String) throws -> [(String, JSONTree)]? {
        try self.optional(key, "an object") { if case .object(let m) = $0 { m } else { nil } }
    }

    public func object(_ key: String) throws -> [(String, JSONTree)] {
        guard let m = try self.optionalObject(key) else { throw JSONTree.Unsupported("'\(key)' is missing") }
        return m
    }

    public func optionalArray(_ key: String) throws -> [JSONTree]? {
        try self.optional(key, "an array") { if case .array(let a) = $0 { a } else { nil } }
    }
}

private struct Parser {
    let bytes: UnsafeBufferPointer<UInt8>
    var index = 0

    init(bytes: UnsafeBufferPointer<UInt8>) { self.bytes = bytes }

    mutating func skipSpace() {
        while self.index < self.bytes.count {
            switch self.bytes[self.index] {
            case 0x20, 0x0A, 0x0D, 0x09: self.index += 1
            default: return
            }
        }
    }

    mutating func value(depth: Int) throws -> JSONTree {
        guard depth < 64 else { throw JSONTree.Unsupported("nested too deeply") }
        self.skipSpace()
        guard self.index < self.bytes.count else { throw JSONTree.Unsupported("unexpected end") }
        switch self.bytes[self.index] {
        case UInt8(ascii: "{"):
            self.index += 1
            var members: [(String, JSONTree)] = []
            self.skipSpace()
            if self.peek == UInt8(ascii: "}") { self.index += 1; return .object(members) }
            while true {
                self.skipSpace()
                guard self.peek == UInt8(ascii: "\"") else { throw JSONTree.Unsupported("expected a key") }
                let key = try self.string()
                if members.contains(where: { $0.0 == key }) { throw JSONTree.Unsupported("duplicate key '\(key)'") }
                self.skipSpace()
                guard self.peek == UInt8(ascii: ":") else { throw JSONTree.Unsupported("expected ':'") }
                self.index += 1
                members.append((key, try self.value(depth: depth + 1)))
                self.skipSpace()
                switch self.peek {
                case UInt8(ascii: ","): self.index += 1
                case UInt8(ascii: "}"): self.index += 1; return .object(members)
                default: throw JSONTree.Unsupported("expected ',' or '}'")
                }
            }
        case UInt8(ascii: "["):
            self.index += 1
            var items: [JSONTree] = []
            self.skipSpace()
            if self.peek == UInt8(ascii: "]") { self.index += 1; return .array(items) }
            while true {
                items.append(try self.value(depth: depth + 1))
                self.skipSpace()
                switch self.peek {
                case UInt8(ascii: ","): self.index += 1
                case UInt8(ascii: "]"): self.index += 1; return .array(items)
                default: throw JSONTree.Unsupported("expected ',' or ']'")
                }
            }
        case UInt8(ascii: "\""):
            return .string(try self.string())
        case UInt8(ascii: "t"): try self.literal("true"); return .bool(true)
        case UInt8(ascii: "f"): try self.literal("false"); return .bool(false)
        case UInt8(ascii: "n"): try self.literal("null"); return .null
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"):
            return .number(try self.number())
        default:
            throw JSONTree.Unsupported("unexpected character")
        }
    }

    /// Moves past one value, checked as ``value(depth:)`` checks it, but building nothing (and
    /// not looking for duplicate keys or decoding escapes).
    mutating func skipValue(depth: Int) throws {
        guard depth < 64 else { throw JSONTree.Unsupported("nested too deeply") }
        self.skipSpace()
        guard self.index < self.bytes.count else { throw JSONTree.Unsupported("unexpected end") }
        switch self.bytes[self.index] {
        case UInt8(ascii: "{"):
            self.index += 1
            self.skipSpace()
            if self.peek == UInt8(ascii: "}") { self.index += 1; return }
            while true {
                self.skipSpace()
                guard self.peek == UInt8(ascii: "\"") else { throw JSONTree.Unsupported("expected a key") }
                _ = try self.scanString()
                self.skipSpace()
                guard self.peek == UInt8(ascii: ":") else { throw JSONTree.Unsupported("expected ':'") }
                self.index += 1
                try self.skipValue(depth: depth + 1)
                self.skipSpace()
                switch self.peek {
                case UInt8(ascii: ","): self.index += 1
                case UInt8(ascii: "}"): self.index += 1; return
                default: throw JSONTree.Unsupported("expected ',' or '}'")
                }
            }
        case UInt8(ascii: "["):
            self.index += 1
            self.skipSpace()
            if self.peek == UInt8(ascii: "]") { self.index += 1; return }
            while true {
                try self.skipValue(depth: depth + 1)
                self.skipSpace()
                switch self.peek {
                case UInt8(ascii: ","): self.index += 1
                case UInt8(ascii: "]"): self.index += 1; return
                default: throw JSONTree.Unsupported("expected ',' or ']'")
                }
            }
        case UInt8(ascii: "\""): _ = try self.scanString()
        case UInt8(ascii: "t"): try self.literal("true")
        case UInt8(ascii: "f"): try self.literal("false")
        case UInt8(ascii: "n"): try self.literal("null")
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): _ = try self.scanNumber()
        default: throw JSONTree.Unsupported("unexpected character")
        }
    }

    var peek: UInt8? { self.index < self.bytes.count ? self.bytes[self.index] : nil }

    mutating func literal(_ word: StaticString) throws {
        let n = word.utf8CodeUnitCount
        guard self.index + n <= self.bytes.count else { throw JSONTree.Unsupported("bad literal") }
        for i in 0..<n where self.bytes[self.index + i] != word.utf8Start[i] { throw JSONTree.Unsupported("bad literal") }
        self.index += n
    }

    mutating func number() throws -> String {
        let range = try self.scanNumber()
        return String(decoding: UnsafeBufferPointer(rebasing: self.bytes[range]), as: UTF8.self)
    }

    /// Moves past a number of the JSON grammar exactly: -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
    mutating func scanNumber() throws -> Range<Int> {
        let start = self.index
        func digits() -> Int {
            let s = self.index
            while let c = self.peek, c >= UInt8(ascii: "0"), c <= UInt8(ascii: "9") { self.index += 1 }
            return self.index - s
        }
        if self.peek == UInt8(ascii: "-") { self.index += 1 }
        if self.peek == UInt8(ascii: "0") {
            self.index += 1
        } else {
            guard digits() > 0 else { throw JSONTree.Unsupported("bad number") }
        }
        if self.peek == UInt8(ascii: ".") {
            self.index += 1
            guard digits() > 0 else { throw JSONTree.Unsupported("bad number") }
        }
        if self.peek == UInt8(ascii: "e") || self.peek == UInt8(ascii: "E") {
            self.index += 1
            if self.peek == UInt8(ascii: "+") || self.peek == UInt8(ascii: "-") { self.index += 1 }
            guard digits() > 0 else { throw JSONTree.Unsupported("bad number") }
        }
        return start..<self.index
    }

    /// A string; escapes decoded (`\uXXXX` with surrogate pairs). Raw control characters and
    /// invalid UTF-8 are refused, as JSONDecoder refuses them.
    mutating func string() throws -> String {
        let (raw, escaped, ascii) = try self.scanString()
        if escaped { return try Self.unescape(raw) }
        // ASCII (nearly every id, type and address) is valid as it is.
        if ascii { return String(decoding: raw, as: UTF8.self) }
        guard let text = String(validating: raw, as: UTF8.self) else { throw JSONTree.Unsupported("invalid UTF-8") }
        return text
    }

    /// Moves past a string (its opening quote at `index`): its bytes between the quotes, whether
    /// it has escapes, and whether it is all ASCII. Raw control characters are refused.
    mutating func scanString() throws -> (raw: UnsafeBufferPointer<UInt8>, escaped: Bool, ascii: Bool) {
        self.index += 1
        let start = self.index
        var escaped = false, ascii = true
        while self.index < self.bytes.count {
            let c = self.bytes[self.index]
            if c == UInt8(ascii: "\"") {
                break
            } else if c == UInt8(ascii: "\\") {
                escaped = true
                self.index += 2
            } else if c < 0x20 {
                throw JSONTree.Unsupported("control character in a string")
            } else {
                if c >= 0x80 { ascii = false }
                self.index += 1
            }
        }
        guard self.index < self.bytes.count else { throw JSONTree.Unsupported("unterminated string") }
        let raw = UnsafeBufferPointer(rebasing: self.bytes[start..<self.index])
        self.index += 1
        return (raw, escaped, ascii)
    }

    static func unescape(_ raw: UnsafeBufferPointer<UInt8>) throws -> String {
        var out: [UInt8] = []
        out.reserveCapacity(raw.count)
        var i = 0
        func hex4(_ at: Int) throws -> UInt32 {
            guard at + 4 <= raw.count else { throw JSONTree.Unsupported("bad \\u escape") }
            var v: UInt32 = 0
            for k in 0..<4 {
                guard let d = Hex.value(raw[at + k]) else { throw JSONTree.Unsupported("bad \\u escape") }
                v = v << 4 | UInt32(d)
            }
            return v
        }
        while i < raw.count {
            let c = raw[i]
            guard c == UInt8(ascii: "\\") else { out.append(c); i += 1; continue }
            guard i + 1 < raw.count else { throw JSONTree.Unsupported("bad escape") }
            let e = raw[i + 1]
            i += 2
            switch e {
            case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"): out.append(e)
            case UInt8(ascii: "b"): out.append(0x08)
            case UInt8(ascii: "f"): out.append(0x0C)
            case UInt8(ascii: "n"): out.append(0x0A)
            case UInt8(ascii: "r"): out.append(0x0D)
            case UInt8(ascii: "t"): out.append(0x09)
            case UInt8(ascii: "u"):
                var scalar = try hex4(i)
                i += 4
                if (0xD800..<0xDC00).contains(scalar) {
                    guard i + 6 <= raw.count, raw[i] == UInt8(ascii: "\\"), raw[i + 1] == UInt8(ascii: "u") else {
                        throw JSONTree.Unsupported("lone surrogate")
                    }
                    let low = try hex4(i + 2)
                    guard (0xDC00..<0xE000).contains(low) else { throw JSONTree.Unsupported("lone surrogate") }
                    i += 6
                    scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
                }
                guard let u = Unicode.Scalar(scalar) else { throw JSONTree.Unsupported("lone surrogate") }
                out.append(contentsOf: String(Character(u)).utf8)
            default:
                throw JSONTree.Unsupported("bad escape")
            }
        }
        guard let text = String(validating: out, as: UTF8.self) else { throw JSONTree.Unsupported("invalid UTF-8") }
        return text
    }
}

/// A type that reads its own JSON from a ``JSONTree``; it throws for anything it does not
/// handle, and callers then use JSONDecoder, so results and errors stay the same.
public protocol FastJSONDecodable: Decodable {
    init(json: JSONTree) throws
}
