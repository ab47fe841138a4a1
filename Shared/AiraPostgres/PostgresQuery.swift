import AiraCore
import Foundation

/// A value that can be bound as a query parameter (sent in PostgreSQL's text format).
public protocol PostgresBindable: Sendable {
    var postgresText: String { get }
}

extension String: PostgresBindable { public var postgresText: String { self } }
extension Substring: PostgresBindable { public var postgresText: String { String(self) } }
extension Int: PostgresBindable { public var postgresText: String { String(self) } }
extension Int32: PostgresBindable { public var postgresText: String { String(self) } }
extension Int64: PostgresBindable { public var postgresText: String { String(self) } }
extension Double: PostgresBindable { public var postgresText: String { String(self) } }
extension Bool: PostgresBindable { public var postgresText: String { self ? "true" : "false" } }
extension UUID: PostgresBindable { public var postgresText: String { self.lowercasedString } }
extension Date: PostgresBindable {
    public var postgresText: String {
        iso8601(self)
    }
}
/// bytea, in hex input format.
public struct PostgresBytes: PostgresBindable, Hashable {
    public var bytes: [UInt8]
    public init(_ bytes: [UInt8]) { self.bytes = bytes }
    public var postgresText: String { "\\x" + self.bytes.hexString }
}

/// SQL with its parameters. Built by string interpolation, every interpolated value is bound as
/// a parameter (`$1`, `$2`...), never spliced into the text — so injection is impossible by
/// construction. SQL text from elsewhere needs ``init(unsafeSQL:binds:)``, named to be noticed.
public struct PostgresQuery: Sendable, Hashable, ExpressibleByStringInterpolation {
    public private(set) var sql: String
    public private(set) var binds: [String?]

    /// Raw SQL with `$n` placeholders. Only for SQL that is not built from input.
    public init(unsafeSQL sql: String, binds: [(any PostgresBindable)?] = []) {
        self.sql = sql
        self.binds = binds.map { $0?.postgresText }
    }

    public init(stringLiteral value: String) {
        self.sql = value
        self.binds = []
    }

    public init(stringInterpolation: StringInterpolation) {
        self.sql = stringInterpolation.sql
        self.binds = stringInterpolation.binds
    }

    public struct StringInterpolation: StringInterpolationProtocol {
        var sql = ""
        var binds: [String?] = []

        public init(literalCapacity: Int, interpolationCount: Int) {
            self.sql.reserveCapacity(literalCapacity + interpolationCount * 3)
        }

        public mutating func appendLiteral(_ literal: String) { self.sql += literal }

        /// A bound parameter.
        public mutating func appendInterpolation(_ value: some PostgresBindable) {
            self.binds.append(value.postgresText)
            self.sql += "$\(self.binds.count)"
        }

        /// A bound parameter that may be NULL.
        public mutating func appendInterpolation(_ value: (some PostgresBindable)?) {
            self.binds.append(value?.postgresText)
            self.sql += "$\(self.binds.count)"
        }

        /// SQL text spliced as is (a constant column list, say). Only for text written in code,
        /// never for input: named to be noticed, like ``PostgresQuery/init(unsafeSQL:binds:)``.
        public mutating func appendInterpolation(unsafeRaw sql: String) {
            self.sql += sql
        }

        /// An identifier (table, schema, column), quoted and escaped.
        public mutating func appendInterpolation(identifier: String) {
            self.sql += PostgresQuery.quoteIdentifier(identifier)
        }
    }

    public static func quoteIdentifier(_ name: String) -> String {
        "\"" + name.replacingOccurrences(of: "\"", with: "\"\"") + "\""
    }
}

/// A PostgreSQL array literal (`{"a","b",NULL}`) of text values, to bind as one parameter and
/// cast (`$1::uuid[]`) — a whole column of a multi-row insert in one parameter, with `unnest`.
public struct PostgresArray: PostgresBindable {
    public let postgresText: String

    public init(_ values: [String?]) {
        var out: [UInt8] = [UInt8(ascii: "{")]
        out.reserveCapacity(values.count * 24)
        for (i, value) in values.enumerated() {
            if i > 0 { out.append(UInt8(ascii: ",")) }
            guard let value else {
                out.append(contentsOf: "NULL".utf8)
                continue
            }
            out.append(UInt8(ascii: "\""))
            if value.utf8.contains(where: { $0 == UInt8(ascii: "\"") || $0 == UInt8(ascii: "\\") }) {
                for byte in value.utf8 {
                    if byte == UInt8(ascii: "\"") || byte == UInt8(ascii: "\\") { out.append(UInt8(ascii: "\\")) }
                    out.append(byte)
                }
            } else {
                out.append(contentsOf: value.utf8)
            }
            out.append(UInt8(ascii: "\""))
        }
        out.append(UInt8(ascii: "}"))
        self.postgresText = String(decoding: out, as: UTF8.self)
    }
}
