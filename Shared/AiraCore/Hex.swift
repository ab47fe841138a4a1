/// Lower-case hexadecimal, the one way Aira writes it: digests in Redis keys, trace and span
/// ids, UUID text, JSON `\u00XX` escapes. (`String(format:)` per byte is slow on Linux: it
/// builds a locale, reading the process environment, each time.)
public enum Hex {
    /// The lower-case digit of a nibble (0–15).
    @inlinable @inline(__always)
    public static func digit(_ nibble: UInt8) -> UInt8 { nibble < 10 ? 48 &+ nibble : 87 &+ nibble }

    /// The value of a hexadecimal digit in either case, nil for anything else.
    @inlinable
    public static func value(_ c: UInt8) -> UInt8? {
        switch c {
        case 48...57: c &- 48
        case 65...70: c &- 55
        case 97...102: c &- 87
        default: nil
        }
    }

    /// Appends `value` as 16 lower-case digits (a W3C trace-context span id, half a trace id).
    @inlinable
    public static func append(_ value: UInt64, to out: inout [UInt8]) {
        var shift: UInt64 = 60
        for _ in 0..<16 {
            out.append(Self.digit(UInt8(truncatingIfNeeded: (value >> shift) & 0xF)))
            shift &-= 4
        }
    }
}

extension Sequence where Element == UInt8 {
    /// Lower-case hexadecimal, e.g. of a SHA-256 digest for a Redis key. Inlinable, so each
    /// caller gets it specialised for its sequence (a digest through the generic `Sequence`
    /// witnesses was half the cost of a cache key).
    @inlinable package var hexString: String {
        var out: [UInt8] = []
        out.reserveCapacity(Swift.max(64, self.underestimatedCount * 2))
        for byte in self {
            out.append(Hex.digit(byte >> 4))
            out.append(Hex.digit(byte & 0x0F))
        }
        return String(decoding: out, as: UTF8.self)
    }
}
