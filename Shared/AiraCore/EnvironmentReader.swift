import Foundation
import Synchronization

/// A configuration value that could not be read; names the variable and what it expected.
public struct ConfigurationError: Error, CustomStringConvertible, Sendable {
    public var key: String
    public var value: String
    public var expected: String
    public var description: String { "\(key)=\"\(value)\": expected \(expected)" }

    public init(key: String, value: String, expected: String) {
        self.key = key
        self.value = value
        self.expected = expected
    }
}

/// Typed reads of environment variables with defaults. Every Aira executable reads its
/// configuration through this, so a bad value stops start-up with a message naming the variable.
public struct EnvironmentReader: Sendable {
    public let values: [String: String]
    /// Every variable read and the default it had, when given (``Reads``): what a configuration
    /// reads is its declaration, which the tests compare with docs/configuration.md.
    public let reads: Reads?

    public init(_ values: [String: String] = ProcessInfo.processInfo.environment, recordingInto reads: Reads? = nil) {
        self.values = values
        self.reads = reads
    }

    /// The variables a configuration read, in order, each with its default as configuration
    /// accepts it back (`60s`, `16`, `true`), or nil when it has none (optional or required).
    public final class Reads: Sendable {
        public struct Read: Sendable, Equatable {
            public var key: String
            public var defaultValue: String?
        }
        private let list = Mutex<[Read]>([])
        public init() {}
        public var all: [Read] { self.list.withLock { $0 } }
        fileprivate func record(_ key: String, _ defaultValue: String?) {
            self.list.withLock { $0.append(Read(key: key, defaultValue: defaultValue)) }
        }
    }

    private func raw(_ key: String, default shown: String?) -> String? {
        self.reads?.record(key, shown)
        guard let v = self.values[key]?.trimmingCharacters(in: .whitespaces), !v.isEmpty else { return nil }
        return v
    }

    public func string(_ key: String, default value: String) -> String { self.raw(key, default: value) ?? value }
    public func optionalString(_ key: String) -> String? { self.raw(key, default: nil) }

    /// A value with its own syntax: `parse` returns nil for text it cannot read, and the error
    /// names the variable and `expected`. `shown` is the default as it would be written.
    public func value<T>(_ key: String, default value: T, shown: String, expected: String,
                         _ parse: (String) -> T?) throws -> T {
        guard let text = self.raw(key, default: shown) else { return value }
        guard let v = parse(text) else { throw ConfigurationError(key: key, value: text, expected: expected) }
        return v
    }

    public func int(_ key: String, default value: Int, range: ClosedRange<Int> = 0...Int.max) throws -> Int {
        guard let text = self.raw(key, default: "\(value)") else { return value }
        guard let v = Int(text), range.contains(v) else {
            throw ConfigurationError(key: key, value: text, expected: "an integer in \(range.lowerBound)...\(range.upperBound)")
        }
        return v
    }

    public func bool(_ key: String, default value: Bool) throws -> Bool {
        guard let text = self.raw(key, default: "\(value)")?.lowercased() else { return value }
        switch text {
        case "1", "true", "yes", "on": return true
        case "0", "false", "no", "off": return false
        default: throw ConfigurationError(key: key, value: text, expected: "true or false")
        }
    }

    /// Durations: `250ms`, `5s`, `2m`, `1h`; a bare number means seconds.
    public func duration(_ key: String, default value: Duration) throws -> Duration {
        guard let text = self.raw(key, default: formatDuration(value)) else { return value }
        guard let d = Self.parseDuration(text) else {
            throw ConfigurationError(key: key, value: text, expected: "a duration such as 250ms, 5s, 2m or 1h")
        }
        return d
    }

    /// A comma-separated list of durations (for retry tiers).
    public func durations(_ key: String, default value: [Duration]) throws -> [Duration] {
        guard let text = self.raw(key, default: value.map(formatDuration).joined(separator: ",")) else { return value }
        let parts = text.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
        let parsed = parts.compactMap(Self.parseDuration)
        guard parsed.count == parts.count, !parsed.isEmpty else {
            throw ConfigurationError(key: key, value: text, expected: "a comma-separated list of durations, e.g. 1s,10s,1m")
        }
        return parsed
    }

    public static func parseDuration(_ text: String) -> Duration? {
        let units: [(String, Double)] = [("ms", 0.001), ("s", 1), ("m", 60), ("h", 3600)]
        for (suffix, factor) in units where text.hasSuffix(suffix) {
            let number = text.dropLast(suffix.count)
            // "ms" must win over "s": the loop tries it first.
            guard let v = Double(number), v >= 0 else { return nil }
            return .nanoseconds(Int64(v * factor * 1e9))
        }
        guard let v = Double(text), v >= 0 else { return nil }
        return .nanoseconds(Int64(v * 1e9))
    }
}

/// Renders a duration the way configuration accepts it back (`1s`, `250ms`, `10m`).
public func formatDuration(_ d: Duration) -> String {
    let ms = d.milliseconds
    if ms % 3_600_000 == 0, ms > 0 { return "\(ms / 3_600_000)h" }
    if ms % 60_000 == 0, ms > 0 { return "\(ms / 60_000)m" }
    if ms % 1000 == 0, ms > 0 { return "\(ms / 1000)s" }
    return "\(ms)ms"
}
