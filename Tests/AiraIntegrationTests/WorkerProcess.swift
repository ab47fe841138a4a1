import Foundation

/// An `aira-test-worker` process started by a test.
final class WorkerProcess: @unchecked Sendable {
    let process = Process()
    let logURL: URL

    static var binDirectory: URL {
        if let dir = ProcessInfo.processInfo.environment["AIRA_BIN_DIR"] { return URL(fileURLWithPath: dir) }
        return URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
    }

    convenience init(queue: String, key: String, worker: String, environment extra: [String: String] = [:]) throws {
        var env = ["AIRA_TEST_QUEUE": queue, "AIRA_TEST_KEY": key, "AIRA_WORKER_ID": worker]
        env.merge(extra) { $1 }
        try self.init(executable: "aira-test-worker", name: worker, environment: env)
    }

    /// Starts one of the package's executables with the test environment plus `extra`.
    init(executable: String, name: String, environment extra: [String: String] = [:]) throws {
        self.logURL = FileManager.default.temporaryDirectory.appendingPathComponent("\(executable)-\(name)-\(UUID().uuidString.prefix(6)).log")
        FileManager.default.createFile(atPath: self.logURL.path, contents: nil)
        let log = try FileHandle(forWritingTo: self.logURL)
        self.process.executableURL = Self.binDirectory.appendingPathComponent(executable)
        var env = ProcessInfo.processInfo.environment
        env["AIRA_HTTP_PORT"] = "0"
        env["AIRA_LOG_LEVEL"] = env["AIRA_TEST_WORKER_LOG_LEVEL"] ?? "info"
        env.merge(extra) { $1 }
        self.process.environment = env
        self.process.standardOutput = log
        self.process.standardError = log
        try self.process.run()
    }

    var isRunning: Bool { self.process.isRunning }

    func terminate() { kill(self.process.processIdentifier, SIGTERM) }
    func kill9() { kill(self.process.processIdentifier, SIGKILL) }

    /// Waits for the process to exit; returns its status, or nil if it is still running.
    func waitForExit(timeout: Duration = .seconds(30)) async -> Int32? {
        let deadline = ContinuousClock.now + timeout
        while self.process.isRunning && ContinuousClock.now < deadline {
            try? await Task.sleep(for: .milliseconds(20))
        }
        return self.process.isRunning ? nil : self.process.terminationStatus
    }

    var log: String { (try? String(contentsOf: self.logURL, encoding: .utf8)) ?? "" }

    deinit {
        if self.process.isRunning { self.kill9() }
        try? FileManager.default.removeItem(at: self.logURL)
    }
}
