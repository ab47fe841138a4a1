import AiraCore
import Foundation
import HTTPTypes
import Hummingbird
import Logging
import Metrics
import NIOCore
import Prometheus
import ServiceLifecycle
import Synchronization

/// A named readiness condition: the service is ready only while every check passes.
public struct ReadinessCheck: Sendable {
    public var name: String
    public var check: @Sendable () async -> Bool

    public init(_ name: String, _ check: @escaping @Sendable () async -> Bool) {
        self.name = name
        self.check = check
    }
}

/// Set when graceful shutdown begins, so readiness turns false before anything stops.
public final class ShutdownFlag: Service, Sendable {
    private let flag = Atomic<Bool>(false)
    public init() {}
    public var isShuttingDown: Bool { self.flag.load(ordering: .relaxed) }
    public func run() async throws {
        try? await gracefulShutdown()
        self.flag.store(true, ordering: .relaxed)
    }
}

/// The routes every executable serves on its own port: `/health/live`, `/health/ready` and
/// `/metrics` (Prometheus text format). Services with an HTTP API add these to their router.
public enum ObservabilityRoutes {
    public static func add<Context: RequestContext>(to router: Router<Context>, registry: PrometheusCollectorRegistry,
                                                    checks: [ReadinessCheck], shutdown: ShutdownFlag) {
        router.get("/health/live") { _, _ in
            Self.json(.ok, Health(status: "live"))
        }
        router.get("/health/ready") { _, _ in
            var results: [String: Bool] = [:]
            await withTaskGroup(of: (String, Bool).self) { group in
                for c in checks {
                    group.addTask {
                        // A check that hangs counts as failed after 2 s.
                        await withTaskGroup(of: Bool.self) { race in
                            race.addTask { await c.check() }
                            race.addTask { try? await Task.sleep(for: .seconds(2)); return false }
                            let first = await race.next() ?? false
                            race.cancelAll()
                            return (c.name, first)
                        }
                    }
                }
                for await (name, ok) in group { results[name] = ok }
            }
            let stopping = shutdown.isShuttingDown
            let ready = !stopping && results.values.allSatisfy { $0 }
            let body = Health(status: ready ? "ready" : "not_ready", checks: results, reason: stopping ? "shutting down" : nil)
            return Self.json(ready ? .ok : .serviceUnavailable, body)
        }
        let allocator = Allocator.Gauges(registry: registry)
        let process = ProcessGauges(registry: registry)
        router.get("/metrics") { _, _ in
            allocator.update()
            process.update()
            var buffer = ByteBuffer()
            buffer.writeBytes(registry.emitToBuffer())
            return Response(status: .ok, headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
                            body: .init(byteBuffer: buffer))
        }
    }

    /// The body of `/health/live` and `/health/ready`.
    struct Health: Encodable {
        var status: String
        var checks: [String: Bool]? = nil
        var reason: String? = nil
    }

    static func json(_ status: HTTPResponse.Status, _ body: Health) -> Response {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        let data = (try? encoder.encode(body)) ?? Data(#"{"status":"unknown"}"#.utf8)
        return Response(status: status, headers: [.contentType: "application/json"],
                        body: .init(byteBuffer: ByteBuffer(bytes: data)))
    }
}

/// The process's own figures under Prometheus's standard names, read at each scrape:
/// `process_cpu_seconds_total` (user + system; exposed as a gauge, use `rate()`),
/// `process_resident_memory_bytes`, `process_start_time_seconds`.
struct ProcessGauges: Sendable {
    let cpu, resident, start: Prometheus.Gauge

    init(registry: PrometheusCollectorRegistry) {
        self.cpu = registry.makeGauge(name: "process_cpu_seconds_total", help: "User and system CPU time spent, in seconds")
        self.resident = registry.makeGauge(name: "process_resident_memory_bytes", help: "Resident memory size in bytes")
        self.start = registry.makeGauge(name: "process_start_time_seconds", help: "Start time of the process since the Unix epoch, in seconds")
        self.start.set(Date().timeIntervalSince1970 - ProcessInfo.processInfo.systemUptime
                       + Self.uptimeAtStart)
    }

    /// The process's start relative to boot, from /proc/self/stat (field 22, clock ticks).
    private static var uptimeAtStart: Double {
        guard let stat = try? String(contentsOfFile: "/proc/self/stat", encoding: .utf8),
              let close = stat.lastIndex(of: ")") else { return ProcessInfo.processInfo.systemUptime }
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        guard fields.count > 19, let ticks = Double(fields[19]) else { return ProcessInfo.processInfo.systemUptime }
        return ticks / Double(sysconf(Int32(_SC_CLK_TCK)))
    }

    func update() {
        self.cpu.set(CPUTime.process(getpid()))
        self.resident.set(Int64(CPUTime.residentBytes()))
    }
}
