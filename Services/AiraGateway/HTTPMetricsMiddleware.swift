import AiraCore
import Foundation
import HTTPTypes
import Hummingbird
import Metrics
import Synchronization

/// The gateway's HTTP metrics, under the names and labels of Hummingbird's `MetricsMiddleware`
/// (`hb_requests`, `http_server_request_duration`, `hb_request_errors`,
/// `http_server_active_requests`, labelled by route template), without its cost on the hot path.
///
/// Hummingbird's middleware wraps every response body in a closure to record after the write, so
/// a response that is one buffer loses the server's fast path — head, body and end written to
/// the channel as one batch — and goes out in three writes (three hops to the event loop and
/// three socket writes; 2.4 write calls per cached question). Here a response with a known
/// length is recorded when the handler returns it (its write follows at once); only bodies of
/// unknown length (streamed answers) are wrapped, so their duration still covers the stream.
struct HTTPMetricsMiddleware: RouterMiddleware {
    typealias Context = GatewayContext
    private let cache = HTTPMetricsCache()

    func handle(_ request: Request, context: GatewayContext,
                next: (Request, GatewayContext) async throws -> Response) async throws -> Response {
        let start = ContinuousClock.now
        let active = self.cache.active(request.method)
        active.increment()
        do {
            var response = try await next(request, context)
            let metrics = self.cache.endpoint(context.endpointPath ?? "Unknown", request.method, response.status)
            guard response.body.contentLength == nil else {
                metrics.record(since: start)
                active.decrement()
                return response
            }
            let body = response.body
            response.body = ResponseBody(contentLength: nil) { writer in
                defer {
                    metrics.record(since: start)
                    active.decrement()
                }
                try await body.write(writer)
            }
            return response
        } catch {
            let status = (error as? any HTTPResponseError)?.status ?? .internalServerError
            let metrics = self.cache.endpoint(context.endpointPath ?? "NotFound", request.method, status)
            metrics.record(since: start)  // error answers' time too: shed load must be answered fast
            metrics.errors.increment()
            active.decrement()
            throw error
        }
    }
}

/// The metric objects per method and per (route, method, status), made once: creating them goes
/// through the metrics factory's lock and label handling each time.
final class HTTPMetricsCache: Sendable {
    struct Endpoint: Sendable {
        let requests: Counter
        let duration: Metrics.Timer
        let errors: Counter

        func record(since start: ContinuousClock.Instant) {
            self.requests.increment()
            self.duration.recordNanoseconds((ContinuousClock.now - start).nanoseconds)
        }
    }

    private struct Key: Hashable {
        let route: String
        let method: HTTPRequest.Method
        let status: Int
    }

    private let actives = Mutex<[HTTPRequest.Method: Meter]>([:])
    private let endpoints = Mutex<[Key: Endpoint]>([:])

    func active(_ method: HTTPRequest.Method) -> Meter {
        self.actives.withLock { actives in
            if let meter = actives[method] { return meter }
            let meter = Meter(label: "http.server.active_requests", dimensions: [("http.request.method", method.rawValue)])
            actives[method] = meter
            return meter
        }
    }

    func endpoint(_ route: String, _ method: HTTPRequest.Method, _ status: HTTPResponse.Status) -> Endpoint {
        let key = Key(route: route, method: method, status: status.code)
        return self.endpoints.withLock { endpoints in
            if let metrics = endpoints[key] { return metrics }
            let labels = [("http.route", route), ("http.request.method", method.rawValue),
                          ("http.response.status_code", String(status.code))]
            let metrics = Endpoint(
                requests: Counter(label: "hb.requests", dimensions: labels),
                duration: Metrics.Timer(label: "http.server.request.duration", dimensions: labels, preferredDisplayUnit: .seconds),
                errors: Counter(label: "hb.request.errors", dimensions: [("http.route", route), ("http.request.method", method.rawValue),
                                                                         ("error.type", String(status.code))]))
            endpoints[key] = metrics
            return metrics
        }
    }
}
