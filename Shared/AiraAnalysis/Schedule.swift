import AiraCore
import Foundation

/// When runs are due. The run for day D is due at the configured time of day D+1 in the
/// configured zone (default 00:00: as soon as D is over). On every check an instance looks at the
/// newest `catchUpDays` due days, so days missed while every instance was down are caught up.
public struct Schedule: Sendable {
    /// Seconds after local midnight.
    public var secondsOfDay: Int
    public var timezone: TimeZone
    /// 0 turns scheduled runs off (only requested runs are done).
    public var catchUpDays: Int

    public var timezoneName: String { self.timezone.identifier }

    /// `HH:MM` or `HH:MM:SS`.
    public static func parseTime(_ text: String) -> Int? {
        let parts = text.split(separator: ":", omittingEmptySubsequences: false).map { Int($0) }
        guard (2...3).contains(parts.count), let h = parts[0], let m = parts[1], (0..<24).contains(h), (0..<60).contains(m) else { return nil }
        let s = parts.count == 3 ? parts[2] : 0
        guard let s, (0..<60).contains(s) else { return nil }
        return h * 3600 + m * 60 + s
    }

    public init(secondsOfDay: Int, timezone: TimeZone, catchUpDays: Int) {
        self.secondsOfDay = secondsOfDay
        self.timezone = timezone
        self.catchUpDays = catchUpDays
    }

    public init(environment env: EnvironmentReader) throws {
        let time = env.string("AIRA_ANALYZER_TIME", default: "00:00")
        guard let seconds = Self.parseTime(time) else {
            throw ConfigurationError(key: "AIRA_ANALYZER_TIME", value: time, expected: "a time of day, HH:MM or HH:MM:SS")
        }
        let zoneName = env.string("AIRA_ANALYZER_TIMEZONE", default: TimeZone.current.identifier)
        guard let zone = TimeZone(identifier: zoneName) else {
            throw ConfigurationError(key: "AIRA_ANALYZER_TIMEZONE", value: zoneName, expected: "an IANA time zone such as Europe/Paris or UTC")
        }
        self.init(secondsOfDay: seconds, timezone: zone,
                  catchUpDays: try env.int("AIRA_ANALYZER_CATCH_UP_DAYS", default: 3, range: 0...60))
    }

    /// The local day and the seconds since its midnight at `date`.
    public func local(_ date: Date) -> (day: Day, seconds: Int) {
        let offset = self.timezone.secondsFromGMT(for: date)
        let day = Day(secondsSinceEpoch: date.timeIntervalSince1970, offsetSeconds: offset)
        let seconds = Int(date.timeIntervalSince1970) + offset - day.ordinal * 86_400
        return (day, seconds)
    }

    /// The days whose runs are due at `now`, oldest first.
    public func dueDays(at now: Date) -> [Day] {
        guard self.catchUpDays > 0 else { return [] }
        let (today, seconds) = self.local(now)
        let newest = seconds >= self.secondsOfDay ? today - 1 : today - 2
        return (0..<self.catchUpDays).reversed().map { newest - $0 }
    }

    /// When the run for `day` is (was) due.
    public func dueAt(_ day: Day) -> Date {
        let localSeconds = Double((day + 1).ordinal * 86_400 + self.secondsOfDay)
        let guess = Date(timeIntervalSince1970: localSeconds)
        return Date(timeIntervalSince1970: localSeconds - Double(self.timezone.secondsFromGMT(for: guess)))
    }

    /// The next time a run becomes due after `now`.
    public func nextTrigger(after now: Date) -> Date {
        let (today, _) = self.local(now)
        let todays = self.dueAt(today - 1)
        return todays > now ? todays : self.dueAt(today)
    }
}
