extension Sequence where Element == UInt8 {
    /// Lower-case hexadecimal, e.g. of a SHA-256 digest for a Redis key. (`String(format:)`
    /// per byte is slow on Linux: it builds a locale, reading the process environment, each time.)
    package var hexString: String {
        let digits = Array("0123456789abcdef".utf8)
        var out: [UInt8] = []
        out.reserveCapacity(self.underestimatedCount * 2)
        for byte in self {
            out.append(digits[Int(byte >> 4)])
            out.append(digits[Int(byte & 0x0F)])
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
