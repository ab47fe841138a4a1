// `scripts/run` driven as an operator drives it, on a stack of its own: used by the operator-loop
// tests and by the fault suite (aira-chaos).
import AiraAMQP
import AiraMessaging
import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import Logging

/// `scripts/run` as an operator uses it (docs/operations.md), on a stack of the test's own: a
/// RabbitMQ vhost, ports, run, log, mail and media folders of its own, the executables scripts/test
/// built (`AIRA_BIN_DIR`).
public final class LocalRun: @unchecked Sendable {
    public let vhost: String
    public let directory: URL
    public let portBase: Int
    public let amqpURL: String
    /// The environment every `scripts/run` gets, before the stack's own variables.
    public let baseEnvironment: [String: String]
    /// Variables of the caller's for every command (e.g. `AIRA_SHUTDOWN_TIMEOUT`).
    public var extraEnvironment: [String: String] = [:]
    private let management: (base: String, authorization: String)

    /// A stack named `<prefix>-<random>`: its vhost (created here), and folders under `directory`
    /// (default: a temporary one).
    public init(prefix: String = "aira-ops", environment: [String: String] = ProcessInfo.processInfo.environment,
                directory: URL? = nil) async throws {
        let name = "\(prefix)-\(UUID().uuidString.prefix(8).lowercased())"
        self.vhost = name
        self.baseEnvironment = environment
        self.directory = directory ?? FileManager.default.temporaryDirectory.appendingPathComponent(name)
        try FileManager.default.createDirectory(at: self.directory, withIntermediateDirectories: true)
        self.portBase = try Self.freePortBase()
        let base = environment["AIRA_AMQP_URL"] ?? "amqp://guest:guest@127.0.0.1:5672/"
        self.amqpURL = (base.hasSuffix("/") ? base : base + "/") + self.vhost
        let url = URLComponents(string: environment["AIRA_RABBITMQ_MANAGEMENT_URL"] ?? "http://guest:guest@127.0.0.1:15672")!
        self.management = ("http://\(url.host ?? "127.0.0.1"):\(url.port ?? 15672)",
                           "Basic " + Data("\(url.user ?? "guest"):\(url.password ?? "guest")".utf8).base64EncodedString())
        try await self.managementCall("PUT", "/api/vhosts/\(self.vhost)")
        try await self.managementCall("PUT", "/api/permissions/\(self.vhost)/guest", body: #"{"configure":".*","write":".*","read":".*"}"#)
    }

    /// A base with the ports a stack uses (base+0…+10 and the extra instances' base+20…+25) free.
    static func freePortBase() throws -> Int {
        for _ in 0..<50 {
            let base = Int.random(in: 100...190) * 200
            let ports = Array(base...base + 10) + Array(base + 20...base + 25)
            if ports.allSatisfy(portIsFree) { return base }
        }
        throw RunError.noPorts
    }

    public static func portIsFree(_ port: Int) -> Bool {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        addr.sin_port = UInt16(port).bigEndian
        return withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0 }
        }
    }

    public enum RunError: Error { case noPorts, management(String), status(String) }

    @discardableResult
    public func managementCall(_ method: String, _ path: String, body: String? = nil) async throws -> Data {
        var request = URLRequest(url: URL(string: self.management.base + path)!)
        request.httpMethod = method
        request.setValue(self.management.authorization, forHTTPHeaderField: "Authorization")
        request.setValue("application/json", forHTTPHeaderField: "Content-Type")
        request.httpBody = body.map { Data($0.utf8) }
        let (data, response) = try await URLSession.shared.data(for: request)
        let status = (response as? HTTPURLResponse)?.statusCode ?? 0
        guard (200..<300).contains(status) else { throw RunError.management("\(method) \(path): \(status) \(String(decoding: data, as: UTF8.self))") }
        return data
    }

    public var environment: [String: String] {
        var env = self.baseEnvironment.merging(self.extraEnvironment) { $1 }
        env["AIRA_AMQP_URL"] = self.amqpURL
        env["AIRA_RUN_DIR"] = self.directory.appendingPathComponent("run").path
        env["AIRA_LOG_DIR"] = self.directory.appendingPathComponent("logs").path
        env["AIRA_RUN_MAIL_DIR"] = self.directory.appendingPathComponent("mail").path
        env["AIRA_MEDIA_DIR"] = self.directory.appendingPathComponent("media").path
        env["AIRA_RUN_PORT_BASE"] = "\(self.portBase)"
        env["AIRA_RUN_SMTP_PORT"] = "\(self.portBase + 9)"
        env["AIRA_SHUTDOWN_TIMEOUT"] = "5s"
        env["AIRA_LOG_LEVEL"] = "notice"
        return env
    }

    public var supervisorLog: String {
        (try? String(contentsOf: self.directory.appendingPathComponent("logs/supervisor.log"), encoding: .utf8)) ?? ""
    }

    /// Runs `scripts/run ARGS` to its end (within `timeout`); its exit status and output.
    public func run(_ arguments: [String], environment extra: [String: String] = [:], timeout: Duration = .seconds(180)) async throws -> (status: Int32, output: String) {
        try await self.script("run", arguments, environment: extra, timeout: timeout)
    }

    /// The checkout this stack's scripts come from.
    public static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent()

    /// Runs `scripts/NAME ARGS` with the stack's environment to its end (within `timeout`).
    public func script(_ name: String, _ arguments: [String], environment extra: [String: String] = [:],
                       timeout: Duration = .seconds(180)) async throws -> (status: Int32, output: String) {
        let child = try self.spawn("/bin/bash", [Self.root.appendingPathComponent("scripts/\(name)").path] + arguments, environment: extra)
        return try await child.wait(timeout: timeout)
    }

    /// A child process with the stack's environment (plus `extra`), its output (stdout and
    /// stderr) to a file of the stack's; `wait` for its end, or kill it first.
    public struct Child: Sendable {
        public let pid: pid_t
        public let output: URL

        /// Waits for the exit (SIGKILL after `timeout`): its status (128 + signal when killed)
        /// and its output.
        public func wait(timeout: Duration = .seconds(180)) async throws -> (status: Int32, output: String) {
            let deadline = ContinuousClock.now + timeout
            var status: Int32 = 0
            while waitpid(self.pid, &status, WNOHANG) == 0 {
                if ContinuousClock.now > deadline {
                    kill(self.pid, SIGKILL)
                    waitpid(self.pid, &status, 0)
                    break
                }
                try await Task.sleep(for: .milliseconds(50))
            }
            let exitStatus: Int32 = (status & 0x7f) == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
            return (exitStatus, (try? String(contentsOf: self.output, encoding: .utf8)) ?? "")
        }
    }

    public func spawn(_ executable: String, _ arguments: [String], environment extra: [String: String] = [:]) throws -> Child {
        let output = self.directory.appendingPathComponent("out-\(UUID().uuidString.prefix(6)).txt")
        return try Self.spawn(executable, arguments, environment: self.environment.merging(extra) { $1 }, output: output)
    }

    /// A child process with exactly `environment`, its standard output and error to `output`
    /// (created), its standard input /dev/null; no stack needed.
    public static func spawn(_ executable: String, _ arguments: [String], environment: [String: String], output: URL) throws -> Child {
        FileManager.default.createFile(atPath: output.path, contents: nil)
        let handle = try FileHandle(forWritingTo: output)
        defer { try? handle.close() }
        // posix_spawn and waitpid, not Foundation's Process: its exit monitoring missed some of
        // these short-lived children (a reaped-never `bash` left the test waiting).
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_adddup2(&actions, handle.fileDescriptor, 1)
        posix_spawn_file_actions_adddup2(&actions, handle.fileDescriptor, 2)
        let argv = [executable] + arguments
        let envp = environment.map { "\($0.key)=\($0.value)" }
        var pid: pid_t = 0
        let cArgv = argv.map { strdup($0) } + [nil]
        let cEnvp = envp.map { strdup($0) } + [nil]
        defer { (cArgv + cEnvp).forEach { free($0) } }
        // A clean signal state, as a shell gives its children (Foundation's Process does the
        // same): not the test process's blocked signals or ignored SIGPIPE.
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var none = sigset_t(), all = sigset_t()
        sigemptyset(&none)
        sigfillset(&all)
        posix_spawnattr_setsigmask(&attributes, &none)
        posix_spawnattr_setsigdefault(&attributes, &all)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))
        let spawned = posix_spawn(&pid, executable, &actions, &attributes, cArgv, cEnvp)
        guard spawned == 0 else { throw RunError.status("posix_spawn \(executable): \(spawned)") }
        return Child(pid: pid, output: output)
    }

    /// `scripts/run status --json`.
    public func status() async throws -> RunStatus {
        let (_, output) = try await self.run(["status", "--json"], timeout: .seconds(30))
        guard let data = output.data(using: .utf8), let status = try? JSONDecoder().decode(RunStatus.self, from: data) else {
            throw RunError.status(output)
        }
        return status
    }

    public func instances(_ service: String) async throws -> [RunStatus.Instance] {
        try await self.status().instances.filter { $0.service == service }
    }

    /// A connection to the stack's vhost.
    public func connect() async throws -> AMQPConnection {
        var c = try AMQPConfiguration(url: self.amqpURL, connectionName: "aira-test-ops")
        c.reconnectBackoff = .milliseconds(100)
        var logger = Logger(label: "aira-run")
        logger.logLevel = .error
        return try await AMQPConnection.connect(configuration: c, logger: logger)
    }

    /// Stops whatever the test started (the test's own stop comes first; this is the safety net).
    public func tearDown() async {
        _ = try? await self.run(["stop"], timeout: .seconds(120))
        _ = try? await self.managementCall("DELETE", "/api/vhosts/\(self.vhost)")
        try? FileManager.default.removeItem(at: self.directory)
    }

}

/// What `scripts/run status --json` prints.
public struct RunStatus: Decodable, Sendable {
    public struct Supervisor: Decodable, Sendable { public var running: Bool; public var pid: Int32? }
    public struct Instance: Decodable, Sendable {
        public var service: String
        public var instance: String
        public var port: Int
        public var state: String
        public var pid: Int32?
        public var restarts: Int
        public var alive: Bool
        public var ready: String
        public var queues: [String]
        public var last_exit: String?
    }
    public struct Queue: Decodable, Sendable {
        public var queue: String; public var depth: Int; public var consumers: Int; public var consumed_by: [String]
    }
    public var supervisor: Supervisor
    public var instances: [Instance]
    public var queues: [Queue]
}

