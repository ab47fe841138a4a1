import AiraAMQP
import AiraCore
import AiraMessaging
import Foundation
import Hummingbird
import Logging
import Metrics
import Prometheus
import ServiceLifecycle

/// Start-up for every Aira executable: logging and metrics set up once, connections opened
/// (the broker waited for), then the services run in one ServiceGroup that handles SIGTERM
/// and SIGINT as graceful shutdown.
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

    /// Runs `services` with the observability HTTP server (or `application`, for services with
    /// an HTTP API of their own) until SIGTERM/SIGINT. `connection` is shut down last, after the
    /// consumers have drained.
    public static func run(settings: ServiceSettings, logger: Logger, registry: PrometheusCollectorRegistry,
                           connection: AMQPConnection?, publishers: [any Service] = [], services: [any Service],
                           readiness: [ReadinessCheck], shutdown: ShutdownFlag = ShutdownFlag()) async throws {
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
        try await Self.run(logger: logger, connection: connection, publishers: publishers, http: app, services: services,
                           shutdown: shutdown)
    }

    /// The same with a ready-made HTTP application (the gateway's).
    /// `publishers` (an ``AuditTrail``) are what HTTP handlers and consumers publish through.
    public static func run(logger: Logger, connection: AMQPConnection?, publishers: [any Service] = [], http: some Service,
                           services: [any Service], shutdown: ShutdownFlag) async throws {
        // ServiceGroup stops services in reverse order: readiness flips first, then consumers
        // drain, then HTTP stops, then the publishers flush, then the broker connection closes.
        var all: [ServiceGroupConfiguration.ServiceConfiguration] = []
        if let connection { all.append(.init(service: connection)) }
        all += publishers.map { .init(service: $0) }
        all.append(.init(service: http))
        all += services.map { .init(service: $0) }
        all.append(.init(service: shutdown))
        let group = ServiceGroup(configuration: .init(services: all, gracefulShutdownSignals: [.sigterm, .sigint],
                                                      cancellationSignals: [], logger: logger))
        logger.info("starting")
        try await group.run()
        logger.info("stopped")
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
