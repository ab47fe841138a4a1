import AiraCore

/// A calendar day (no time, no zone): what a run analyses. Arithmetic is on whole days, with
/// no Calendar (slow on Linux) involved.
public struct Day: Hashable, Comparable, Sendable, CustomStringConvertible, Codable {
    /// Days since 1970-01-01.
    public let ordinal: Int

    public init(ordinal: Int) { self.ordinal = ordinal }

    /// `yyyy-MM-dd` (proleptic Gregorian), nil for anything else.
    public init?(_ text: String) {
        let parts = text.split(separator: "-", omittingEmptySubsequences: false)
        guard parts.count == 3, parts[0].count == 4, parts[1].count == 2, parts[2].count == 2,
              let y = Int(parts[0]), let m = Int(parts[1]), let d = Int(parts[2]),
              (1...12).contains(m), d >= 1, d <= Self.daysIn(month: m, year: y) else { return nil }
        self.ordinal = Self.ordinal(year: y, month: m, day: d)
    }

    /// The day containing `secondsSinceEpoch` in a zone `offsetSeconds` east of UTC.
    public init(secondsSinceEpoch: Double, offsetSeconds: Int) {
        self.ordinal = Int(((secondsSinceEpoch + Double(offsetSeconds)) / 86_400).rounded(.down))
    }

    public static func + (day: Day, days: Int) -> Day { Day(ordinal: day.ordinal + days) }
    public static func - (day: Day, days: Int) -> Day { Day(ordinal: day.ordinal - days) }
    public static func - (a: Day, b: Day) -> Int { a.ordinal - b.ordinal }
    public static func < (a: Day, b: Day) -> Bool { a.ordinal < b.ordinal }

    public var components: (year: Int, month: Int, day: Int) {
        let (y, m, d) = civilDate(daysSinceEpoch: Int64(self.ordinal))
        return (Int(y), Int(m), Int(d))
    }

    public var description: String {
        let (y, m, d) = self.components
        func pad(_ n: Int, _ width: Int) -> String {
            let s = String(n)
            return String(repeating: "0", count: max(0, width - s.count)) + s
        }
        return "\(pad(y, 4))-\(pad(m, 2))-\(pad(d, 2))"
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.singleValueContainer()
        let text = try c.decode(String.self)
        guard let day = Day(text) else {
            throw DecodingError.dataCorruptedError(in: c, debugDescription: "not a yyyy-MM-dd day: \(text)")
        }
        self = day
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.singleValueContainer()
        try c.encode(self.description)
    }

    static func ordinal(year: Int, month: Int, day: Int) -> Int {
        Int(daysSinceEpoch(year: Int64(year), month: Int64(month), day: Int64(day)))
    }

    static func daysIn(month: Int, year: Int) -> Int {
        switch month {
        case 2: return (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 ? 29 : 28
        case 4, 6, 9, 11: return 30
        default: return 31
        }
    }
}
