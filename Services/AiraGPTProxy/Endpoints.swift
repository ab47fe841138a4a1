import AiraCore
import Foundation

/// One OpenAI-compatible server the proxy may send a question to (a provider, or another key
/// or region of one): `AIRA_GPT_UPSTREAMS`, or the single one of `AIRA_GPT_UPSTREAM_URL`.
struct UpstreamEndpoint: Sendable, Hashable, Decodable {
    /// Names it in logs, metrics (`upstream` label) and its circuit breaker's Redis keys.
    var name: String
    /// The base URL, without `/v1`.
    var url: String
    var apiKey: String?
    /// The models it serves; empty: every model.
    var models: [String] = []
    /// Its share of the questions among endpoints of the same priority.
    var weight: Int = 1
    /// Lower first: an endpoint is asked only when every endpoint of a lower priority that
    /// serves the model has failed or has its circuit open.
    var priority: Int = 0

    func serves(_ model: String) -> Bool { self.models.isEmpty || self.models.contains(model) }

    enum CodingKeys: String, CodingKey { case name, url, apiKey, apiKeyEnv, models, weight, priority }

    init(name: String, url: String, apiKey: String? = nil, models: [String] = [], weight: Int = 1, priority: Int = 0) {
        self.name = name
        self.url = url
        self.apiKey = apiKey
        self.models = models
        self.weight = weight
        self.priority = priority
    }

    /// `apiKeyEnv` names the variable holding the key (a Kubernetes Secret's, say); the decoder's
    /// `userInfo[.environment]` supplies the environment.
    init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        self.name = try c.decode(String.self, forKey: .name)
        self.url = try c.decode(String.self, forKey: .url).trimmingCharacters(in: ["/"])
        self.models = try c.decodeIfPresent([String].self, forKey: .models) ?? []
        self.weight = try c.decodeIfPresent(Int.self, forKey: .weight) ?? 1
        self.priority = try c.decodeIfPresent(Int.self, forKey: .priority) ?? 0
        self.apiKey = try c.decodeIfPresent(String.self, forKey: .apiKey)
        if let variable = try c.decodeIfPresent(String.self, forKey: .apiKeyEnv) {
            let environment = decoder.userInfo[.environment] as? EnvironmentReader
            guard let key = environment?.optionalString(variable), !key.isEmpty else {
                throw DecodingError.dataCorruptedError(forKey: .apiKeyEnv, in: c, debugDescription: "\(variable) is not set")
            }
            self.apiKey = key
        }
    }

    /// `AIRA_GPT_UPSTREAMS`: a JSON array of `{name, url, apiKey | apiKeyEnv, models, weight, priority}`.
    /// Nil with the reason when it is not valid.
    static func parse(_ text: String, environment: EnvironmentReader) -> Result<[UpstreamEndpoint], ParseError> {
        let decoder = JSONDecoder()
        decoder.userInfo[.environment] = environment
        let endpoints: [UpstreamEndpoint]
        do {
            endpoints = try decoder.decode([UpstreamEndpoint].self, from: Data(text.utf8))
        } catch let error as DecodingError {
            return .failure(ParseError(reason: Self.describe(error)))
        } catch {
            return .failure(ParseError(reason: "\(error)"))
        }
        guard !endpoints.isEmpty else { return .failure(ParseError(reason: "no upstream")) }
        var names = Set<String>()
        for e in endpoints {
            guard (1...40).contains(e.name.count), e.name.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "-" || $0 == "_") }) else {
                return .failure(ParseError(reason: "name '\(e.name)': 1–40 letters, digits, '-' or '_'"))
            }
            guard names.insert(e.name).inserted else { return .failure(ParseError(reason: "the name '\(e.name)' is used twice")) }
            guard e.url.hasPrefix("http://") || e.url.hasPrefix("https://") else {
                return .failure(ParseError(reason: "\(e.name): url must start with http:// or https://"))
            }
            guard (1...1000).contains(e.weight) else { return .failure(ParseError(reason: "\(e.name): weight 1–1000")) }
            guard (0...100).contains(e.priority) else { return .failure(ParseError(reason: "\(e.name): priority 0–100")) }
        }
        return .success(endpoints)
    }

    struct ParseError: Error { var reason: String }

    private static func describe(_ error: DecodingError) -> String {
        switch error {
        case .dataCorrupted(let c), .keyNotFound(_, let c), .typeMismatch(_, let c), .valueNotFound(_, let c):
            let path = c.codingPath.map { $0.intValue.map { "[\($0)]" } ?? $0.stringValue }.joined(separator: ".")
            if case .keyNotFound(let key, _) = error { return "\(path.isEmpty ? "" : path + ": ")missing '\(key.stringValue)'" }
            return "\(path.isEmpty ? "" : path + ": ")\(c.debugDescription)"
        @unknown default:
            return "\(error)"
        }
    }

    /// The order to try `endpoints` in for `model`: by priority, and within a priority in a
    /// random order weighted by `weight` (the first is chosen with probability weight / total,
    /// the next among the rest the same way, ...).
    static func order(_ endpoints: [UpstreamEndpoint], model: String, using rng: inout some RandomNumberGenerator) -> [UpstreamEndpoint] {
        let serving = endpoints.filter { $0.serves(model) }
        var out: [UpstreamEndpoint] = []
        out.reserveCapacity(serving.count)
        for priority in Set(serving.map(\.priority)).sorted() {
            var group = serving.filter { $0.priority == priority }
            while !group.isEmpty {
                var pick = Int.random(in: 0..<group.reduce(0) { $0 + $1.weight }, using: &rng)
                let index = group.firstIndex { e in
                    if pick < e.weight { return true }
                    pick -= e.weight
                    return false
                } ?? 0
                out.append(group.remove(at: index))
            }
        }
        return out
    }
}

extension CodingUserInfoKey {
    static let environment = CodingUserInfoKey(rawValue: "aira.environment")!
}
