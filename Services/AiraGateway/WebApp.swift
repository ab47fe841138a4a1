import Foundation
import HTTPTypes
import Hummingbird
import Logging

/// The web app (`Services/AiraGateway/Web`, `AIRA_WEB_DIR`), served by the gateway itself from
/// the same origin as the API: plain ES modules and CSS, no build step. Requests under the API's
/// prefixes never reach the files; everything else the router does not know is looked up as a
/// file (`/` is `index.html`). Pages get a Content-Security-Policy that allows scripts from
/// this origin only (no inline script, no eval): an answer that smuggles in `<script>` or an
/// `onerror=` finds nothing that runs it.
struct WebApp: RouterMiddleware {
    typealias Context = GatewayContext
    let files: FileMiddleware<GatewayContext, LocalFileSystem>

    static let policy = [
        "default-src 'self'", "script-src 'self'", "style-src 'self'", "img-src 'self' data: blob:", "media-src 'self' blob:",
        "connect-src 'self'", "font-src 'self'", "object-src 'none'", "base-uri 'none'", "frame-ancestors 'none'", "form-action 'self'",
    ].joined(separator: "; ")

    /// Paths that belong to the API, health and metrics: never files.
    static func isAPI(_ path: String) -> Bool {
        path.hasPrefix("/api/") || path == "/api" || path.hasPrefix("/v1/") || path.hasPrefix("/health") || path == "/metrics"
            || path == "/openapi.yaml"
    }

    init?(directory: String, logger: Logger) {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: directory, isDirectory: &isDirectory), isDirectory.boolValue else {
            logger.warning("no web app: AIRA_WEB_DIR is not a folder", metadata: ["dir": "\(directory)"])
            return nil
        }
        self.files = FileMiddleware(directory, searchForIndexHtml: true, logger: logger)
    }

    func handle(_ request: Request, context: GatewayContext,
                next: (Request, GatewayContext) async throws -> Response) async throws -> Response {
        guard !Self.isAPI(request.uri.path) else { return try await next(request, context) }
        var response = try await self.files.handle(request, context: context, next: next)
        response.headers[.contentSecurityPolicy] = Self.policy
        response.headers[.xContentTypeOptions] = "nosniff"
        response.headers[.referrerPolicy] = "same-origin"
        response.headers[.xFrameOptions] = "DENY"
        // Third-party libraries change only with a release of the app: a day in any cache.
        // The app's own files are revalidated on every load (ETag / If-None-Match: a 304).
        response.headers[.cacheControl] = request.uri.path.hasPrefix("/vendor/") ? "public, max-age=86400" : "no-cache"
        return response
    }
}

extension HTTPField.Name {
    static let contentSecurityPolicy = Self("Content-Security-Policy")!
    static let xContentTypeOptions = Self("X-Content-Type-Options")!
    static let referrerPolicy = Self("Referrer-Policy")!
    static let xFrameOptions = Self("X-Frame-Options")!
}
