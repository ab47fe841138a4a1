import AiraCore
import CLibPQ
import Foundation
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// The libpq connection, owned by one thread; finished on that thread.
final class PGConn {
    let pointer: OpaquePointer
    var prepared: [String: String] = [:]
    init(_ pointer: OpaquePointer) { self.pointer = pointer }
    deinit { PQfinish(self.pointer) }

    var errorText: String {
        PQerrorMessage(self.pointer).map { String(cString: $0).trimmingCharacters(in: .whitespacesAndNewlines) } ?? "unknown error"
    }
}

/// One PostgreSQL connection on its own thread. Statements run with the async libpq API and a
/// `poll(2)` deadline, so a hung server costs at most the query timeout.
public final class PostgresConnection: PooledConnection {
    private let thread: OwnerThread<PGConn>
    private let broken = Atomic<Bool>(false)
    let queryTimeout: Duration

    public var isBroken: Bool { self.broken.load(ordering: .relaxed) }

    private init(thread: OwnerThread<PGConn>, queryTimeout: Duration) {
        self.thread = thread
        self.queryTimeout = queryTimeout
    }

    static func connect(_ config: PostgresConfiguration) async throws -> PostgresConnection {
        let thread = OwnerThread<PGConn>(name: "postgres")
        let connection = PostgresConnection(thread: thread, queryTimeout: config.queryTimeout)
        do {
            try await thread.run { resource in
                guard let raw = PQconnectdb(config.conninfo) else { throw PostgresError.connectFailed("out of memory") }
                let conn = PGConn(raw)
                guard PQstatus(raw) == CONNECTION_OK else { throw PostgresError.connectFailed(conn.errorText) }
                aira_pq_silence_notices(raw)
                resource = conn
                var setup = "SET TIME ZONE 'UTC'; SET DateStyle = 'ISO, YMD';"
                // The schema first, then public: where extensions keep their types, operators and
                // operator classes (pg_trgm, rum), which a schema of its own must still see.
                if let path = config.searchPath { setup += " SET search_path TO \(PostgresQuery.quoteIdentifier(path)), public;" }
                _ = try Self.run(conn, sql: setup, binds: [], prepared: false, simple: true, timeout: config.queryTimeout)
            }
        } catch {
            thread.shutdown()
            throw error
        }
        return connection
    }

    /// Runs a statement with bound parameters. With `prepared`, the statement is prepared once
    /// per connection and reused.
    @discardableResult
    public func query(_ query: PostgresQuery, prepared: Bool = false) async throws -> PostgresResult {
        let timeout = self.queryTimeout
        return try await self.onThread { conn in
            try Self.run(conn, sql: query.sql, binds: query.binds, prepared: prepared, simple: false, timeout: timeout)
        }
    }

    /// Runs SQL text that may hold several statements, without parameters (migrations).
    public func executeScript(unsafeSQL sql: String) async throws {
        let timeout = self.queryTimeout
        _ = try await self.onThread { conn in
            try Self.run(conn, sql: sql, binds: [], prepared: false, simple: true, timeout: timeout)
        }
    }

    /// Bulk insert with `COPY … FROM STDIN` (text format). Returns the rows copied.
    @discardableResult
    public func copyIn(table: String, columns: [String], rows: [[(any PostgresBindable)?]]) async throws -> Int {
        let cols = columns.map(PostgresQuery.quoteIdentifier).joined(separator: ", ")
        let sql = "COPY \(PostgresQuery.quoteIdentifier(table)) (\(cols)) FROM STDIN"
        var data: [UInt8] = []
        data.reserveCapacity(rows.count * 128)
        for row in rows {
            for (i, value) in row.enumerated() {
                if i > 0 { data.append(UInt8(ascii: "\t")) }
                if let value { Self.appendCopyEscaped(value.postgresText, to: &data) } else { data += [UInt8(ascii: "\\"), UInt8(ascii: "N")] }
            }
            data.append(UInt8(ascii: "\n"))
        }
        let payload = data
        let timeout = self.queryTimeout
        return try await self.onThread { conn in
            let start = try Self.run(conn, sql: sql, binds: [], prepared: false, simple: true, timeout: timeout, copyData: payload)
            return start.affectedRows
        }
    }

    public func close() async { self.thread.shutdown() }

    private func onThread<T: Sendable>(_ body: @escaping @Sendable (PGConn) throws -> T) async throws -> T {
        do {
            return try await self.thread.run { resource in
                guard let conn = resource else { throw PostgresError.connectionLost("not connected") }
                do {
                    return try body(conn)
                } catch {
                    if PQstatus(conn.pointer) != CONNECTION_OK { resource = nil }
                    throw error
                }
            }
        } catch let error as PostgresError {
            switch error {
            case .connectionLost, .timeout: self.broken.store(true, ordering: .relaxed)
            default: if error.sqlState?.hasPrefix("08") == true { self.broken.store(true, ordering: .relaxed) }
            }
            throw error
        } catch {
            self.broken.store(true, ordering: .relaxed)
            throw PostgresError.connectionLost("\(error)")
        }
    }

    /// A value in COPY's text format: backslash, newline, carriage return and tab escaped. Works
    /// on UTF-8 bytes (every byte of a multi-byte character is ≥ 0x80, so none is mistaken).
    static func appendCopyEscaped(_ s: String, to out: inout [UInt8]) {
        for byte in s.utf8 {
            switch byte {
            case UInt8(ascii: "\\"): out += [UInt8(ascii: "\\"), UInt8(ascii: "\\")]
            case UInt8(ascii: "\n"): out += [UInt8(ascii: "\\"), UInt8(ascii: "n")]
            case UInt8(ascii: "\r"): out += [UInt8(ascii: "\\"), UInt8(ascii: "r")]
            case UInt8(ascii: "\t"): out += [UInt8(ascii: "\\"), UInt8(ascii: "t")]
            default: out.append(byte)
            }
        }
    }

    // MARK: - On the connection's thread

    /// Sends one statement and collects its result, waiting at most `timeout`.
    static func run(_ conn: PGConn, sql: String, binds: [String?], prepared: Bool, simple: Bool, timeout: Duration,
                    copyData: [UInt8]? = nil) throws -> PostgresResult {
        let pg = conn.pointer
        let deadline = ContinuousClock.now + timeout
        let sent: Int32
        if simple {
            sent = PQsendQuery(pg, sql)
        } else {
            sent = try withCStrings(binds) { values in
                if prepared {
                    let name = try prepare(conn, sql: sql, count: binds.count, deadline: deadline, timeout: timeout)
                    return PQsendQueryPrepared(pg, name, Int32(binds.count), values, nil, nil, 0)
                }
                return PQsendQueryParams(pg, sql, Int32(binds.count), nil, values, nil, nil, 0)
            }
        }
        guard sent == 1 else { throw PostgresError.connectionLost(conn.errorText) }
        return try collect(conn, deadline: deadline, timeout: timeout, copyData: copyData)
    }

    private static func prepare(_ conn: PGConn, sql: String, count: Int, deadline: ContinuousClock.Instant,
                                timeout: Duration) throws -> String {
        if let name = conn.prepared[sql] { return name }
        let name = "aira_\(conn.prepared.count + 1)"
        guard PQsendPrepare(conn.pointer, name, sql, Int32(count), nil) == 1 else {
            throw PostgresError.connectionLost(conn.errorText)
        }
        _ = try collect(conn, deadline: deadline, timeout: timeout, copyData: nil)
        conn.prepared[sql] = name
        return name
    }

    private static func collect(_ conn: PGConn, deadline: ContinuousClock.Instant, timeout: Duration,
                                copyData: [UInt8]?) throws -> PostgresResult {
        let pg = conn.pointer
        var failure: PostgresError?
        var result = PostgresResult(columns: [], rows: [], affectedRows: 0)
        while true {
            try waitUntilReady(conn, deadline: deadline, timeout: timeout)
            guard let res = PQgetResult(pg) else { break }
            defer { PQclear(res) }
            switch PQresultStatus(res) {
            case PGRES_TUPLES_OK, PGRES_COMMAND_OK:
                if failure == nil { result = read(res) }
            case PGRES_COPY_IN:
                let data = copyData ?? []
                let ok = data.withUnsafeBufferPointer { buf in
                    buf.baseAddress!.withMemoryRebound(to: CChar.self, capacity: max(buf.count, 1)) {
                        data.isEmpty ? 1 : PQputCopyData(pg, $0, Int32(buf.count))
                    }
                }
                guard ok == 1, PQputCopyEnd(pg, nil) == 1 else { throw PostgresError.connectionLost(conn.errorText) }
            case PGRES_EMPTY_QUERY:
                break
            default:
                if failure == nil { failure = serverError(res, conn: conn) }
            }
        }
        if let failure { throw failure }
        return result
    }

    /// Waits until libpq has a whole result to hand out, or the deadline passes.
    private static func waitUntilReady(_ conn: PGConn, deadline: ContinuousClock.Instant, timeout: Duration) throws {
        let pg = conn.pointer
        while PQisBusy(pg) == 1 {
            let remaining = deadline - ContinuousClock.now
            guard remaining > .zero else {
                if let cancel = PQgetCancel(pg) {
                    var buffer = [CChar](repeating: 0, count: 256)
                    _ = PQcancel(cancel, &buffer, 256)
                    PQfreeCancel(cancel)
                }
                throw PostgresError.timeout(timeout)
            }
            var fds = pollfd(fd: PQsocket(pg), events: Int16(POLLIN), revents: 0)
            let rc = poll(&fds, 1, Int32(clamping: remaining.milliseconds + 1))
            if rc < 0 && errno != EINTR { throw PostgresError.connectionLost("poll: \(errno)") }
            guard PQconsumeInput(pg) == 1 else { throw PostgresError.connectionLost(conn.errorText) }
        }
    }

    private static func read(_ res: OpaquePointer) -> PostgresResult {
        let nFields = Int(PQnfields(res)), nRows = Int(PQntuples(res))
        let columns = (0..<nFields).map { String(cString: PQfname(res, Int32($0))) }
        var rows: [PostgresRow] = []
        rows.reserveCapacity(nRows)
        for r in 0..<nRows {
            let values: [String?] = (0..<nFields).map { c in
                PQgetisnull(res, Int32(r), Int32(c)) == 1 ? nil : String(cString: PQgetvalue(res, Int32(r), Int32(c)))
            }
            rows.append(PostgresRow(columns: columns, values: values))
        }
        let affected = PQcmdTuples(res).map { Int(String(cString: $0)) ?? 0 } ?? 0
        return PostgresResult(columns: columns, rows: rows, affectedRows: affected)
    }

    private static func serverError(_ res: OpaquePointer, conn: PGConn) -> PostgresError {
        func field(_ code: Character) -> String? {
            PQresultErrorField(res, Int32(code.asciiValue!)).map { String(cString: $0) }
        }
        guard let state = field("C") else {
            return PostgresError.connectionLost(conn.errorText)
        }
        return .server(sqlState: state, message: field("M") ?? "", detail: field("D"))
    }

    private static func withCStrings<T>(_ values: [String?], _ body: ([UnsafePointer<CChar>?]) throws -> T) rethrows -> T {
        let copies: [UnsafeMutablePointer<CChar>?] = values.map { $0.flatMap { strdup($0) } }
        defer { for p in copies { free(p) } }
        return try body(copies.map { $0.map { UnsafePointer($0) } })
    }
}
