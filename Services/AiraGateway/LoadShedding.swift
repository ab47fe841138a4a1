import AiraServiceKit
import Hummingbird
import Metrics
import Synchronization

/// The first thing every `/api` request meets: beyond `limit` API requests in progress at once
/// in this gateway, 503 + `Retry-After: 1` at once — before the token is checked, the rate
/// limiter asked or the body read. Under a burst the gateway's cores are the bottleneck, and a
/// request that waits for them only to be refused later (by the in-flight bound or a learned
/// limit) is refused slowly; this refuses it while that costs nothing (`AIRA_MAX_ACTIVE_REQUESTS`).
/// Counted by `aira_gateway_admission_shed_total`.
struct AdmissionMiddleware: RouterMiddleware {
    typealias Context = GatewayContext
    let limit: Int
    private let active = ActiveCount()

    init(limit: Int) { self.limit = limit }

    func handle(_ request: Request, context: GatewayContext,
                next: (Request, GatewayContext) async throws -> Response) async throws -> Response {
        guard self.active.enter(limit: self.limit) else {
            throw APIError.unavailable("the server is busy, try again in a moment", retryAfter: 1)
        }
        do {
            var response = try await next(request, context)
            guard response.body.contentLength == nil else {
                self.active.leave()
                return response
            }
            // A streamed answer stays in progress until its last byte.
            let body = response.body
            let active = self.active
            response.body = ResponseBody(contentLength: nil) { writer in
                defer { active.leave() }
                try await body.write(writer)
            }
            return response
        } catch {
            self.active.leave()
            throw error
        }
    }
}

/// Before the rate limiter on the routes that spend bcrypt (sign-up, login, password change):
/// while the learned limit of `auth.credentials` is full, 503 + `Retry-After` at once, without
/// asking Redis or reading the body (``AdaptiveLimit/isFull()``). During a login storm most
/// requests are refused, and this is what keeps each refusal within milliseconds.
struct CapacityGate: RouterMiddleware {
    typealias Context = GatewayContext
    let limit: AdaptiveLimit?
    let queue: String

    func handle(_ request: Request, context: GatewayContext,
                next: (Request, GatewayContext) async throws -> Response) async throws -> Response {
        if let limit = self.limit, limit.isFull() {
            throw APIError.unavailable("the \(self.queue) service is at capacity, try again shortly", retryAfter: limit.retryAfter)
        }
        return try await next(request, context)
    }
}

final class ActiveCount: Sendable {
    private let count = Atomic<Int>(0)
    private let shed = Counter(label: "aira_gateway_admission_shed_total")

    func enter(limit: Int) -> Bool {
        guard self.count.add(1, ordering: .relaxed).newValue <= limit else {
            self.count.subtract(1, ordering: .relaxed)
            self.shed.increment()
            return false
        }
        return true
    }

    func leave() { self.count.subtract(1, ordering: .relaxed) }
}
