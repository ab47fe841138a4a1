import Foundation

/// Dates as Aira writes and reads them: days counted from 1970-01-01 (per-day keys, the
/// analyzer's days) and ISO 8601 timestamps (every message's `timestamp`, every API date).
/// Written by hand: Foundation's `Calendar` and ISO 8601 FormatStyle were among the top costs
/// of the hot paths that format a date per message or per request.

/// The proleptic Gregorian date of a day counted from 1970-01-01 (Howard Hinnant's
/// civil_from_days): cheap enough for every request, unlike a `Calendar`.
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

/// The day counted from 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's
/// days_from_civil; the inverse of ``civilDate(daysSinceEpoch:)``). The date is not checked.
package func daysSinceEpoch(year: Int64, month: Int64, day: Int64) -> Int64 {
    let y = month <= 2 ? year - 1 : year
    let era = (y >= 0 ? y : y - 399) / 400
    let yoe = y - era * 400
    let doy = (153 * (month > 2 ? month - 3 : month + 9) + 2) / 5 + day - 1
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
    return era * 146_097 + doe - 719_468
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
    let days = daysSinceEpoch(year: y, month: mo, day: d)
    let seconds = days * 86400 + h * 3600 + mi * 60 + sec - offset
    return Date(timeIntervalSince1970: Double(seconds) + fraction)
}
