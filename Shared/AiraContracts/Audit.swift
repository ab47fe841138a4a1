import AiraCore
import AiraMessaging
import Foundation

/// A record of something a user (or an admin) did, for the audit log: stored by
/// aira-audit-writer. Producers record events through an ``AuditTrail``, which publishes them in
/// batches (``AuditBatch``); a single event may also be published on its own as `audit.<type>`.
public struct AuditEvent: MessageContract {
    public static let messageType = "audit.event.v1"
    /// The idempotency key inside a batch (``AuditTrail`` sets it). A single-event message is
    /// keyed by its AMQP `message_id` instead, and this field is ignored there.
    public var id: String?
    /// `login`, `login_failed`, `password_changed`, `logout_all`, `suspended`, ...
    public var type: String
    /// The user the event is about (nil when unknown, e.g. a failed login for no account).
    public var userId: UUID?
    /// Who did it, when not the user (an admin).
    public var actorId: UUID?
    public var at: Date
    public var ip: String?
    /// Small, flat details (e.g. `reason`, `email`).
    public var attributes: [String: String]

    public init(id: String? = nil, type: String, userId: UUID?, actorId: UUID? = nil, at: Date = Date(), ip: String? = nil,
                attributes: [String: String] = [:]) {
        self.id = id
        self.type = type
        self.userId = userId
        self.actorId = actorId
        self.at = at
        self.ip = ip
        self.attributes = attributes
    }

    public var routingKey: String { "audit.\(self.type)" }

    /// The audit writer decodes every event: read from a ``JSONTree`` instead of by JSONDecoder
    /// (a fifth of the writer's CPU), falling back to it for any body outside the usual shape.
    public static func decode(from body: [UInt8]) throws -> AuditEvent {
        if let tree = try? JSONTree.parse(body), let fast = try? Self.fastDecode(tree) { return fast }
        return try MessageCoding.decode(AuditEvent.self, from: body)
    }

    /// The event in `tree`, as ``encoded()`` writes it; throws ``JSONTree/Unsupported`` for
    /// anything else (a member it does not know, a value of another type), and the caller then
    /// uses JSONDecoder.
    package static func fastDecode(_ tree: JSONTree) throws -> AuditEvent {
        var id: String?, type: String?, userId: UUID?, actorId: UUID?, at: Date?, ip: String?
        var attributes: [String: String] = [:]
        func uuid(_ key: String, _ value: JSONTree) throws -> UUID? {
            switch value {
            case .null: return nil
            case .string(let s): guard let id = UUID(text: s) else { throw JSONTree.Unsupported("'\(key)' is not a UUID") }; return id
            default: throw JSONTree.Unsupported("'\(key)' is not a UUID")
            }
        }
        for (key, value) in try tree.members() {
            switch (key, value) {
            case ("id", .string(let s)): id = s
            case ("id", .null): id = nil
            case ("type", .string(let s)): type = s
            case ("userId", _): userId = try uuid(key, value)
            case ("actorId", _): actorId = try uuid(key, value)
            case ("at", .string(let s)): guard let d = parseISO8601(s) else { throw JSONTree.Unsupported("'at' is not a date") }; at = d
            case ("ip", .string(let s)): ip = s
            case ("ip", .null): ip = nil
            case ("attributes", .object(let members)):
                attributes.reserveCapacity(members.count)
                for (name, value) in members {
                    guard case .string(let text) = value else { throw JSONTree.Unsupported("attribute '\(name)' is not a string") }
                    attributes[name] = text
                }
            default: throw JSONTree.Unsupported("'\(key)' is not expected here")
            }
        }
        guard let type, let at else { throw JSONTree.Unsupported("'type' or 'at' is missing") }
        return AuditEvent(id: id, type: type, userId: userId, actorId: actorId, at: at, ip: ip, attributes: attributes)
    }

    /// The JSON JSONEncoder would write (absent fields for nil, UUIDs in lower case), written
    /// directly: producers encode an event per user action.
    public func encoded() -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(256)
        self.append(to: &out)
        return out
    }

    func append(to out: inout [UInt8]) {
        out.append(UInt8(ascii: "{"))
        var first = true
        func field(_ name: String, _ value: String?) {
            guard let value else { return }
            if !first { out.append(UInt8(ascii: ",")) }
            first = false
            JSONText.appendQuoted(name, to: &out)
            out.append(UInt8(ascii: ":"))
            JSONText.appendQuoted(value, to: &out)
        }
        field("id", self.id)
        field("type", self.type)
        field("userId", self.userId?.lowercasedString)
        field("actorId", self.actorId?.lowercasedString)
        field("at", iso8601(self.at))
        field("ip", self.ip)
        out.append(contentsOf: ",\"attributes\":".utf8)
        JSONText.appendObject(self.attributes, to: &out)
        out.append(UInt8(ascii: "}"))
    }

    /// The audit writer's queue. Producers declare it too, so events wait for the writer
    /// instead of being refused as unroutable when it has not started yet.
    public static let queue = QueueSpec(name: "audit.events", bindings: ["audit.#"])
}

/// Audit events travelling together in one message (`audit.batch.v1`, routing key
/// `audit.batch`): a JSON array of events, each with its own `id`. One broker message, one
/// confirm and one ack for many events — the broker's work per event was most of the audit
/// path's cost. The writer stores each event once by its `id`.
public struct AuditBatch: MessageContract {
    public static let messageType = "audit.batch.v1"
    public static let routingKey = "audit.batch"
    /// The audit writer takes batches and single events (``AuditEvent``, a batch of one).
    public static let acceptedMessageTypes = [Self.messageType, AuditEvent.messageType]

    public var events: [AuditEvent]

    public init(events: [AuditEvent]) { self.events = events }

    public init(from decoder: any Decoder) throws {
        self.events = try decoder.singleValueContainer().decode([AuditEvent].self)
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.singleValueContainer()
        try c.encode(self.events)
    }

    /// Why a batch cannot be stored as it is (→ the dead-letter reason).
    public struct Invalid: Error, CustomStringConvertible {
        public let description: String
    }

    public static func decode(type: String, from body: [UInt8]) throws -> AuditBatch {
        guard type == AuditEvent.messageType else { return try Self.decode(from: body) }
        // A single event is keyed by its message id (the writer's fallback when `id` is nil).
        var event = try AuditEvent.decode(from: body)
        event.id = nil
        return AuditBatch(events: [event])
    }

    public static func decode(from body: [UInt8]) throws -> AuditBatch {
        let batch: AuditBatch
        if case .array(let items)? = try? JSONTree.parse(body), let events = try? items.map(AuditEvent.fastDecode) {
            batch = AuditBatch(events: events)
        } else {
            batch = try MessageCoding.decode(AuditBatch.self, from: body)
        }
        guard !batch.events.isEmpty else { throw Invalid(description: "an audit batch holds no events") }
        if let i = batch.events.firstIndex(where: { ($0.id ?? "").isEmpty }) {
            throw Invalid(description: "event [\(i)] of the batch has no id (every batched event needs one)")
        }
        return batch
    }

    public func encoded() -> [UInt8] {
        var out: [UInt8] = [UInt8(ascii: "[")]
        out.reserveCapacity(self.events.count * 256)
        for (i, event) in self.events.enumerated() {
            if i > 0 { out.append(UInt8(ascii: ",")) }
            event.append(to: &out)
        }
        out.append(UInt8(ascii: "]"))
        return out
    }
}
