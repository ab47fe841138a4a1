import AiraCore
import AiraContracts
import AiraMessaging
import Foundation
import HTTPTypes
import Hummingbird
import NIOCore

/// Every error a client sees: `{"error":{"code":"…","message":"…"}}` with a deliberate status.
struct APIError: Error, HTTPResponseError, CustomStringConvertible {
    var status: HTTPResponse.Status
    var code: String
    var message: String
    var headers: HTTPFields = [:]
    /// Structured detail for the client (e.g. a quota's `resetAt`).
    var details: [String: String]?

    var description: String { "\(self.status.code) \(self.code): \(self.message)" }

    func response(from request: Request, context: some RequestContext) throws -> Response {
        var response = JSONResponse.make(self.status, ErrorBody(error: .init(code: self.code, message: self.message, details: self.details)))
        for field in self.headers { response.headers.append(field) }
        return response
    }

    struct ErrorBody: Encodable {
        struct Detail: Encodable {
            var code: String
            var message: String
            var details: [String: String]?
        }
        var error: Detail
    }

    static func badRequest(_ code: String, _ message: String) -> APIError { APIError(status: .badRequest, code: code, message: message) }
    static func unauthenticated(_ message: String) -> APIError {
        APIError(status: .unauthorized, code: "unauthenticated", message: message,
                 headers: [.wwwAuthenticate: #"Bearer realm="aira""#])
    }
    static func invalidToken(_ message: String) -> APIError {
        APIError(status: .unauthorized, code: "invalid_token", message: message,
                 headers: [.wwwAuthenticate: #"Bearer realm="aira", error="invalid_token""#])
    }
    static func forbidden(_ message: String) -> APIError { APIError(status: .forbidden, code: "forbidden", message: message) }
    static func unavailable(_ message: String, retryAfter: Int = 1) -> APIError {
        APIError(status: .serviceUnavailable, code: "service_unavailable", message: message,
                 headers: [.retryAfter: String(retryAfter)])
    }

    /// What an RPC failure means for the client.
    static func from(_ error: RPCCallError) -> APIError {
        switch error {
        case .timeout:
            return APIError(status: .gatewayTimeout, code: "timeout", message: "the service did not answer in time, try again")
        case .unavailable:
            return .unavailable("the service is not accepting requests right now, try again")
        case .invalidReply:
            return APIError(status: .badGateway, code: "bad_gateway", message: "the service answered with something unreadable")
        case .remote(let reply):
            return Self.from(reply)
        }
    }

    /// The typed errors of aira-auth (``AuthError``) and of the RPC runtime.
    static func from(_ reply: RPCErrorReply) -> APIError {
        switch reply.code {
        case AuthError.invalidInput: return APIError(status: .badRequest, code: reply.code, message: reply.message)
        case AuthError.emailTaken: return APIError(status: .conflict, code: reply.code, message: reply.message)
        case AuthError.invalidCredentials: return APIError(status: .unauthorized, code: reply.code, message: reply.message)
        case AuthError.invalidToken, AuthError.tokenReused: return APIError(status: .unauthorized, code: reply.code, message: reply.message)
        case AuthError.accountSuspended, AuthError.forbidden: return APIError(status: .forbidden, code: reply.code, message: reply.message)
        case AuthError.notFound: return APIError(status: .notFound, code: reply.code, message: reply.message)
        case AuthError.loginThrottled:
            let retry = reply.details?["retryAfter"] ?? "1"
            return APIError(status: .tooManyRequests, code: reply.code, message: reply.message, headers: [.retryAfter: retry])
        case RPCErrorReply.unavailableCode: return .unavailable(reply.message)
        case GPTError.quotaExceeded, GPTError.budgetExceeded:
            let reset = reply.details?["resetAt"].flatMap(parseISO8601)
            let retry = max(1, Int((reset?.timeIntervalSinceNow ?? 60).rounded(.up)))
            return APIError(status: .tooManyRequests, code: reply.code, message: reply.message, headers: [.retryAfter: String(retry)],
                            details: reply.details)
        case GPTError.upstreamUnavailable: return .unavailable(reply.message, retryAfter: 5)
        case GPTError.budgetUnavailable:
            return APIError(status: .serviceUnavailable, code: reply.code, message: reply.message, headers: [.retryAfter: "5"])
        case GPTError.upstreamTimeout: return APIError(status: .gatewayTimeout, code: reply.code, message: reply.message)
        case GPTError.upstreamRejected: return APIError(status: .badRequest, code: reply.code, message: reply.message)
        case GPTError.upstreamStreamCut: return APIError(status: .badGateway, code: reply.code, message: reply.message)
        case GPTError.upstreamBadResponse: return APIError(status: .badGateway, code: reply.code, message: reply.message)
        default:
            // `bad_request` (the gateway sent something the service cannot read: a version
            // mismatch) and `internal` are the service's fault, not the client's.
            return APIError(status: .badGateway, code: "bad_gateway", message: "the service failed to handle the request")
        }
    }
}

enum JSONResponse {
    static func make(_ status: HTTPResponse.Status, _ value: some Encodable) -> Response {
        let bytes = (try? MessageCoding.encode(value)) ?? Array(#"{"error":{"code":"internal","message":"response not encodable"}}"#.utf8)
        return Response(status: status, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(bytes: bytes)))
    }
}

/// Reads a JSON request body: 415 unless it is JSON, 413 past the size limit, 400 naming what
/// is wrong with the content.
enum JSONBody {
    static func decode<T: Decodable>(_ type: T.Type, from request: Request, limit: Int) async throws -> T {
        let contentType = request.headers.first(.contentType)?.split(separator: ";").first?.trimmed.lowercased()
        guard contentType == "application/json" else {
            throw APIError(status: .unsupportedMediaType, code: "unsupported_media_type",
                           message: "send the body as application/json (got \(contentType ?? "no content type"))")
        }
        if let length = request.headers.first(.contentLength).flatMap(Int.init), length > limit {
            throw Self.tooLarge(limit)
        }
        let buffer: ByteBuffer
        do {
            buffer = try await request.body.collect(upTo: limit)
        } catch is NIOTooManyBytesError {
            throw Self.tooLarge(limit)
        }
        guard buffer.readableBytes > 0 else { throw APIError.badRequest("malformed_json", "the request body is empty") }
        do {
            return try MessageCoding.decode(T.self, from: Array(buffer.readableBytesView))
        } catch let error as DecodingError {
            if case .dataCorrupted(let context) = error, context.codingPath.isEmpty {
                throw APIError.badRequest("malformed_json", "the body is not valid JSON")
            }
            throw APIError.badRequest("invalid_request", MessageCoding.describe(error))
        }
    }

    static func tooLarge(_ limit: Int) -> APIError {
        APIError(status: .contentTooLarge, code: "payload_too_large", message: "the body is larger than \(limit) bytes")
    }
}

/// Fields that must be present and not blank.
func required(_ value: String, _ field: String) throws -> String {
    guard !value.allSatisfy(\.isWhitespace) else {
        throw APIError.badRequest("invalid_request", "'\(field)' must not be empty")
    }
    return value
}

extension StringProtocol {
    /// Without leading and trailing whitespace (Foundation's `trimmingCharacters` goes through
    /// NSString on Linux: measurably slow on the request path).
    var trimmed: String {
        // ASCII text (every header value, nearly every title) is trimmed by bytes; anything
        // else by Character, which knows Unicode's white space.
        if let ascii = self.utf8.withContiguousStorageIfAvailable({ bytes -> String? in
            guard bytes.allSatisfy({ $0 < 0x80 }) else { return nil }
            func space(_ c: UInt8) -> Bool { c == 0x20 || (0x09...0x0D).contains(c) }
            guard let first = bytes.firstIndex(where: { !space($0) }), let last = bytes.lastIndex(where: { !space($0) }) else {
                return ""
            }
            return String(decoding: UnsafeBufferPointer(rebasing: bytes[first...last]), as: UTF8.self)
        }), let result = ascii {
            return result
        }
        guard let first = self.firstIndex(where: { !$0.isWhitespace }), let last = self.lastIndex(where: { !$0.isWhitespace }) else {
            return ""
        }
        return String(self[first...last])
    }
}

/// Runs a call to a server behind the gateway (Redis, the broker, PostgreSQL, RabbitMQ's
/// management API): an ``APIError`` passes as it is; any other failure is the server's, not the
/// client's — logged with its cause, and answered 503 with `message` and `Retry-After`.
func backend<T>(_ message: String, retryAfter: Int = 2, _ context: GatewayContext,
                _ body: () async throws -> T) async throws -> T {
    do {
        return try await body()
    } catch let error as APIError {
        throw error
    } catch {
        context.logger.warning("backend unavailable", metadata: [LogKey.error: "\(error)", "answer": "\(message)"])
        throw APIError.unavailable(message, retryAfter: retryAfter)
    }
}
