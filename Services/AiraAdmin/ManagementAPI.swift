import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// RabbitMQ's management HTTP API, used only where AMQP has no answer: listing queues and
/// their unacknowledged counts. Optional: every command works without it.
struct ManagementAPI {
    let base: URL
    let authorization: String?

    /// `http://user:pass@host:15672` (credentials in the URL, as an operator writes them).
    init(url: String) throws {
        guard var components = URLComponents(string: url), let scheme = components.scheme, ["http", "https"].contains(scheme) else {
            throw CLIError("--management-url \(url): expected http://user:pass@host:15672")
        }
        if let user = components.user {
            let credentials = "\(user.removingPercentEncoding ?? user):\(components.password?.removingPercentEncoding ?? "")"
            self.authorization = "Basic " + Data(credentials.utf8).base64EncodedString()
        } else {
            self.authorization = nil
        }
        components.user = nil
        components.password = nil
        guard let base = components.url else { throw CLIError("--management-url \(url): not a URL") }
        self.base = base
    }

    struct QueueInfo: Decodable {
        var name: String
        var messages_ready: Int?
        var messages_unacknowledged: Int?
        var consumers: Int?
    }

    func queues(vhost: String) async throws -> [QueueInfo] {
        let encoded = vhost.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? vhost
        // Built as text: appendingPathComponent would encode the vhost's % again.
        let root = self.base.absoluteString.hasSuffix("/") ? String(self.base.absoluteString.dropLast()) : self.base.absoluteString
        guard let url = URL(string: "\(root)/api/queues/\(encoded)") else { throw CLIError("management API: bad URL") }
        var request = URLRequest(url: url)
        request.timeoutInterval = 5
        if let authorization { request.setValue(authorization, forHTTPHeaderField: "Authorization") }
        let (data, response) = try await URLSession.shared.data(for: request)
        guard let http = response as? HTTPURLResponse else { throw CLIError("management API: no HTTP response") }
        guard http.statusCode == 200 else { throw CLIError("management API at \(self.base): HTTP \(http.statusCode)") }
        return try JSONDecoder().decode([QueueInfo].self, from: data)
    }
}
