import AiraCore
import AiraAnalysis
import AiraMessaging
import Foundation
import Testing

@Suite("The nightly analysis: days, features, the model, interests")
struct AnalysisTests {
    @Test("days parse, print and count like the calendar")
    func days() throws {
        let d = try #require(Day("2024-02-28"))
        #expect((d + 1).description == "2024-02-29")
        #expect((d + 2).description == "2024-03-01")
        #expect(Day("1970-01-01")?.ordinal == 0)
        #expect(try #require(Day("2026-11-22")) - (try #require(Day("2025-11-22"))) == 365)
        #expect(Day("2026-02-29") == nil)
        #expect(Day("2026-13-01") == nil)
        #expect(Day("26-11-22") == nil)
        #expect(Day("2026-11-22T00:00") == nil)
        // The local day of an instant depends on the zone offset.
        let instant = 1_763_769_600.0 + 3600 // 2025-11-22T01:00:00Z
        #expect(Day(secondsSinceEpoch: instant, offsetSeconds: 0).description == "2025-11-22")
        #expect(Day(secondsSinceEpoch: instant, offsetSeconds: -2 * 3600).description == "2025-11-21")
        for ordinal in stride(from: -800_000, through: 800_000, by: 997) {
            let day = Day(ordinal: ordinal)
            #expect(Day(day.description) == day || ordinal < -719_162) // before year 0001 the text has no 4-digit year
        }
    }

    @Test("terms: lower-cased words of three or more letters, stop words and numbers left out")
    func tokenizer() {
        #expect(Tokenizer.counts(["How do I train a Neural-Network? NEURAL networks!"]) ==
            ["train": 1, "neural": 2, "network": 1, "networks": 1])
        #expect(Tokenizer.counts(["2026 is the year 42 of Grüße, don't panic"]) == ["year": 1, "grüße": 1, "panic": 1])
        #expect(Tokenizer.counts([""]).isEmpty)
    }

    @Test("TF-IDF ranks a user's distinctive terms over words everyone uses")
    func interests() {
        var users: [[String]] = (0..<50).map { _ in ["python tutorial for beginners"] }
        users.append(["python tutorial", "sourdough bread baking", "sourdough starter"])
        let vocabulary = Vocabulary.build(users)
        #expect(vocabulary.population == 51)
        #expect(vocabulary.documentFrequency["python"] == 51)
        #expect(vocabulary.documentFrequency["sourdough"] == nil) // one user only: below the minimum of 2
        let top = Interest.top(Tokenizer.counts(users[50]), vocabulary: vocabulary, limit: 3)
        #expect(top.first?.term == "sourdough")
        #expect(!top.map(\.term).contains("python"))
        #expect(top.map(\.weight) == top.map(\.weight).sorted(by: >))
    }

    @Test("features describe the 28-day window: active days, recency, trend")
    func features() {
        var window = [DailyActivity](repeating: DailyActivity(), count: 28)
        window[27] = DailyActivity(events: 3, questions: 1, plays: 2)
        window[20] = DailyActivity(events: 1)
        window[10] = DailyActivity(events: 1)
        let f = ReturnFeatures.features(window[...])
        #expect(f.count == ReturnFeatures.names.count)
        #expect(f[0] == 3.0 / 28) // active days
        #expect(f[1] == 1.0 / 7) // active in the last 7
        #expect(f[2] == 1) // active on the last day
        #expect(abs(f[3] - log1p(5)) < 1e-12)
        #expect(f[4] == 1.0 / 28) // last active: the last day
        let empty = ReturnFeatures.features([DailyActivity](repeating: DailyActivity(), count: 28)[...])
        #expect(empty[4] == 29.0 / 28)
    }

    /// A synthetic population in which the habit of being active predicts returning.
    static func population(_ n: Int, signal: Bool, seed: UInt64) -> [Sample] {
        var rng = SplitMix(seed: seed)
        return (0..<n).map { i in
            let habit = Double(rng.next() % 1000) / 1000 // how often this user comes back
            var days = [DailyActivity](repeating: DailyActivity(), count: 28)
            for d in 0..<28 where Double(rng.next() % 1000) / 1000 < habit {
                days[d] = DailyActivity(events: 1 + Int(rng.next() % 5), questions: Int(rng.next() % 2), plays: Int(rng.next() % 3))
            }
            let p = signal ? habit : 0.5
            let label = Double(rng.next() % 1000) / 1000 < p
            return Sample(features: ReturnFeatures.features(days[...]), label: label, heldOut: i % 5 == 0)
        }
    }

    @Test("the model finds a planted signal (held-out AUC well above 0.5) and none where there is none")
    func plantedSignal() throws {
        let model = try LogisticModel.fit(Self.population(5000, signal: true, seed: 7), featureNames: ReturnFeatures.names)
        let auc = try #require(model.fit.auc)
        #expect(auc > 0.75, "AUC \(auc)")
        #expect(model.fit.testSize == 1000 && model.fit.trainSize == 4000)
        #expect(try #require(model.fit.logLoss) < log(2.0)) // better than a coin
        // More active days → higher probability.
        let busy = ReturnFeatures.features([DailyActivity](repeating: DailyActivity(events: 2), count: 28)[...])
        let idle = ReturnFeatures.features([DailyActivity](repeating: DailyActivity(), count: 28)[...])
        #expect(model.probability(busy) > 0.8 && model.probability(idle) < 0.3)

        let noise = try LogisticModel.fit(Self.population(5000, signal: false, seed: 8), featureNames: ReturnFeatures.names)
        #expect(abs(try #require(noise.fit.auc) - 0.5) < 0.06)
        // The model survives its JSON (stored with the run, read by every worker).
        let decoded = try JSONDecoder().decode(LogisticModel.self, from: try JSONEncoder().encode(model))
        #expect(decoded == model)
    }

    @Test("AUC by ranks: perfect, inverted, ties; one class has none; nothing to fit is an error")
    func aucAndRefusals() throws {
        #expect(LogisticModel.auc([0.1, 0.2, 0.8, 0.9], [false, false, true, true]) == 1)
        #expect(LogisticModel.auc([0.9, 0.8, 0.2, 0.1], [false, false, true, true]) == 0)
        #expect(LogisticModel.auc([0.5, 0.5, 0.5, 0.5], [false, true, false, true]) == 0.5)
        #expect(LogisticModel.auc([0.1, 0.2], [true, true]) == nil)
        let allSame = (0..<10).map { Sample(features: [Double]($0 % 2 == 0 ? [1] : [0]), label: true, heldOut: false) }
        #expect(throws: LogisticModel.FitError.self) { try LogisticModel.fit(allSame, featureNames: ["x"]) }
        #expect(throws: LogisticModel.FitError.self) { try LogisticModel.fit([], featureNames: ["x"]) }
    }

    @Test("a user's insights: counts by type and day, interests, the score; a runaway user is refused")
    func userAnalysis() throws {
        let vocabulary = Vocabulary(population: 100, documentFrequency: ["swift": 60, "concurrency": 5])
        let analyzer = UserAnalyzer(model: nil, vocabulary: vocabulary, maxEvents: 10)
        let events = [
            UserEvent(type: "gpt.asked", dayOffset: 27, text: "Swift concurrency and actors"),
            UserEvent(type: "video_played", dayOffset: 27, text: "Structured concurrency in Swift"),
            UserEvent(type: "login", dayOffset: 3, text: nil),
            UserEvent(type: "login", dayOffset: 40, text: nil), // outside the window: ignored
        ]
        let insights = try analyzer.analyse(events)
        #expect(insights.events == 3 && insights.activeDays == 2)
        #expect(insights.countsByType == ["gpt.asked": 1, "video_played": 1, "login": 1])
        #expect(insights.countsByDay.count == 28 && insights.countsByDay[27] == 2 && insights.countsByDay[3] == 1)
        #expect(insights.interests.first?.term == "concurrency")
        #expect(insights.returnLikelihood == nil)
        #expect(InsightsJSON.object(insights.countsByType) == #"{"gpt.asked":1,"login":1,"video_played":1}"#)
        let many = [UserEvent](repeating: UserEvent(type: "login", dayOffset: 1, text: nil), count: 11)
        #expect(throws: UserAnalyzer.Refused.self) { try analyzer.analyse(many) }
    }
}

/// A small deterministic generator for synthetic populations and labelled sets (splitmix64).
struct SplitMix: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { self.state = seed }
    mutating func next() -> UInt64 {
        self.state &+= 0x9E37_79B9_7F4A_7C15
        var z = self.state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

@Suite("The analysis schedule")
struct ScheduleTests {
    static func at(_ text: String) -> Date { parseISO8601(text)! }

    @Test("the day's run is due at the trigger time of the next day, in the zone; catch-up looks back")
    func due() throws {
        let utc = Schedule(secondsOfDay: 0, timezone: TimeZone(identifier: "UTC")!, catchUpDays: 3)
        #expect(utc.dueDays(at: Self.at("2026-11-22T00:00:01Z")).map(\.description) == ["2026-11-19", "2026-11-20", "2026-11-21"])
        #expect(utc.dueAt(Day("2026-11-21")!) == Self.at("2026-11-22T00:00:00Z"))
        #expect(utc.nextTrigger(after: Self.at("2026-11-22T10:00:00Z")) == Self.at("2026-11-23T00:00:00Z"))

        // 02:30 in Paris (UTC+1 in November): before it, the newest due day is two days back.
        let paris = Schedule(secondsOfDay: 2 * 3600 + 1800, timezone: TimeZone(identifier: "Europe/Paris")!, catchUpDays: 1)
        #expect(paris.dueDays(at: Self.at("2026-11-22T01:00:00Z")).map(\.description) == ["2026-11-20"]) // 02:00 local
        #expect(paris.dueDays(at: Self.at("2026-11-22T01:30:00Z")).map(\.description) == ["2026-11-21"]) // 02:30 local
        #expect(paris.dueAt(Day("2026-11-21")!) == Self.at("2026-11-22T01:30:00Z"))
        #expect(paris.nextTrigger(after: Self.at("2026-11-22T01:00:00Z")) == Self.at("2026-11-22T01:30:00Z"))

        #expect(Schedule(secondsOfDay: 0, timezone: TimeZone(identifier: "UTC")!, catchUpDays: 0).dueDays(at: Date()).isEmpty)
        #expect(Schedule.parseTime("23:59:30") == 86_370)
        #expect(Schedule.parseTime("24:00") == nil && Schedule.parseTime("7") == nil && Schedule.parseTime("07:60") == nil)
    }
}
