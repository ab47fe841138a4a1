import AiraAccounts
import AiraAMQP
import AiraMessaging
import AiraPostgres
import AiraTokens
import AsyncHTTPClient
import Foundation
import Synchronization
import NIOCore
import NIOHTTP1
import Testing

/// aira-auth and aira-gateway running as processes, as in production, against the test
/// servers, with a signing key made for the test. bcrypt cost 4 keeps tests fast.
final class ServiceStack: @unchecked Sendable {
    let key: TokenKey
    let environment: [String: String]
    private(set) var auth: [WorkerProcess] = []
    private(set) var gateways: [(process: WorkerProcess, port: Int)] = []
    private(set) var proxies: [WorkerProcess] = []
    /// Each proxy's /metrics port.
    private(set) var proxyPorts: [Int] = []
    private(set) var mock: (process: WorkerProcess, port: Int)?
    /// Other executables the test started (workers), with their /metrics port.
    private(set) var workers: [(process: WorkerProcess, port: Int)] = []
    /// Each stack has its own answer-cache version, so cached answers of other tests never match.
    let cacheVersion = "test-\(UUID().uuidString.prefix(8).lowercased())"
    /// A client address of this test's own (the gateways trust X-Forwarded-For), so rate limits
    /// and throttling counters of different tests never meet.
    let clientIP = "10.\(Int.random(in: 0...255)).\(Int.random(in: 0...255)).\(Int.random(in: 1...254))"

    private init(key: TokenKey, environment: [String: String]) {
        self.key = key
        self.environment = environment
    }

    /// Starts `auth` auth processes and `gateways` gateways and waits until a request can
    /// make the round trip through each gateway to aira-auth and back.
    static func start(auth: Int = 1, gateways: Int = 1, gptProxies: Int = 0, environment extra: [String: String] = [:],
                      proxyEnvironment: [String: String] = [:], gatewayEnvironment: [String: String] = [:]) async throws -> ServiceStack {
        try await Self.migrate()
        let key = try TokenKey.generate(kid: "test-\(UUID().uuidString.prefix(6).lowercased())")
        var env = [
            "AIRA_JWT_SIGNING_KEY": key.signingText!, "AIRA_JWT_PUBLIC_KEYS": key.verifyingText,
            "AIRA_BCRYPT_COST": "4", "AIRA_BCRYPT_THREADS": "2", "AIRA_TRUST_FORWARDED_FOR": "true",
            "AIRA_SHUTDOWN_TIMEOUT": "3s",
            // The primary only, unless a test asks for the replica (PostsTests): most tests check
            // what another user sees right after a change, which a replica shows a moment later.
            "AIRA_DATABASE_READ_URL": "",
            // Tests make many auth calls from one address; the rate-limit test sets its own limits.
            "AIRA_RATE_LIMIT_AUTH": "1000/1m", "AIRA_RATE_LIMIT_AUTH_IP": "1000/1m",
            "AIRA_RATE_LIMIT_GPT": "1000/1m", "AIRA_RATE_LIMIT_GPT_IP": "1000/1m",
        ]
        env.merge(extra) { $1 }
        let stack = ServiceStack(key: key, environment: env)
        for _ in 0..<auth { try stack.startAuth() }
        if gptProxies > 0 {
            let port = try freePort()
            stack.mock = (try WorkerProcess(executable: "aira-mock-llm", name: "mock", environment: env.merging(["AIRA_HTTP_PORT": "\(port)"]) { $1 }),
                          port)
            for i in 0..<gptProxies { try stack.startProxy(i, environment: proxyEnvironment) }
        }
        for i in 0..<gateways {
            let port = try freePort()
            stack.gateways.append((try WorkerProcess(executable: "aira-gateway", name: "gw\(i)",
                                                     environment: env.merging(gatewayEnvironment) { $1 }.merging(["AIRA_HTTP_PORT": "\(port)"]) { $1 }),
                                   port))
        }
        // Probes from an address of this stack's own: rate-limit counters live in the shared
        // Redis, and one address for every stack's probes could run out of its budget.
        let probeIP = "10.254.\(Int.random(in: 0...255)).\(Int.random(in: 1...254))"
        for i in 0..<gateways {
            let seen = Mutex<[Int?]>([])
            let reached = await eventually(timeout: .seconds(30), every: .milliseconds(100)) {
                guard auth > 0 else { return (try? await stack.call("GET", "/health/ready", gateway: i))?.status == 200 }
                // Both auth queues answer with auth's own errors (not 503/504): the path is up.
                let a = try? await stack.call("POST", "/api/auth/verify", json: ["token": "ev_nothing"], gateway: i, ip: probeIP)
                let b = try? await stack.call("POST", "/api/auth/signup", json: ["email": "not-an-email", "password": "x"],
                                              gateway: i, ip: probeIP)
                seen.withLock { $0 = [a?.status, b?.status] }
                return a?.status == 401 && b?.status == 400
            }
            if !reached {
                Issue.record("last probe answers (verify, signup): \(seen.withLock { $0 })")
                let logs = (stack.auth.map(\.log) + stack.gateways.map(\.process.log)).joined(separator: "\n---\n")
                await stack.stop()
                Issue.record("service stack did not come up:\n\(logs.suffix(4000))")
                throw StackError.notUp
            }
        }
        if gptProxies > 0 {
            // Every gateway reaches a proxy, which reaches the mock; then the mock's counters start at zero.
            let probe = try await stack.signup("probe")
            let session = try await stack.login(probe.email, probe.password)
            for i in 0..<gateways {
                let answered = await eventually(timeout: .seconds(30), every: .milliseconds(100)) {
                    // A proxy answered: with the mock, or (tests with an unreachable upstream or budgets
                    // without Redis) with its 503.
                    let r = try? await stack.call("POST", "/api/gpt/qna", json: ["question": "probe"], token: session.access,
                                                  headers: ["X-Aira-Cache": "bypass"], gateway: i)
                    return r?.status == 200 || r?.errorMessage?.contains("unreachable") == true
                        || r?.errorMessage?.contains("circuit open") == true || r?.errorCode == "budget_unavailable"
                }
                if !answered {
                    let logs = (stack.proxies.map(\.log) + [stack.mock?.process.log ?? ""]).joined(separator: "\n---\n")
                    await stack.stop()
                    Issue.record("gpt path did not come up:\n\(logs.suffix(4000))")
                    throw StackError.notUp
                }
            }
            try await stack.resetMock()
        }
        return stack
    }

    func startProxy(_ i: Int, environment: [String: String] = [:]) throws {
        let port = try freePort()
        var env = self.environment.merging(["AIRA_GPT_UPSTREAM_URL": "http://127.0.0.1:\(self.mock?.port ?? 0)",
                                            "AIRA_GPT_CACHE_VERSION": self.cacheVersion, "AIRA_HTTP_PORT": "\(port)"]) { $1 }
        env.merge(environment) { $1 }
        self.proxies.append(try WorkerProcess(executable: "aira-gpt-proxy", name: "gpt\(i)", environment: env))
        self.proxyPorts.append(port)
    }

    /// A counter from a proxy's /metrics (0 when absent), e.g. `aira_messages_received_total{queue="gpt.ask"}`.
    func proxyCounter(_ i: Int, _ series: String) async throws -> Double {
        try await metric(port: self.proxyPorts[i], series)
    }

    /// The /metrics of the process on `port`.
    func metrics(port: Int) async throws -> String {
        let response = try await HTTPClient.shared.execute(HTTPClientRequest(url: "http://127.0.0.1:\(port)/metrics"),
                                                           timeout: .seconds(5))
        return String(buffer: try await response.body.collect(upTo: 1 << 20))
    }

    /// A series' value from the /metrics of the process on `port` (0 when absent).
    func metric(port: Int, _ series: String) async throws -> Double {
        let text = try await self.metrics(port: port)
        let line = text.split(separator: "\n").first { $0.hasPrefix(series + " ") }
        return line.flatMap { Double($0.split(separator: " ").last ?? "") } ?? 0
    }

    // MARK: - The mock LLM

    struct MockStats: Decodable { var calls: Int; var streams: Int; var failed: Int }

    func mockStats() async throws -> MockStats { try await Self.mockStats(port: self.mock!.port) }

    func resetMock() async throws { try await Self.resetMock(port: self.mock!.port) }

    /// The body of a GET to `url`.
    static func getText(_ url: String) async throws -> String {
        let response = try await HTTPClient.shared.execute(HTTPClientRequest(url: url), timeout: .seconds(5))
        return String(buffer: try await response.body.collect(upTo: 1 << 20))
    }

    /// The counters of the mock LLM on `port` (the stack's, or another the test started).
    static func mockStats(port: Int) async throws -> MockStats {
        let response = try await HTTPClient.shared.execute(HTTPClientRequest(url: "http://127.0.0.1:\(port)/mock/stats"),
                                                           timeout: .seconds(5))
        return try JSONDecoder().decode(MockStats.self, from: Data(try await response.body.collect(upTo: 1 << 16).readableBytesView))
    }

    /// Clears the counters and every failure of the mock LLM on `port`.
    static func resetMock(port: Int) async throws {
        var request = HTTPClientRequest(url: "http://127.0.0.1:\(port)/mock/reset")
        request.method = .POST
        _ = try await HTTPClient.shared.execute(request, timeout: .seconds(5))
    }

    /// The next `count` upstream calls fail with `mode` (429, 500, hang, truncate, empty, refuse).
    func failMock(_ mode: String, count: Int) async throws {
        var request = HTTPClientRequest(url: "http://127.0.0.1:\(self.mock!.port)/mock/fail")
        request.method = .POST
        request.body = .bytes(ByteBuffer(string: #"{"mode":"\#(mode)","count":\#(count)}"#))
        _ = try await HTTPClient.shared.execute(request, timeout: .seconds(5))
    }

    enum StackError: Error { case notUp }

    func startAuth(environment: [String: String] = [:]) throws {
        self.auth.append(try WorkerProcess(executable: "aira-auth", name: "auth\(self.auth.count)",
                                           environment: self.environment.merging(environment) { $1 }))
    }

    /// SIGTERM to every auth process, waiting for them to exit.
    func stopAuth() async {
        for p in self.auth where p.isRunning { p.terminate() }
        for p in self.auth { _ = await p.waitForExit(timeout: .seconds(15)) }
    }

    /// Starts `executable` with the stack's environment plus `environment`; stopped with the stack.
    @discardableResult
    func startWorker(_ executable: String, name: String, environment: [String: String] = [:]) throws -> (process: WorkerProcess, port: Int) {
        let port = try freePort()
        let env = self.environment.merging(environment) { $1 }.merging(["AIRA_HTTP_PORT": "\(port)"]) { $1 }
        let worker = (try WorkerProcess(executable: executable, name: name, environment: env), port)
        self.workers.append(worker)
        return worker
    }

    func stop() async {
        let all = self.auth + self.gateways.map(\.process) + self.proxies + (self.mock.map { [$0.process] } ?? []) + self.workers.map(\.process)
        for p in all where p.isRunning { p.terminate() }
        for p in all {
            if await p.waitForExit(timeout: .seconds(15)) == nil { p.kill9() }
        }
    }

    /// Runs `body` with a stack, always stopping it.
    static func with(auth: Int = 1, gateways: Int = 1, gptProxies: Int = 0, environment: [String: String] = [:],
                     proxyEnvironment: [String: String] = [:], gatewayEnvironment: [String: String] = [:],
                     _ body: (ServiceStack) async throws -> Void) async throws {
        let stack = try await Self.start(auth: auth, gateways: gateways, gptProxies: gptProxies, environment: environment,
                                         proxyEnvironment: proxyEnvironment, gatewayEnvironment: gatewayEnvironment)
        do {
            try await body(stack)
        } catch {
            await stack.stop()
            throw error
        }
        await stack.stop()
    }

    // MARK: - HTTP

    struct Reply: CustomStringConvertible {
        var status: Int
        var headers: HTTPHeaders
        var body: [UInt8]
        var json: [String: Any] { (try? JSONSerialization.jsonObject(with: Data(self.body))) as? [String: Any] ?? [:] }
        var errorCode: String? { (self.json["error"] as? [String: Any])?["code"] as? String }
        var errorMessage: String? { (self.json["error"] as? [String: Any])?["message"] as? String }
        subscript(key: String) -> String? { self.json[key] as? String }
        var description: String { "\(self.status) \(String(decoding: self.body, as: UTF8.self))" }
    }

    func call(_ method: String, _ path: String, json: [String: Any]? = nil, rawBody: [UInt8]? = nil,
              contentType: String? = nil, token: String? = nil, headers extra: [String: String] = [:],
              gateway: Int = 0, ip: String? = nil) async throws -> Reply {
        var request = HTTPClientRequest(url: "http://127.0.0.1:\(self.gateways[gateway].port)\(path)")
        request.method = HTTPMethod(rawValue: method)
        request.headers.add(name: "X-Forwarded-For", value: ip ?? self.clientIP)
        if let token { request.headers.add(name: "Authorization", value: "Bearer \(token)") }
        if let json {
            request.headers.add(name: "Content-Type", value: contentType ?? "application/json")
            request.body = .bytes(ByteBuffer(bytes: Array(try JSONSerialization.data(withJSONObject: json))))
        } else if let rawBody {
            if let contentType { request.headers.add(name: "Content-Type", value: contentType) }
            request.body = .bytes(ByteBuffer(bytes: rawBody))
        }
        for (k, v) in extra { request.headers.add(name: k, value: v) }
        let response = try await HTTPClient.shared.execute(request, timeout: .seconds(30))
        let body = try await response.body.collect(upTo: 1 << 20)
        return Reply(status: Int(response.status.code), headers: response.headers, body: Array(body.readableBytesView))
    }

    // MARK: - Users

    /// Signs up a new user through the API; returns (email, password).
    func signup(_ prefix: String = "user") async throws -> (email: String, password: String) {
        let email = "\(prefix)-\(UUID().uuidString.prefix(10).lowercased())@example.com"
        let password = "pw-\(UUID().uuidString.prefix(12))"
        let reply = try await self.call("POST", "/api/auth/signup", json: ["email": email, "password": password])
        try #require(reply.status == 201, "signup: \(reply)")
        return (email, password)
    }

    struct Session {
        var access: String
        var refresh: String
        var userID: String
    }

    func login(_ email: String, _ password: String, ip: String? = nil) async throws -> Session {
        let reply = try await self.call("POST", "/api/auth/login", json: ["email": email, "password": password], ip: ip)
        try #require(reply.status == 200, "login: \(reply)")
        return try Self.session(reply)
    }

    static func session(_ reply: Reply) throws -> Session {
        let json = reply.json
        return Session(access: try #require(json["accessToken"] as? String), refresh: try #require(json["refreshToken"] as? String),
                       userID: try #require((json["user"] as? [String: Any])?["id"] as? String))
    }

    /// Creates an ADMIN directly in PostgreSQL, as `aira-admin user create-admin` does.
    func createAdmin() async throws -> (email: String, password: String) {
        let email = "admin-\(UUID().uuidString.prefix(10).lowercased())@example.com"
        let password = "admin-pw-\(UUID().uuidString.prefix(8))"
        let db = PostgresClient(configuration: PostgresConfiguration(url: TestServers.databaseURL!, poolSize: 1))
        defer { Task { await db.shutdown() } }
        try await AccountStore(database: db).create(email: email, passwordHash: try await PasswordHasher(cost: 4).hash(password),
                                                    role: .admin, verified: true)
        return (email, password)
    }

    static func migrate() async throws {
        // An index built over a seeded million posts takes minutes.
        let db = PostgresClient(configuration: PostgresConfiguration(url: TestServers.databaseURL!, poolSize: 1, queryTimeout: .seconds(1800)))
        defer { Task { await db.shutdown() } }
        let dir = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("Shared/Migrations")
        _ = try await PostgresMigrator(client: db, logger: TestServers.logger).migrate(try Migration.load(from: dir))
    }
}

/// A TCP port nothing listens on right now.
func freePort() throws -> Int { try ListeningSocket().port }

/// A TCP socket listening on 127.0.0.1 at a port of its own, until deinit.
final class ListeningSocket: @unchecked Sendable {
    let fd: Int32
    let port: Int

    init() throws {
        self.fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        let fd = self.fd
        let ok = withUnsafeMutablePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, len) == 0 && listen(fd, 8) == 0 && getsockname(fd, $0, &len) == 0 }
        }
        guard ok else { close(fd); throw POSIXError(.EADDRINUSE) }
        self.port = Int(UInt16(bigEndian: addr.sin_port))
    }

    deinit { close(self.fd) }
}
