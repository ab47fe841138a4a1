import Foundation

/// Which audit events count as a user's own activity, and a user's activity day by day.
public enum ActivityEvents {
    /// Events that happen *to* a user rather than *by* them (a stranger's failed logins, an
    /// admin's suspension, the thumbnail worker's verdict): not activity, left out of every count.
    public static let passive: [String] = [
        "login_failed", "refresh_token_reused", "suspended", "unsuspended", "video_ready", "video_failed",
    ]
    public static let question = "gpt.asked"
    public static let play = "video_played"
    /// Days of history the analysis reads, ending with the analysed day.
    public static let windowDays = 28
}

/// One day of one user's activity.
public struct DailyActivity: Sendable, Hashable {
    public var events: Int
    public var questions: Int
    public var plays: Int

    public init(events: Int = 0, questions: Int = 0, plays: Int = 0) {
        self.events = events
        self.questions = questions
        self.plays = plays
    }

    public var isActive: Bool { self.events > 0 }

    public mutating func add(type: String) {
        self.events += 1
        if type == ActivityEvents.question { self.questions += 1 } else if type == ActivityEvents.play { self.plays += 1 }
    }
}

/// The features of the return-likelihood model, from a 28-day window of activity that ends the
/// day before the day predicted. Training (the day to predict is the analysed day, the window
/// the 28 days before it) and scoring (the day to predict is the next one, the window the 28 days
/// ending with the analysed day) share this one definition.
public enum ReturnFeatures {
    public static let names = [
        "active_days_28", "active_days_7", "active_yesterday", "log_events", "days_since_active",
        "log_questions", "log_plays", "trend_7",
    ]

    /// `window`: oldest first, the most recent day last; exactly `ActivityEvents.windowDays` days.
    public static func features(_ window: ArraySlice<DailyActivity>) -> [Double] {
        precondition(window.count == ActivityEvents.windowDays, "a feature window has \(ActivityEvents.windowDays) days")
        var activeDays = 0, recentDays = 0, previousWeek = 0, events = 0, questions = 0, plays = 0
        var sinceActive = ActivityEvents.windowDays + 1
        let last = window.endIndex - 1
        for i in window.indices {
            let day = window[i]
            events += day.events
            questions += day.questions
            plays += day.plays
            guard day.isActive else { continue }
            activeDays += 1
            let age = last - i
            sinceActive = min(sinceActive, age + 1)
            if age < 7 { recentDays += 1 } else if age < 14 { previousWeek += 1 }
        }
        return [
            Double(activeDays) / 28, Double(recentDays) / 7, window[last].isActive ? 1 : 0,
            log1pCount(events), Double(sinceActive) / 28, log1pCount(questions), log1pCount(plays),
            Double(recentDays - previousWeek) / 7,
        ]
    }

    private static func log1pCount(_ n: Int) -> Double { log1p(Double(n)) }
}
