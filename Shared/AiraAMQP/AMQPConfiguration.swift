import AiraCore
import Foundation

/// Where and how to connect. Parsed from an `amqp://user:pass@host:port/vhost` URL, or, for a
/// cluster, one with several nodes: `amqp://user:pass@node1:5672,node2:5672,node3:5672/vhost`.
public struct AMQPConfiguration: Sendable, Hashable {
    /// A broker node to connect to: host and port.
    public typealias Node = HostList.Endpoint

    /// The cluster's nodes. The connection starts at one picked at random (so a fleet of
    /// processes spreads over the cluster) and, when it cannot connect or loses its connection,
    /// moves on to the next; it backs off only after a whole round has failed.
    public var nodes: [Node]
    /// The first node's host (a single-node configuration's host).
    public var host: String {
        get { self.nodes[0].host }
        set { self.nodes[0].host = newValue }
    }
    public var port: Int {
        get { self.nodes[0].port }
        set { self.nodes[0].port = newValue }
    }
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
        self.nodes = [Node(host: host, port: port)]
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
    /// The authority may list several nodes, comma-separated (`host1:5672,host2:5673`; IPv6
    /// addresses in brackets); user, password and vhost are shared by all of them.
    public init(url: String, connectionName: String = "aira") throws {
        let invalid = AMQPError.invalidURL(URLText.redacted(url))
        guard let (nodes, single) = HostList.split(url), !nodes.isEmpty,
              let components = URLComponents(string: single), components.scheme == "amqp",
              let host = components.host, !host.isEmpty else {
            throw invalid
        }
        self.init(connectionName: connectionName)
        var parsed: [Node] = []
        for text in nodes {
            guard let node = HostList.endpoint(text, defaultPort: 5672) else { throw invalid }
            parsed.append(node)
        }
        self.nodes = parsed
        if let u = components.user { self.user = u.removingPercentEncoding ?? u }
        if let p = components.password { self.password = p.removingPercentEncoding ?? p }
        let path = components.percentEncodedPath
        if path.count > 1 {
            let raw = String(path.dropFirst())
            self.vhost = raw.removingPercentEncoding ?? raw
        }
    }
}
