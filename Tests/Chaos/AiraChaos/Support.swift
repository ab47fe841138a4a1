import AiraAMQP
import AiraCore
import AiraMessaging
import AiraPostgres
import AiraWorkload
import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import AsyncHTTPClient
import NIOCore
import NIOHTTP1
import Synchronization

/// Settings every case reads.
let env = EnvironmentReader()
let environment = ProcessInfo.processInfo.environment
let dataDirectory = URL(fileURLWithPath: environment["AIRA_DATA"] ?? LocalRun.root.appendingPathComponent(".data").path)
let database = PostgresClient(configuration: PostgresConfiguration(url: env.string("AIRA_DATABASE_URL", default: "postgres://aira:aira@127.0.0.1:5432/aira"),
                                                                   poolSize: 2))
/// Where the executables are (scripts/chaos sets it).
let binDirectory = environment["AIRA_BIN_DIR"] ?? LocalRun.root.appendingPathComponent(".build/debug").path

/// One row of the report.
struct Outcome {
    var name: String
    var load: String
    var faults: String
    var sent = 0
    var effects = 0
    var lost = 0
    var duplicated = 0
    var serverErrors: Int?
    /// Duplicates the case's guarantee allows (0 but for mail: see killWorker).
    var allowedDuplicates = 0
    var notes: [String] = []
    var failures: [String] = []
    var passed: Bool {
        self.failures.isEmpty && self.lost == 0 && self.duplicated <= self.allowedDuplicates && (self.serverErrors ?? 0) == 0
    }
}

/// Counts up from any task.
final class Counter: Sendable {
    private let value = Atomic<Int>(0)
    var current: Int { self.value.load(ordering: .relaxed) }
    func add(_ n: Int = 1) { self.value.add(n, ordering: .relaxed) }
}

let began = ContinuousClock.now
func seconds(_ d: Duration) -> String {
    String(format: "%.1f s", Double(d.components.seconds) + Double(d.components.attoseconds) / 1e18)
}
func log(_ text: String) {
    FileHandle.standardError.write(Data("[chaos +\(seconds(ContinuousClock.now - began))] \(text)\n".utf8))
}

/// Answers seen, by HTTP status (0: no answer within the time limit).
final class Tally: Sendable {
    private let counts = Mutex<[Int: Int]>([:])
    private let slowest = Mutex<[Int: Duration]>([:])
    func add(_ status: Int, took: Duration) {
        self.counts.withLock { $0[status, default: 0] += 1 }
        self.slowest.withLock { $0[status] = max($0[status] ?? .zero, took) }
    }
    var all: [Int: Int] { self.counts.withLock { $0 } }
    var longest: [Int: Duration] { self.slowest.withLock { $0 } }
    var total: Int { self.all.values.reduce(0, +) }
    /// Answers of 500 and above but the documented 503.
    var serverErrors: Int { self.all.filter { $0.key >= 500 && $0.key != 503 }.values.reduce(0, +) }
    /// "200 ×87 (slowest 14 ms), 503 ×3 (slowest 2 ms)"; 0 is "no answer".
    var summary: String {
        let longest = self.longest
        return self.all.sorted { $0.key < $1.key }.map {
            "\($0.key == 0 ? "no answer" : String($0.key)) ×\($0.value) (slowest \(milliseconds(longest[$0.key] ?? .zero)) ms)"
        }.joined(separator: ", ")
    }
}

func milliseconds(_ d: Duration) -> Int {
    Int((Double(d.components.seconds) * 1000 + Double(d.components.attoseconds) / 1e15).rounded())
}

/// One HTTP answer; status 0 when none came within the time limit (or the connection failed).
struct Answer: Sendable {
    var status: Int
    var body: String
    var headers: HTTPHeaders
    var took: Duration
    var error: String?
    var json: [String: Any]? { (try? JSONSerialization.jsonObject(with: Data(self.body.utf8))) as? [String: Any] }
}

/// A request to a gateway on 127.0.0.1.
func call(_ method: HTTPMethod, port: Int, _ path: String, json: String? = nil, body: [UInt8]? = nil, token: String? = nil,
          headers: [(String, String)] = [], timeout: Duration = .seconds(5)) async -> Answer {
    var request = HTTPClientRequest(url: "http://127.0.0.1:\(port)\(path)")
    request.method = method
    if let json {
        request.headers.add(name: "Content-Type", value: "application/json")
        request.body = .bytes(ByteBuffer(string: json))
    } else if let body {
        request.body = .bytes(ByteBuffer(bytes: body))
    }
    if let token { request.headers.add(name: "Authorization", value: "Bearer \(token)") }
    for (name, value) in headers { request.headers.add(name: name, value: value) }
    let sent = ContinuousClock.now
    do {
        let response = try await HTTPClient.shared.execute(request, timeout: .nanoseconds(Int64(milliseconds(timeout)) * 1_000_000))
        var collected = try await response.body.collect(upTo: 16 << 20)
        return Answer(status: Int(response.status.code), body: collected.readString(length: collected.readableBytes) ?? "",
                      headers: response.headers, took: ContinuousClock.now - sent)
    } catch {
        return Answer(status: 0, body: "", headers: [:], took: ContinuousClock.now - sent, error: "\(error)")
    }
}

/// SIGKILL to the running instance of `service` each time `progress()` passes a share of
/// `total`; the supervisor restarts it. The counts at each kill.
func killRepeatedly(_ service: String, stack: LocalRun, total: Int, at shares: [Double] = [0.25, 0.5, 0.75],
                    progress: @Sendable () -> Int, failures: inout [String]) async throws -> [Int] {
    var atKill: [Int] = []
    for share in shares {
        while progress() < Int(Double(total) * share) { try await Task.sleep(for: .milliseconds(50)) }
        // The instance that runs now (after an earlier kill: the restarted one, once it is back).
        var pid: Int32?
        for _ in 0..<100 {
            if let i = try await stack.instances(service).first, i.alive, !i.queues.isEmpty { pid = i.pid; break }
            try await Task.sleep(for: .milliseconds(100))
        }
        guard let pid else { failures.append("\(service) was not back before kill \(atKill.count + 1)"); break }
        kill(pid, SIGKILL)
        atKill.append(progress())
        log("\(service): SIGKILL \(atKill.count) (pid \(pid)) after \(progress()) of \(total)")
        try await Task.sleep(for: .seconds(3))  // it runs 3 s before the next kill: a fresh crash, not a crash loop
    }
    return atKill
}

/// A user of the stack's (signed up and logged in through the gateway): its id and access token.
func signUpAndLogIn(port: Int, email: String, password: String = "chaos-password-1") async throws -> (id: String, token: String) {
    let signup = await call(.POST, port: port, "/api/auth/signup", json: #"{"email":"\#(email)","password":"\#(password)"}"#, timeout: .seconds(30))
    guard signup.status == 201, let id = signup.json?["userId"] as? String else {
        throw ChaosError("signup of \(email): \(signup.status) \(signup.body) \(signup.error ?? "")")
    }
    let login = await call(.POST, port: port, "/api/auth/login", json: #"{"email":"\#(email)","password":"\#(password)"}"#, timeout: .seconds(30))
    guard login.status == 200, let token = login.json?["accessToken"] as? String else {
        throw ChaosError("login of \(email): \(login.status) \(login.body)")
    }
    return (id, token)
}

/// Publishes work 0..<count at `perSecond`, each confirmed before the next. A publish the broker
/// did not confirm (it is down) is tried again, as a producer that must not lose work does:
/// `confirmed` counts work the broker took responsibility for.
func stream(_ work: Workload, count: Int, perSecond: Int, stack: LocalRun, videos: [UUID], confirmed: Counter, retried: Counter) async throws {
    let connection = try await stack.connect()
    defer { Task { await connection.close() } }
    var publisher = try await MessagePublisher.open(on: connection)
    let start = ContinuousClock.now
    for i in 0..<count {
        let giveUp = ContinuousClock.now + .seconds(120)
        while true {
            do {
                try await work.publish(i, on: publisher, videos: videos)
                break
            } catch {
                guard ContinuousClock.now < giveUp else { throw error }
                retried.add()
                try await Task.sleep(for: .milliseconds(200))
                if let reopened = try? await MessagePublisher.open(on: connection) { publisher = reopened }
            }
        }
        confirmed.add()
        let due = start + .milliseconds(i * 1000 / perSecond)
        if ContinuousClock.now < due { try await Task.sleep(until: due) }
    }
}

/// Waits until `count` pieces of work have their effect (or `timeout`), and counts them.
func settle(_ work: Workload, count: Int, timeout: Duration) async throws -> Workload.Effects {
    let deadline = ContinuousClock.now + timeout
    var effects = try await work.effects()
    while effects.distinct < count && ContinuousClock.now < deadline {
        try await Task.sleep(for: .milliseconds(500))
        effects = try await work.effects()
    }
    // A moment more: a duplicate lands after its first copy.
    try await Task.sleep(for: .seconds(2))
    return try await work.effects()
}

/// Runs `body` on a stack of its own, stopped and removed (vhost, folders) afterwards, whatever happens.
func withStack(_ name: String, _ body: (LocalRun) async throws -> Outcome) async throws -> Outcome {
    let directory = dataDirectory.appendingPathComponent("chaos/\(name)")
    try? FileManager.default.removeItem(at: directory)
    let stack = try await LocalRun(prefix: "aira-chaos", environment: environment, directory: directory)
    // Each kill is the instance's first crash in a row once it has run 3 s: restarted after 1 s,
    // so the next kill lands while the stream still runs.
    stack.extraEnvironment["AIRA_RUN_STABLE_AFTER"] = "3s"
    do {
        let outcome = try await body(stack)
        await stack.tearDown()
        return outcome
    } catch {
        log("failed: \(error); supervisor log:\n\(stack.supervisorLog.suffix(2000))")
        await stack.tearDown()
        throw error
    }
}

struct ChaosError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}


extension LocalRun {
    /// `scripts/run --detach --only SERVICES`, ready when it returns; the output's tail in the
    /// error when something did not start.
    func start(_ services: String) async throws {
        let up = try await self.run(["--detach", "--only", services])
        guard up.status == 0 else { throw ChaosError("\(services) did not start:\n\(up.output.suffix(2000))") }
    }
}
