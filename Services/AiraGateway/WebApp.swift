import Foundation
import HTTPTypes
import Hummingbird
import Logging

/// The web app (`Services/AiraGateway/Web`, `AIRA_WEB_DIR`), served by the gateway itself from
/// the same origin as the API: plain ES modules and CSS, no build step. It has routes of its own
/// (``paths``) with this middleware on them alone, so an API request never passes through it.
/// Their handlers answer "not found", which Hummingbird's `FileMiddleware` turns into the file
/// (`/` is `index.html`). Pages get a Content-Security-Policy that allows scripts from this
/// origin only (no inline script, no eval): an answer that smuggles in `<script>` or an
/// `onerror=` finds nothing that runs it.
struct WebApp: RouterMiddleware {
    typealias Context = GatewayContext
    let files: FileMiddleware<GatewayContext, LocalFileSystem>

    /// The web app's routes: its page, its icon, its modules and the libraries it uses. The SPA
    /// routes in the address's fragment, so no other path needs to serve `index.html`.
    static let paths = ["/", "/index.html", "/favicon.svg", "/app/**", "/vendor/**"]

    /// Whether a route (`GET /app/**`) is one of the web app's (not part of the API document).
    static func isWebRoute(_ route: String) -> Bool {
        guard let path = route.split(separator: " ", maxSplits: 1).last else { return false }
        return Self.paths.contains(String(path))
    }

    func register(on router: Router<GatewayContext>) {
        let group = router.group().add(middleware: self)
        for path in Self.paths {
            group.get(RouterPath(stringLiteral: path)) { _, _ -> Response in throw HTTPError(.notFound) }
            group.head(RouterPath(stringLiteral: path)) { _, _ -> Response in throw HTTPError(.notFound) }
        }
    }

    static let policy = [
        "default-src 'self'", "script-src 'self'", "style-src 'self'", "img-src 'self' data: blob:", "media-src 'self' blob:",
        "connect-src 'self'", "font-src 'self'", "object-src 'none'", "base-uri 'none'", "frame-ancestors 'none'", "form-action 'self'",
    ].joined(separator: "; ")

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

