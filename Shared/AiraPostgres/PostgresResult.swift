import AiraCore
import Foundation

/// What a query returned: rows (text values) and the affected row count.
public struct PostgresResult: Sendable {
    public let columns: [String]
    public let rows: [PostgresRow]
    /// Rows inserted, updated or deleted (0 for SELECT).
    public let affectedRows: Int

    public var first: PostgresRow? { self.rows.first }
}

public struct PostgresRow: Sendable {
    let columns: [String]
    public let values: [String?]

    public func text(_ column: String) throws -> String? {
        guard let i = self.columns.firstIndex(of: column) else {
            throw PostgresError.decoding(column: column, value: nil, expected: "a column of the result (have \(self.columns))")
        }
        return self.values[i]
    }

    /// Decodes a non-NULL column.
    public func decode<T: PostgresDecodable>(_ column: String, as type: T.Type = T.self) throws -> T {
        guard let text = try self.text(column) else {
            throw PostgresError.decoding(column: column, value: nil, expected: "\(T.self), got NULL")
        }
        guard let value = T(postgresText: text) else {
            throw PostgresError.decoding(column: column, value: text, expected: "\(T.self)")
        }
        return value
    }

    /// Decodes a column that may be NULL.
    public func decodeOptional<T: PostgresDecodable>(_ column: String, as type: T.Type = T.self) throws -> T? {
        guard let text = try self.text(column) else { return nil }
        guard let value = T(postgresText: text) else {
            throw PostgresError.decoding(column: column, value: text, expected: "\(T.self)")
        }
        return value
    }
}

/// A type that can be read from PostgreSQL's text output.
public protocol PostgresDecodable {
    init?(postgresText: String)
}

extension String: PostgresDecodable { public init?(postgresText: String) { self = postgresText } }
extension Int: PostgresDecodable { public init?(postgresText: String) { self.init(postgresText) } }
extension Int32: PostgresDecodable { public init?(postgresText: String) { self.init(postgresText) } }
extension Int64: PostgresDecodable { public init?(postgresText: String) { self.init(postgresText) } }
extension Double: PostgresDecodable { public init?(postgresText: String) { self.init(postgresText) } }
extension Bool: PostgresDecodable {
    public init?(postgresText: String) {
        switch postgresText {
        case "t", "true": self = true
        case "f", "false": self = false
        default: return nil
        }
    }
}
extension UUID: PostgresDecodable { public init?(postgresText: String) { self.init(text: postgresText) } }
extension Date: PostgresDecodable {
    /// timestamptz as the server prints it with `DateStyle = ISO` (connections use UTC):
    /// `2026-11-21 18:05:41.123456+00`.
    public init?(postgresText text: String) {
        var s = text.replacingOccurrences(of: " ", with: "T")
        if s.hasSuffix("+00") { s = String(s.dropLast(3)) + "Z" }
        else if let r = s.range(of: #"[+-]\d\d$"#, options: .regularExpression) { s += ":00"; _ = r }
        guard let date = parseISO8601(s) else { return nil }
        self = date
    }
}
