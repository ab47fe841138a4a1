/// Finds the elements of a top-level JSON array without decoding them, so that each can be
/// handed on (or decoded by its own contract) as raw bytes. It checks structure — brackets,
/// strings, separators — not the elements' contents: whoever decodes an element does that.
public enum JSONSlices {
    public struct Malformed: Error, CustomStringConvertible {
        public let description: String
    }

    /// The byte ranges of the top-level array's elements, in order.
    public static func arrayElements(_ bytes: [UInt8]) throws -> [Range<Int>] {
        try bytes.withUnsafeBufferPointer { b in
            var i = 0
            func skipSpace() { while i < b.count, b[i] == 0x20 || b[i] == 0x0A || b[i] == 0x0D || b[i] == 0x09 { i += 1 } }
            skipSpace()
            guard i < b.count, b[i] == UInt8(ascii: "[") else { throw Malformed(description: "expected a JSON array") }
            i += 1
            skipSpace()
            var ranges: [Range<Int>] = []
            if i < b.count, b[i] == UInt8(ascii: "]") {
                i += 1
            } else {
                while true {
                    let start = i
                    try Self.skipValue(b, &i)
                    ranges.append(start..<i)
                    skipSpace()
                    guard i < b.count else { throw Malformed(description: "unterminated array") }
                    if b[i] == UInt8(ascii: ",") {
                        i += 1
                        skipSpace()
                        continue
                    }
                    guard b[i] == UInt8(ascii: "]") else { throw Malformed(description: "expected ',' or ']' at byte \(i)") }
                    i += 1
                    break
                }
            }
            skipSpace()
            guard i == b.count else { throw Malformed(description: "unexpected bytes after the array at byte \(i)") }
            return ranges
        }
    }

    /// Moves `i` past one value: a string, an object or array (nesting followed, strings inside
    /// skipped), or a literal/number (up to the next separator).
    private static func skipValue(_ b: UnsafeBufferPointer<UInt8>, _ i: inout Int) throws {
        guard i < b.count else { throw Malformed(description: "expected a value at the end") }
        switch b[i] {
        case UInt8(ascii: "\""):
            try Self.skipString(b, &i)
        case UInt8(ascii: "{"), UInt8(ascii: "["):
            var stack: [UInt8] = [b[i] == UInt8(ascii: "{") ? UInt8(ascii: "}") : UInt8(ascii: "]")]
            i += 1
            while !stack.isEmpty {
                guard i < b.count else { throw Malformed(description: "unterminated object or array") }
                switch b[i] {
                case UInt8(ascii: "\""): try Self.skipString(b, &i); continue
                case UInt8(ascii: "{"): stack.append(UInt8(ascii: "}"))
                case UInt8(ascii: "["): stack.append(UInt8(ascii: "]"))
                case UInt8(ascii: "}"), UInt8(ascii: "]"):
                    guard stack.removeLast() == b[i] else { throw Malformed(description: "mismatched bracket at byte \(i)") }
                default: break
                }
                i += 1
            }
        case UInt8(ascii: ","), UInt8(ascii: "]"), UInt8(ascii: "}"), UInt8(ascii: ":"):
            throw Malformed(description: "expected a value at byte \(i)")
        default:
            while i < b.count {
                let c = b[i]
                if c == UInt8(ascii: ",") || c == UInt8(ascii: "]") || c == UInt8(ascii: "}") || c == 0x20 || c == 0x0A || c == 0x0D
                    || c == 0x09 { break }
                i += 1
            }
        }
    }

    private static func skipString(_ b: UnsafeBufferPointer<UInt8>, _ i: inout Int) throws {
        i += 1
        while i < b.count {
            switch b[i] {
            case UInt8(ascii: "\\"): i += 2
            case UInt8(ascii: "\""): i += 1; return
            default: i += 1
            }
        }
        throw Malformed(description: "unterminated string")
    }
}
