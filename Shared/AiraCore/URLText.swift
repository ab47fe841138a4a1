/// Connection URLs in errors and logs: never with their password.
public enum URLText {
    /// `scheme://user:secret@host/…` → `scheme://user:***@host/…`. Text that is not a URL with
    /// credentials is returned as it is, except that anything between `://` and a later `@` that
    /// holds a `:` is treated as user:password (a URL too broken to parse may still carry one).
    public static func redacted(_ url: String) -> String {
        guard let schemeEnd = url.range(of: "://") else { return url }
        let rest = url[schemeEnd.upperBound...]
        let authorityEnd = rest.firstIndex(where: { $0 == "/" || $0 == "?" || $0 == "#" }) ?? rest.endIndex
        let authority = rest[..<authorityEnd]
        guard let at = authority.lastIndex(of: "@") else { return url }
        let userInfo = authority[..<at]
        guard let colon = userInfo.firstIndex(of: ":") else { return url }
        return String(url[..<colon]) + ":***" + String(url[at...])
    }
}

/// A URL whose authority lists several servers, comma-separated (`amqp://u:p@h1:5672,h2,[::1]:5675/vhost`,
/// `redis-sentinel://s1:26379,s2/0#primary`): the list, and the URL with its first server only.
public enum HostList {
    public struct Endpoint: Sendable, Hashable, CustomStringConvertible {
        public var host: String
        public var port: Int
        public init(host: String, port: Int) {
            self.host = host
            self.port = port
        }
        public var description: String { self.host.contains(":") ? "[\(self.host)]:\(self.port)" : "\(self.host):\(self.port)" }
    }

    /// The server list of a URL's authority, and the URL with only the first server (for the rest
    /// of the parsing by `URLComponents`). Nil when the URL has no `://`.
    public static func split(_ url: String) -> (hosts: [String], single: String)? {
        guard let schemeEnd = url.range(of: "://") else { return nil }
        let rest = url[schemeEnd.upperBound...]
        let authorityEnd = rest.firstIndex(where: { $0 == "/" || $0 == "?" || $0 == "#" }) ?? rest.endIndex
        let authority = rest[..<authorityEnd]
        let hostsStart = authority.lastIndex(of: "@").map { authority.index(after: $0) } ?? authority.startIndex
        let hosts = authority[hostsStart...].split(separator: ",", omittingEmptySubsequences: false).map(String.init)
        let single = String(url[..<hostsStart]) + (hosts.first ?? "") + String(url[authorityEnd...])
        return (hosts, single)
    }

    /// `host`, `host:port`, `[v6]` or `[v6]:port`; nil when malformed.
    public static func endpoint(_ text: String, defaultPort: Int) -> Endpoint? {
        var host = Substring(text)
        var port = defaultPort
        if host.hasPrefix("[") {
            guard let close = host.firstIndex(of: "]") else { return nil }
            let after = host[host.index(after: close)...]
            host = host[host.index(after: host.startIndex)..<close]
            if !after.isEmpty {
                guard after.hasPrefix(":"), let p = Int(after.dropFirst()) else { return nil }
                port = p
            }
        } else if let colon = host.lastIndex(of: ":") {
            guard let p = Int(host[host.index(after: colon)...]) else { return nil }
            port = p
            host = host[..<colon]
        }
        guard !host.isEmpty, (1...65_535).contains(port), !host.contains(where: { $0 == " " || $0 == "@" || $0 == "/" }) else {
            return nil
        }
        return Endpoint(host: String(host), port: port)
    }
}
