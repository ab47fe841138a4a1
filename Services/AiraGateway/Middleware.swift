import AiraCore
import AiraMessaging
import AiraTokens
import Foundation
import HTTPTypes
import Hummingbird
import Logging
import Metrics

extension HTTPFields {
    /// The first field's value named `name`. `headers[name]` joins every such field into a new
    /// string on each call; for headers that appear once (Authorization, Content-Type,
    /// Content-Length) the first is the value.
    func first(_ name: HTTPField.Name) -> String? {
        for field in self where field.name == name { return field.value }
        return nil
    }
}

/// The outermost middleware: gives each request its id (the client's `X-Request-Id` when it is
/// sane, else a new one) in logs and in the response, works out the client address, and turns
/// every error into the one JSON error shape. Nothing a client sends produces a 500: only a
/// bug does, and it is logged with the request id.
struct RequestMiddleware: RouterMiddleware {
    typealias Context = GatewayContext
    /// Use the right-most `X-Forwarded-For` entry (set by a trusted reverse proxy) as the client address.
    let trustForwardedFor: Bool

    func handle(_ request: Request, context: GatewayContext,
                next: (Request, GatewayContext) async throws -> Response) async throws -> Response {
        var context = context
        let start = context.started
        if let given = request.headers[.requestID], Self.isSane(given) {
            context.requestID = given
        } else {
            context.requestID = MessageID.random()
        }
        context.traceparent = request.headers[.traceparent].flatMap { TraceParent.isValid($0) ? TraceParent.child(of: $0) : nil }
            ?? TraceParent.random()
        context.clientIP = self.clientIP(request, context)

        var response: Response
        do {
            response = try await next(request, context)
        } catch let error as APIError {
            response = try error.response(from: request, context: context)
        } catch let error as HTTPError {
            response = try Self.translate(error).response(from: request, context: context)
        } catch let error as any HTTPResponseError {
            // e.g. NIOTooManyBytesError from a body read: keep the status, use our shape.
            response = try APIError(status: error.status, code: Self.code(for: error.status), message: error.status.reasonPhrase)
                .response(from: request, context: context)
        } catch {
            context.logger.error("unhandled error", metadata: [LogKey.error: "\(error)", "path": "\(request.uri.path)"])
            response = try APIError(status: .internalServerError, code: "internal", message: "internal error (request \(context.requestID))")
                .response(from: request, context: context)
        }
        response.headers[.requestID] = context.requestID
        let level: Logger.Level = response.status.code >= 500 ? .warning : .debug
        guard context.logs(level) else { return response }
        let elapsed = ContinuousClock.now - start
        context.logger.log(level: level, "request", metadata: [
            "method": "\(request.method)", "path": "\(request.uri.path)", "status": "\(response.status.code)",
            "ms": "\(Double(elapsed.milliseconds))", "client": "\(context.clientIP)",
        ])
        return response
    }

    private func clientIP(_ request: Request, _ context: GatewayContext) -> String {
        if self.trustForwardedFor, let forwarded = request.headers[.forwardedFor],
           let last = forwarded.split(separator: ",").last?.trimmed, !last.isEmpty, last.count <= 45 {
            return last
        }
        return context.remoteAddress?.ipAddress ?? "unknown"
    }

    static func isSane(_ id: String) -> Bool {
        (1...128).contains(id.utf8.count) && id.utf8.allSatisfy { c in
            (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x5A) || (c >= 0x61 && c <= 0x7A) || c == 0x2D || c == 0x5F || c == 0x2E
        }
    }

    static func translate(_ error: HTTPError) -> APIError {
        switch error.status {
        case .notFound: return APIError(status: .notFound, code: "route_not_found", message: "no such endpoint")
        case .methodNotAllowed: return APIError(status: .methodNotAllowed, code: "method_not_allowed", message: "method not allowed here")
        default:
            return APIError(status: error.status, code: Self.code(for: error.status),
                            message: error.body ?? error.status.reasonPhrase, headers: error.headers)
        }
    }

    static func code(for status: HTTPResponse.Status) -> String {
        switch status {
        case .contentTooLarge: "payload_too_large"
        case .unsupportedMediaType: "unsupported_media_type"
        case .badRequest: "bad_request"
        default: status.reasonPhrase.lowercased().replacingOccurrences(of: " ", with: "_")
        }
    }
}

/// Verifies the `Authorization: Bearer` access token locally (signature, `kid`, algorithm,
/// `iss`, `aud`, `exp`): 401 without a valid one; with `admin`, 403 unless the role is ADMIN.
struct Authenticate: RouterMiddleware {
    typealias Context = GatewayContext
    let verifier: AccessTokenVerifier
    var admin = false
    /// Anonymous requests pass (public reads); a token, when sent, must still be valid.
    var optional = false

    private static let rejected = Counter(label: "aira_gateway_tokens_rejected_total")

    func handle(_ request: Request, context: GatewayContext,
                next: (Request, GatewayContext) async throws -> Response) async throws -> Response {
        guard let header = request.headers.first(.authorization) else {
            if self.optional { return try await next(request, context) }
            throw APIError.unauthenticated("this endpoint needs an access token")
        }
        guard header.count > 7, header.prefix(7).lowercased() == "bearer " else {
            throw APIError.unauthenticated("expected 'Authorization: Bearer <access token>'")
        }
        var context = context
        do {
            context.claims = try await self.verifier.verify(header.dropFirst(7).trimmed)
        } catch let rejected as TokenRejected {
            Self.rejected.increment()
            context.logger.info("access token rejected", metadata: ["reason": "\(rejected.reason)"])
            throw APIError.invalidToken(rejected.reason == "expired" ? "access token expired: refresh it" : "access token invalid")
        }
        if self.admin, context.claims?.role != "ADMIN" { throw APIError.forbidden("this endpoint is for admins") }
        return try await next(request, context)
    }
}
