import Foundation

@usableFromInline package let hexDigits: [UInt8] = Array("0123456789abcdef".utf8)

extension Sequence where Element == UInt8 {
    /// Lower-case hexadecimal, e.g. of a SHA-256 digest for a Redis key. (`String(format:)`
    /// per byte is slow on Linux: it builds a locale, reading the process environment, each time.)
    /// Inlinable, so each caller gets it specialised for its sequence (a digest through the
    /// generic `Sequence` witnesses was half the cost of a cache key).
    @inlinable package var hexString: String {
        var out: [UInt8] = []
        out.reserveCapacity(Swift.max(64, self.underestimatedCount * 2))
        for byte in self {
            out.append(hexDigits[Int(byte >> 4)])
            out.append(hexDigits[Int(byte & 0x0F)])
        }
        return String(decoding: out, as: UTF8.self)
    }
}

/// The proleptic Gregorian date of a day counted from 1970-01-01 (Howard Hinnant's
/// days-to-civil algorithm): cheap enough for every request, unlike a `Calendar`.
package func civilDate(daysSinceEpoch days: Int64) -> (year: Int64, month: Int64, day: Int64) {
    let z = days + 719_468
    let era = (z >= 0 ? z : z - 146_096) / 146_097
    let doe = z - era * 146_097
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
    let mp = (5 * doy + 2) / 153
    let day = doy - (153 * mp + 2) / 5 + 1
    let month = mp < 10 ? mp + 3 : mp - 9
    return (yoe + era * 400 + (month <= 2 ? 1 : 0), month, day)
}

/// `yyyymmdd` of a day counted from 1970-01-01 in UTC, for per-day keys.
package func utcDayStamp(daysSinceEpoch days: Int64) -> String {
    let (y, m, d) = civilDate(daysSinceEpoch: days)
    func two(_ v: Int64) -> String { v < 10 ? "0\(v)" : "\(v)" }
    return "\(y)\(two(m))\(two(d))"
}

/// ISO 8601 in UTC with milliseconds (`2026-11-21T18:05:41.123Z`), without Foundation's
/// FormatStyle machinery.
public func iso8601(_ date: Date) -> String {
    let totalMs = Int64((date.timeIntervalSince1970 * 1000).rounded(.down))
    let days = totalMs >= 0 ? totalMs / 86_400_000 : (totalMs - 86_399_999) / 86_400_000
    let msOfDay = totalMs - days * 86_400_000
    let (year, month, day) = civilDate(daysSinceEpoch: days)

    return String(unsafeUninitializedCapacity: 24) { buf in
        var i = 0
        func put(_ v: Int64, _ width: Int) {
            var x = v
            for k in stride(from: width - 1, through: 0, by: -1) {
                buf[i + k] = UInt8(truncatingIfNeeded: 48 + x % 10)
                x /= 10
            }
            i += width
        }
        func sep(_ c: UInt8) { buf[i] = c; i += 1 }
        put(year, 4); sep(45); put(month, 2); sep(45); put(day, 2); sep(84)
        put(msOfDay / 3_600_000, 2); sep(58); put(msOfDay / 60_000 % 60, 2); sep(58)
        put(msOfDay / 1000 % 60, 2); sep(46); put(msOfDay % 1000, 3); sep(90)
        return i
    }
}

/// Parses `YYYY-MM-DDTHH:MM:SS[.fraction](Z|±HH:MM)`; other ISO 8601 forms go to Foundation.
public func parseISO8601(_ text: String) -> Date? {
    if let fast = fastParseISO8601(Array(text.utf8)) { return fast }
    if let d = try? Date(text, strategy: .iso8601.year().month().day().time(includingFractionalSeconds: true)) { return d }
    return try? Date(text, strategy: .iso8601)
}

private func fastParseISO8601(_ s: [UInt8]) -> Date? {
    guard s.count >= 20, s[4] == 45, s[7] == 45, s[10] == 84 || s[10] == 32, s[13] == 58, s[16] == 58 else { return nil }
    func num(_ from: Int, _ len: Int) -> Int64? {
        var v: Int64 = 0
        for i in from..<(from + len) {
            let c = s[i]
            guard c >= 48 && c <= 57 else { return nil }
            v = v * 10 + Int64(c - 48)
        }
        return v
    }
    guard let y = num(0, 4), let mo = num(5, 2), let d = num(8, 2), let h = num(11, 2), let mi = num(14, 2), let sec = num(17, 2),
          (1...12).contains(mo), (1...31).contains(d), h < 24, mi < 60, sec < 61 else { return nil }
    var i = 19
    var fraction = 0.0
    if i < s.count, s[i] == 46 {
        i += 1
        var scale = 0.1
        let start = i
        while i < s.count, s[i] >= 48, s[i] <= 57 { fraction += Double(s[i] - 48) * scale; scale /= 10; i += 1 }
        guard i > start else { return nil }
    }
    guard i < s.count else { return nil }
    var offset: Int64 = 0
    if s[i] == 90 {
        i += 1
    } else if s[i] == 43 || s[i] == 45 {
        guard s.count >= i + 6, s[i + 3] == 58, let oh = num(i + 1, 2), let om = num(i + 4, 2) else { return nil }
        offset = (oh * 3600 + om * 60) * (s[i] == 43 ? 1 : -1)
        i += 6
    } else {
        return nil
    }
    guard i == s.count else { return nil }
    // Days from civil (Howard Hinnant's algorithm).
    let yy = mo <= 2 ? y - 1 : y
    let era = (yy >= 0 ? yy : yy - 399) / 400
    let yoe = yy - era * 400
    let doy = (153 * (mo > 2 ? mo - 3 : mo + 9) + 2) / 5 + d - 1
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
    let days = era * 146_097 + doe - 719_468
    let seconds = days * 86400 + h * 3600 + mi * 60 + sec - offset
    return Date(timeIntervalSince1970: Double(seconds) + fraction)
}

/// JSON text written by hand where an encoder would cost too much (per event, per user).
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
        func hex(_ v: UInt8) -> UInt8 { v < 10 ? 48 + v : 87 + v }
        for byte in bytes {
            switch byte {
            case UInt8(ascii: "\""): out += [UInt8(ascii: "\\"), UInt8(ascii: "\"")]
            case UInt8(ascii: "\\"): out += [UInt8(ascii: "\\"), UInt8(ascii: "\\")]
            case UInt8(ascii: "\n"): out += [UInt8(ascii: "\\"), UInt8(ascii: "n")]
            case UInt8(ascii: "\r"): out += [UInt8(ascii: "\\"), UInt8(ascii: "r")]
            case UInt8(ascii: "\t"): out += [UInt8(ascii: "\\"), UInt8(ascii: "t")]
            case 0..<0x20: out += [UInt8(ascii: "\\"), UInt8(ascii: "u"), 48, 48, hex(byte >> 4), hex(byte & 15)]
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

extension UUID {
    /// The form Aira stores and shows: lower-case 8-4-4-4-12. Written directly: Foundation's
    /// `uuidString` formats with a C `sprintf` on Linux (plus `lowercased()`), costly per event.
    public var lowercasedString: String {
        let digits: StaticString = "0123456789abcdef"
        return withUnsafeBytes(of: self.uuid) { raw in
            String(unsafeUninitializedCapacity: 36) { out in
                var i = 0
                for (n, byte) in raw.enumerated() {
                    if n == 4 || n == 6 || n == 8 || n == 10 { out[i] = UInt8(ascii: "-"); i += 1 }
                    out[i] = digits.utf8Start[Int(byte >> 4)]
                    out[i + 1] = digits.utf8Start[Int(byte & 0x0F)]
                    i += 2
                }
                return i
            }
        }
    }

    /// Parses 8-4-4-4-12 hexadecimal text in either case, like `UUID(uuidString:)` (which is a C
    /// `sscanf` on Linux, a twentieth of the audit writer's CPU).
    public init?(text: String) {
        var text = text
        guard let parsed = text.withUTF8({ Self.parse($0) }) else { return nil }
        self.init(uuid: parsed)
    }

    private static func parse(_ s: UnsafeBufferPointer<UInt8>) -> uuid_t? {
        guard s.count == 36, s[8] == UInt8(ascii: "-"), s[13] == UInt8(ascii: "-"), s[18] == UInt8(ascii: "-"),
              s[23] == UInt8(ascii: "-") else { return nil }
        var out: uuid_t = (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
        let ok = withUnsafeMutableBytes(of: &out) { bytes -> Bool in
            var i = 0
            for n in 0..<16 {
                if i == 8 || i == 13 || i == 18 || i == 23 { i += 1 }
                guard let high = Self.nibble(s[i]), let low = Self.nibble(s[i + 1]) else { return false }
                bytes[n] = high << 4 | low
                i += 2
            }
            return true
        }
        return ok ? out : nil
    }

    private static func nibble(_ c: UInt8) -> UInt8? {
        switch c {
        case 48...57: c - 48
        case 65...70: c - 55
        case 97...102: c - 87
        default: nil
        }
    }
}
