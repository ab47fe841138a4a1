import AiraCore
import Foundation

/// One audit event of the user being analysed: its type, its day within the window (0 = the
/// oldest of the 28 days, 27 = the analysed day) and, for questions and plays, its text (the
/// question, the watched video's title).
public struct UserEvent: Sendable {
    public var type: String
    public var dayOffset: Int
    public var text: String?

    public init(type: String, dayOffset: Int, text: String?) {
        self.type = type
        self.dayOffset = dayOffset
        self.text = text
    }
}

/// What the analysis says about one user for one day.
public struct UserInsights: Sendable, Equatable {
    public var events: Int
    public var activeDays: Int
    public var countsByType: [String: Int]
    /// 28 counts, the oldest day first; the last is the analysed day.
    public var countsByDay: [Int]
    public var interests: [Interest]
    /// The probability that the user is active the day after the analysed day; nil when the run
    /// has no model (too little data to fit one).
    public var returnLikelihood: Double?
}

/// The per-user analysis of a run: the run's model and vocabulary applied to one user's events.
public struct UserAnalyzer: Sendable {
    public var model: LogisticModel?
    public var vocabulary: Vocabulary
    /// A user with more events in the window than this is refused (a runaway client or a bot,
    /// not a person): the analysis fails for them instead of costing the whole run.
    public var maxEvents: Int

    public init(model: LogisticModel?, vocabulary: Vocabulary, maxEvents: Int) {
        self.model = model
        self.vocabulary = vocabulary
        self.maxEvents = maxEvents
    }

    public struct Refused: Error, CustomStringConvertible {
        public var description: String
    }

    public func analyse(_ events: [UserEvent]) throws -> UserInsights {
        guard events.count <= self.maxEvents else {
            throw Refused(description: "\(events.count) events in \(ActivityEvents.windowDays) days, more than the limit of \(self.maxEvents) (AIRA_ANALYSIS_MAX_EVENTS)")
        }
        let window = ActivityEvents.windowDays
        var days = [DailyActivity](repeating: DailyActivity(), count: window)
        var byType: [String: Int] = [:]
        var terms: [String: Int] = [:]
        for event in events where (0..<window).contains(event.dayOffset) {
            days[event.dayOffset].add(type: event.type)
            byType[event.type, default: 0] += 1
            if let text = event.text { Tokenizer.terms(text) { terms[$0, default: 0] += 1 } }
        }
        let counts = days.map(\.events)
        return UserInsights(events: counts.reduce(0, +), activeDays: days.reduce(0) { $0 + ($1.isActive ? 1 : 0) },
                            countsByType: byType, countsByDay: counts,
                            interests: Interest.top(terms, vocabulary: self.vocabulary),
                            returnLikelihood: self.model?.probability(ReturnFeatures.features(days[...])))
    }
}

/// Compact JSON for the stored insights (hand-written: it runs once per user per night).
public enum InsightsJSON {
    public static func object(_ counts: [String: Int]) -> String {
        var out = "{"
        for (i, key) in counts.keys.sorted().enumerated() {
            if i > 0 { out += "," }
            out += JSONText.quoted(key) + ":" + String(counts[key]!)
        }
        return out + "}"
    }

    public static func array(_ counts: [Int]) -> String { "[" + counts.map(String.init).joined(separator: ",") + "]" }

    public static func interests(_ interests: [Interest]) -> String {
        "[" + interests.map { "{\"term\":\(JSONText.quoted($0.term)),\"weight\":\(Self.number($0.weight))}" }.joined(separator: ",") + "]"
    }

    /// Rounded to 4 decimals: enough for a weight, shorter to store.
    static func number(_ x: Double) -> String {
        guard x.isFinite else { return "0" }
        return String((x * 10_000).rounded() / 10_000)
    }
}
