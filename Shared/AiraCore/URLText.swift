/// Connection URLs in errors and logs: never with their password.
public enum URLText {
    /// `scheme://user:secret@host/…` → `scheme://user:***@host/…`. Text that is not a URL with
    /// credentials is returned as it is, except that anything between `://` and a later `@` that
    /// holds a `:` is treated as user:password (a URL too broken to parse may still carry one).
    public static func redacted(_ url: String) -> String {
        guard let schemeEnd = url.range(of: "://") else { return url }
        let rest = url[schemeEnd.upperBound...]
        let authorityEnd = rest.firstIndex(where: { $0 == "/" || $0 == "?" || $0 == "#" }) ?? rest.endIndex
        let authority = rest[..<authorityEnd]
        guard let at = authority.lastIndex(of: "@") else { return url }
        let userInfo = authority[..<at]
        guard let colon = userInfo.firstIndex(of: ":") else { return url }
        return String(url[..<colon]) + ":***" + String(url[at...])
    }
}
