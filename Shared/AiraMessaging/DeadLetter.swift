import AiraCore
import AiraAMQP
import Foundation

/// One dead message as an operator sees it: the reasons Aira recorded (or, for messages the
/// broker dead-lettered itself, what its `x-death` header says), and the message.
public struct DeadLetter: Sendable {
    public let delivery: AMQPDelivery
    public var messageID: String { self.delivery.properties.messageID ?? "" }
    public var type: String? { self.delivery.properties.type }
    public var attempts: Int { Int(self.headers[AiraHeader.attempts]?.intValue ?? 0) }
    public var error: String? { self.headers[AiraHeader.error]?.stringValue ?? self.brokerDeath?.reason.map { "dead-lettered by the broker: \($0)" } }
    public var errorType: String? { self.headers[AiraHeader.errorType]?.stringValue ?? self.brokerDeath?.reason }
    public var disposition: String? { self.headers[AiraHeader.disposition]?.stringValue ?? self.brokerDeath?.reason }
    public var firstFailedAt: Date? { self.headers[AiraHeader.firstFailedAt]?.stringValue.flatMap(parseISO8601) ?? self.brokerDeath?.time }
    public var lastFailedAt: Date? { self.headers[AiraHeader.lastFailedAt]?.stringValue.flatMap(parseISO8601) ?? self.brokerDeath?.time }
    public var originalRoutingKey: String? {
        self.headers[AiraHeader.originalRoutingKey]?.stringValue ?? self.brokerDeath?.routingKey
    }
    /// The consumer queue it failed in.
    public var queue: String? { self.headers[AiraHeader.queue]?.stringValue ?? self.brokerDeath?.queue }
    public var body: [UInt8] { self.delivery.body }
    var headers: AMQPTable { self.delivery.properties.headers }

    public init(_ delivery: AMQPDelivery) { self.delivery = delivery }

    /// The first entry of RabbitMQ's `x-death` header.
    var brokerDeath: (reason: String?, queue: String?, routingKey: String?, time: Date?)? {
        guard case .array(let deaths)? = self.headers[AiraHeader.death], case .table(let first)? = deaths.first else { return nil }
        var key: String?
        if case .array(let keys)? = first["routing-keys"] { key = keys.first?.stringValue }
        var time: Date?
        if case .timestamp(let t)? = first["time"] { time = Date(timeIntervalSince1970: Double(t)) }
        return (first["reason"]?.stringValue, first["queue"]?.stringValue, key, time)
    }
}

/// Which dead letters a command applies to. Criteria combine with AND; no criteria = all.
public struct DeadLetterFilter: Sendable {
    public var ids: Set<String>
    public var type: String?
    /// Case-insensitive substring of the error text or error type.
    public var errorContains: String?
    /// Last failure at or after this time.
    public var since: Date?

    public init(ids: Set<String> = [], type: String? = nil, errorContains: String? = nil, since: Date? = nil) {
        self.ids = ids
        self.type = type
        self.errorContains = errorContains
        self.since = since
    }

    public var isEmpty: Bool { self.ids.isEmpty && self.type == nil && self.errorContains == nil && self.since == nil }

    public func matches(_ letter: DeadLetter) -> Bool {
        if !self.ids.isEmpty && !self.ids.contains(letter.messageID) { return false }
        if let type = self.type, letter.type != type { return false }
        if let text = self.errorContains?.lowercased() {
            let haystack = ((letter.error ?? "") + " " + (letter.errorType ?? "")).lowercased()
            if !haystack.contains(text) { return false }
        }
        if let since = self.since {
            guard let at = letter.lastFailedAt ?? letter.delivery.properties.timestamp.map({ Date(timeIntervalSince1970: Double($0)) }),
                  at >= since else { return false }
        }
        return true
    }
}

/// A dead letter as operators read it (`aira-admin dlq show --json`, the operator console).
public struct DeadLetterView: Codable, Sendable {
    public var id: String
    public var type: String?
    public var attempts: Int
    public var disposition: String?
    public var error: String?
    public var errorType: String?
    public var firstFailedAt: Date?
    public var lastFailedAt: Date?
    public var originalRoutingKey: String?
    public var queue: String?
    public var body: String?
    /// The message's headers as text (`x-aira-*`, `x-death`, …), when asked for with the body.
    public var headers: [String: String]?

    /// With `includeBody`, the body (as UTF-8 text, cut at `bodyLimit` bytes) and the headers.
    public init(_ d: DeadLetter, includeBody: Bool, bodyLimit: Int = .max) {
        self.id = d.messageID
        self.type = d.type
        self.attempts = d.attempts
        self.disposition = d.disposition
        self.error = d.error
        self.errorType = d.errorType
        self.firstFailedAt = d.firstFailedAt
        self.lastFailedAt = d.lastFailedAt
        self.originalRoutingKey = d.originalRoutingKey
        self.queue = d.queue
        self.body = includeBody ? String(decoding: d.body.prefix(bodyLimit), as: UTF8.self) : nil
        self.headers = includeBody ? d.headers.mapValues { String(describing: $0) } : nil
    }
}

/// Dead letters that died of the same error (its type and text): what an operator replays or
/// purges together once the cause is fixed.
public struct DeadLetterGroup: Codable, Sendable, Equatable {
    public var errorType: String?
    public var error: String?
    public var count: Int
    public var ids: [String]
    public var firstFailedAt: Date?
    public var lastFailedAt: Date?

    /// Groups in order of size (largest first), each with its messages' ids in queue order.
    public static func groups(_ letters: [DeadLetter]) -> [DeadLetterGroup] {
        var order: [String] = []
        var byKey: [String: DeadLetterGroup] = [:]
        for letter in letters {
            let key = "\(letter.errorType ?? "")\u{0}\(letter.error ?? "")"
            var group = byKey[key] ?? {
                order.append(key)
                return DeadLetterGroup(errorType: letter.errorType, error: letter.error, count: 0, ids: [])
            }()
            group.count += 1
            group.ids.append(letter.messageID)
            if let at = letter.firstFailedAt, group.firstFailedAt.map({ at < $0 }) ?? true { group.firstFailedAt = at }
            if let at = letter.lastFailedAt, group.lastFailedAt.map({ at > $0 }) ?? true { group.lastFailedAt = at }
            byKey[key] = group
        }
        return order.compactMap { byKey[$0] }.enumerated().sorted { a, b in
            a.element.count != b.element.count ? a.element.count > b.element.count : a.offset < b.offset
        }.map(\.element)
    }
}
