import AiraCore
import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// RabbitMQ's management HTTP API, used only where AMQP has no answer: listing queues with their
/// unacknowledged counts and rates. Shared by `aira-admin queues` and the gateway's operator
/// console (`GET /api/admin/queues`).
public struct ManagementAPI: Sendable {
    public let base: URL
    let authorization: String?

    public struct Failure: Error, CustomStringConvertible {
        public let description: String
    }

    /// `http://user:pass@host:15672` (credentials in the URL, as an operator writes them).
    public init(url: String) throws {
        guard var components = URLComponents(string: url), let scheme = components.scheme, ["http", "https"].contains(scheme) else {
            throw Failure(description: "management URL \(URLText.redacted(url)): expected http://user:pass@host:15672")
        }
        if let user = components.user {
            let credentials = "\(user.removingPercentEncoding ?? user):\(components.password?.removingPercentEncoding ?? "")"
            self.authorization = "Basic " + Data(credentials.utf8).base64EncodedString()
        } else {
            self.authorization = nil
        }
        components.user = nil
        components.password = nil
        guard let base = components.url else { throw Failure(description: "management URL \(URLText.redacted(url)): not a URL") }
        self.base = base
    }

    public struct QueueInfo: Decodable, Sendable {
        public var name: String
        public var messages_ready: Int?
        public var messages_unacknowledged: Int?
        public var consumers: Int?
        public var message_stats: Stats?

        public struct Stats: Decodable, Sendable {
            public var publish_details: Rate?
            public var deliver_get_details: Rate?
            public var ack_details: Rate?
        }

        public struct Rate: Decodable, Sendable { public var rate: Double }

        public init(name: String, messages_ready: Int? = nil, messages_unacknowledged: Int? = nil, consumers: Int? = nil,
                    message_stats: Stats? = nil) {
            self.name = name
            self.messages_ready = messages_ready
            self.messages_unacknowledged = messages_unacknowledged
            self.consumers = consumers
            self.message_stats = message_stats
        }
    }

    public func queues(vhost: String) async throws -> [QueueInfo] {
        let encoded = vhost.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? vhost
        // Built as text: appendingPathComponent would encode the vhost's % again.
        let root = self.base.absoluteString.hasSuffix("/") ? String(self.base.absoluteString.dropLast()) : self.base.absoluteString
        guard let url = URL(string: "\(root)/api/queues/\(encoded)") else { throw Failure(description: "management API: bad URL") }
        var request = URLRequest(url: url)
        request.timeoutInterval = 5
        if let authorization { request.setValue(authorization, forHTTPHeaderField: "Authorization") }
        let (data, response) = try await URLSession.shared.data(for: request)
        guard let http = response as? HTTPURLResponse else { throw Failure(description: "management API: no HTTP response") }
        guard http.statusCode == 200 else { throw Failure(description: "management API at \(self.base): HTTP \(http.statusCode)") }
        return try JSONDecoder().decode([QueueInfo].self, from: data)
    }
}

/// One consumer queue as an operator sees it: ready and unacknowledged messages, consumers,
/// messages waiting in its retry tiers and in its DLQ, and its rates (messages per second).
public struct QueueOverview: Codable, Sendable, Equatable {
    public var queue: String
    public var ready: Int?
    public var unacked: Int?
    public var consumers: Int?
    public var retrying: Int
    public var deadLetters: Int?
    public var publishRate: Double?
    public var deliverRate: Double?
    public var ackRate: Double?

    public init(queue: String, ready: Int?, unacked: Int?, consumers: Int?, retrying: Int, deadLetters: Int?,
                publishRate: Double? = nil, deliverRate: Double? = nil, ackRate: Double? = nil) {
        self.queue = queue
        self.ready = ready
        self.unacked = unacked
        self.consumers = consumers
        self.retrying = retrying
        self.deadLetters = deadLetters
        self.publishRate = publishRate
        self.deliverRate = deliverRate
        self.ackRate = ackRate
    }

    /// Aira consumer queues are those with a `.dlq` sibling; retry tiers are `Q.retry.*`. With
    /// `only` empty, every such queue the broker has; else exactly those (missing ones as nil counts).
    public static func rows(from infos: [ManagementAPI.QueueInfo], only: [String]) -> [QueueOverview] {
        let byName = Dictionary(infos.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
        let names = only.isEmpty
            ? infos.map(\.name).filter { $0.hasSuffix(".dlq") }.map { String($0.dropLast(4)) }.filter { byName[$0] != nil }.sorted()
            : only
        return names.map { q in
            let main = byName[q]
            let retrying = infos.filter { $0.name.hasPrefix("\(q).retry.") }.reduce(0) { $0 + ($1.messages_ready ?? 0) + ($1.messages_unacknowledged ?? 0) }
            let stats = main?.message_stats
            return QueueOverview(queue: q, ready: main?.messages_ready ?? (main == nil ? nil : 0), unacked: main?.messages_unacknowledged,
                                 consumers: main?.consumers, retrying: retrying, deadLetters: byName["\(q).dlq"]?.messages_ready,
                                 publishRate: stats?.publish_details?.rate, deliverRate: stats?.deliver_get_details?.rate,
                                 ackRate: stats?.ack_details?.rate)
        }
    }
}
