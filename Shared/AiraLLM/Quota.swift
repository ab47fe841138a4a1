import AiraCore
import Foundation

/// A user's daily question quota (aira-gpt-proxy counts it; the gateway and the web app show it).
public struct QuotaStatus: Codable, Sendable, Hashable {
    /// Questions counted today (cache hits are free).
    public var used: Int
    public var limit: Int
    /// When the count starts again (midnight UTC).
    public var resetAt: Date
    public init(used: Int, limit: Int, resetAt: Date) {
        self.used = used
        self.limit = limit
        self.resetAt = resetAt
    }
}

// Read and written by hand on the cached-answer path (JSONTree).
extension QuotaStatus: FastJSONEncodable, FastJSONDecodable {
    public func appendJSON(to out: inout [UInt8]) throws {
        out.append(UInt8(ascii: "{"))
        JSONText.appendKey("used", first: true, to: &out)
        JSONText.append(self.used, to: &out)
        JSONText.appendKey("limit", to: &out)
        JSONText.append(self.limit, to: &out)
        JSONText.appendKey("resetAt", to: &out)
        JSONText.appendQuoted(iso8601(self.resetAt), to: &out)
        out.append(UInt8(ascii: "}"))
    }

    public init(json: JSONTree) throws {
        let m = try json.members()
        guard let reset = parseISO8601(try m.string("resetAt")) else { throw JSONTree.Unsupported("resetAt") }
        self.init(used: try m.int("used"), limit: try m.int("limit"), resetAt: reset)
    }
}
