import AiraAMQP
import AiraCore
import AiraMessaging
import Foundation
import Hummingbird
import Logging
import Metrics
import Prometheus
import ServiceLifecycle

/// Start-up for every Aira executable: logging and metrics set up once (by `main`), connections
/// opened (the broker waited for), then the services in one ServiceGroup that handles SIGTERM
/// and SIGINT as graceful shutdown. Each service's `build…(configuration)` returns that group;
/// its `main.swift` reads the configuration, bootstraps, builds and runs.
public enum ServiceHost {
    /// Configures the process-wide logging and metrics backends (once, from `main` only) and
    /// returns the service's logger and the Prometheus registry behind `/metrics`.
    public static func bootstrap(_ settings: ServiceSettings) -> (Logger, PrometheusCollectorRegistry) {
        let level = settings.logLevel
        let service = settings.name
        switch settings.logFormat {
        case .json:
            LoggingSystem.bootstrap { label in
                var h = JSONLogHandler(label: label, service: service)
                h.logLevel = level
                return h
            }
        case .text:
            LoggingSystem.bootstrap { label in
                var h = StreamLogHandler.standardError(label: label)
                h.logLevel = level
                return h
            }
        }
        let registry = PrometheusCollectorRegistry()
        var factory = PrometheusMetricsFactory(registry: registry)
        factory.defaultDurationHistogramBuckets = [
            .microseconds(500), .milliseconds(1), .milliseconds(2), .milliseconds(5), .milliseconds(10), .milliseconds(25),
            .milliseconds(50), .milliseconds(100), .milliseconds(250), .milliseconds(500), .seconds(1), .seconds(2.5),
            .seconds(5), .seconds(10), .seconds(30),
        ]
        MetricsSystem.bootstrap(factory)
        return (Logger(label: settings.name), registry)
    }

    /// Opens the broker connection, waiting up to `AIRA_AMQP_STARTUP_TIMEOUT` for it.
    public static func connectBroker(_ settings: ServiceSettings, logger: Logger) async throws -> AMQPConnection {
        let connection = AMQPConnection(configuration: try settings.amqpConfiguration(), logger: logger)
        connection.start()
        do {
            try await connection.waitUntilConnected(timeout: settings.brokerStartupTimeout)
        } catch {
            await connection.close()
            throw error
        }
        return connection
    }

    /// Opens the broker connection and hands it to `body` (a service's build: channels, queue
    /// declarations, the service group). If `body` throws, the connection is closed before the
    /// error goes on, so a failed build leaves nothing running.
    public static func withBroker<T>(_ settings: ServiceSettings, logger: Logger,
                                     _ body: (AMQPConnection) async throws -> T) async throws -> T {
        let connection = try await Self.connectBroker(settings, logger: logger)
        do {
            return try await body(connection)
        } catch {
            await connection.close()
            throw error
        }
    }

    /// The service group of a worker: `services` with the observability HTTP server
    /// (`/health/*`, `/metrics` on `AIRA_HTTP_HOST:AIRA_HTTP_PORT`).
    public static func group(settings: ServiceSettings, logger: Logger, registry: PrometheusCollectorRegistry,
                             connection: AMQPConnection?, clients: [any Service] = [], publishers: [any Service] = [],
                             services: [any Service], readiness: [ReadinessCheck], shutdown: ShutdownFlag = ShutdownFlag(),
                             signals: Bool = true) -> ServiceGroup {
        let router = Router()
        ObservabilityRoutes.add(to: router, registry: registry, checks: readiness, shutdown: shutdown)
        let app = Application(router: router,
                              configuration: .init(address: .hostname(settings.httpHost, port: settings.httpPort),
                                                   serverName: settings.name),
                              onServerRunning: { channel in
                                  logger.info("observability endpoints up",
                                              metadata: ["address": "\(channel.localAddress?.description ?? "?")"])
                              },
                              logger: logger)
        return Self.group(logger: logger, connection: connection, clients: clients, publishers: publishers, http: app,
                          services: services, shutdown: shutdown, signals: signals)
    }

    /// The same with a ready-made HTTP application (the gateway's).
    ///
    /// ServiceGroup starts the services in order and stops them in reverse, so on SIGTERM/SIGINT
    /// (with `signals`) or ``ServiceGroup/triggerGracefulShutdown()``: readiness flips first, then
    /// the consumers drain, then HTTP stops, then the publishers (an ``AuditTrail``) flush, then
    /// the `clients` (Redis, PostgreSQL: they are `Service`s) close their connections, then the
    /// broker connection closes. A failing service or a cancelled group takes the same way out.
    public static func group(logger: Logger, connection: AMQPConnection?, clients: [any Service] = [],
                             publishers: [any Service] = [], http: some Service, services: [any Service],
                             shutdown: ShutdownFlag, signals: Bool = true) -> ServiceGroup {
        var all: [ServiceGroupConfiguration.ServiceConfiguration] = []
        if let connection { all.append(.init(service: connection)) }
        all += clients.map { .init(service: $0) }
        all += publishers.map { .init(service: $0) }
        all.append(.init(service: http))
        all += services.map { .init(service: $0) }
        all.append(.init(service: shutdown))
        return ServiceGroup(configuration: .init(services: all, gracefulShutdownSignals: signals ? [.sigterm, .sigint] : [],
                                                 cancellationSignals: [], logger: logger))
    }

    /// Runs a built service group until it stops, logging either side.
    public static func run(_ group: ServiceGroup, logger: Logger) async throws {
        logger.info("starting")
        try await group.run()
        logger.info("stopped")
    }
}

/// Something to close when its service group stops (an HTTP client, a thread pool), as a
/// `Service`: listed before the services that use it, it closes after them, on every way out.
public struct ClosingService: Service {
    private let close: @Sendable () async throws -> Void

    public init(_ close: @escaping @Sendable () async throws -> Void) {
        self.close = close
    }

    public func run() async throws {
        try? await gracefulShutdown()
        try await self.close()
    }
}

/// Exits with a clear message when start-up fails (bad configuration, broker unreachable).
public func exitOnStartupFailure(_ service: String, _ error: any Error) -> Never {
    FileHandle.standardError.write(Data("\(service): cannot start: \(error)\n".utf8))
    // _exit, not exit: threads that own C connections may still be inside the library (a
    // PostgreSQL connect in flight), and exit's handlers (OpenSSL's clean-up, which libpq
    // registers) tore down what such a thread was using: a SIGSEGV instead of exit status 1,
    // about one start in forty. Nothing else needs running on the way out; logs are flushed.
    fflush(nil)
    _exit(1)
}
