import AiraCore
import Foundation

/// Where and how to connect. Parsed from an `amqp://user:pass@host:port/vhost` URL.
public struct AMQPConfiguration: Sendable, Hashable {
    public var host: String
    public var port: Int
    public var user: String
    public var password: String
    public var vhost: String
    /// Heartbeat negotiated with the broker; a silent broker is detected after about twice this.
    public var heartbeat: Duration
    public var connectTimeout: Duration
    /// Upper bound on a synchronous broker call (declare, qos, consume).
    public var rpcTimeout: Duration
    /// Backoff between reconnect attempts.
    public var reconnectBackoff: Duration
    public var reconnectBackoffMax: Duration
    /// A name the broker shows for this connection (management UI, `rabbitmqctl list_connections`).
    public var connectionName: String

    public init(host: String = "127.0.0.1", port: Int = 5672, user: String = "guest", password: String = "guest",
                vhost: String = "/", heartbeat: Duration = .seconds(10), connectTimeout: Duration = .seconds(3),
                rpcTimeout: Duration = .seconds(15), reconnectBackoff: Duration = .milliseconds(200),
                reconnectBackoffMax: Duration = .seconds(5), connectionName: String = "aira") {
        self.host = host
        self.port = port
        self.user = user
        self.password = password
        self.vhost = vhost
        self.heartbeat = heartbeat
        self.connectTimeout = connectTimeout
        self.rpcTimeout = rpcTimeout
        self.reconnectBackoff = reconnectBackoff
        self.reconnectBackoffMax = reconnectBackoffMax
        self.connectionName = connectionName
    }

    /// Parses `amqp://user:pass@host:port/vhost` (vhost percent-encoded; an empty path means `/`).
    public init(url: String, connectionName: String = "aira") throws {
        guard let components = URLComponents(string: url), components.scheme == "amqp",
              let host = components.host, !host.isEmpty else {
            throw AMQPError.invalidURL(URLText.redacted(url))
        }
        self.init(connectionName: connectionName)
        self.host = host
        self.port = components.port ?? 5672
        if let u = components.user { self.user = u.removingPercentEncoding ?? u }
        if let p = components.password { self.password = p.removingPercentEncoding ?? p }
        let path = components.percentEncodedPath
        if path.count > 1 {
            let raw = String(path.dropFirst())
            self.vhost = raw.removingPercentEncoding ?? raw
        }
    }
}
