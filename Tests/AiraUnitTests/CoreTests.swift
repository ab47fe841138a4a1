import AiraAMQP
import AiraCore
import AiraPostgres
import AiraRedis
import Foundation
import Synchronization
import Testing

final class FakeConnection: PooledConnection {
    let id: Int
    let brokenFlag = Atomic<Bool>(false)
    init(id: Int) { self.id = id }
    var isBroken: Bool { self.brokenFlag.load(ordering: .relaxed) }
    func close() async {}
}

struct FactoryFailure: Error {}

/// A shared integer for test closures.
final class SharedInt: Sendable {
    private let value = Mutex(0)
    var current: Int { self.value.withLock { $0 } }
    @discardableResult func add(_ n: Int) -> Int { self.value.withLock { $0 += n; return $0 } }
    func raise(to n: Int) { self.value.withLock { $0 = max($0, n) } }
}

@Suite("Connection pool")
struct ConnectionPoolTests {
    @Test("reuses connections and never opens more than the maximum")
    func bounded() async throws {
        let opened = SharedInt()
        let pool = ConnectionPool<FakeConnection>(maxConnections: 3, leaseTimeout: .seconds(5)) {
            FakeConnection(id: opened.add(1))
        }
        let maxSeen = SharedInt(), current = SharedInt()
        try await withThrowingTaskGroup(of: Void.self) { group in
            for _ in 0..<100 {
                group.addTask {
                    try await pool.withConnection { _ in
                        maxSeen.raise(to: current.add(1))
                        try await Task.sleep(for: .milliseconds(1))
                        current.add(-1)
                    }
                }
            }
            try await group.waitForAll()
        }
        #expect(opened.current == 3)
        #expect(maxSeen.current <= 3)
        #expect(pool.counts.open == 3 && pool.counts.idle == 3)
    }

    @Test("broken connections are replaced")
    func replacesBroken() async throws {
        let opened = SharedInt()
        let pool = ConnectionPool<FakeConnection>(maxConnections: 1, leaseTimeout: .seconds(1)) {
            FakeConnection(id: opened.add(1))
        }
        let first = try await pool.withConnection { c in c.brokenFlag.store(true, ordering: .relaxed); return c.id }
        let second = try await pool.withConnection { $0.id }
        #expect(first == 1 && second == 2)
    }

    @Test("a failing factory fails the caller at once and frees the slot")
    func factoryFailure() async throws {
        let calls = SharedInt()
        let pool = ConnectionPool<FakeConnection>(maxConnections: 1, leaseTimeout: .seconds(1)) {
            if calls.add(1) == 1 { throw FactoryFailure() }
            return FakeConnection(id: 1)
        }
        await #expect(throws: FactoryFailure.self) { try await pool.withConnection { $0.id } }
        #expect(try await pool.withConnection { $0.id } == 1)
    }

    @Test("waiters time out when every connection stays busy")
    func leaseTimeout() async throws {
        let pool = ConnectionPool<FakeConnection>(maxConnections: 1, leaseTimeout: .milliseconds(100)) { FakeConnection(id: 1) }
        let holder = Task { @Sendable in try await pool.withConnection { _ in try await Task.sleep(for: .milliseconds(500)) } }
        try await Task.sleep(for: .milliseconds(20))
        await #expect {
            try await pool.withConnection { $0.id }
        } throws: { error in
            if case ConnectionPoolError.leaseTimeout = error { return true }
            return false
        }
        try await holder.value
        #expect(try await pool.withConnection { $0.id } == 1)
    }

    @Test("the observer sees leased connections and waiting callers, back to zero when all are returned")
    func observed() async throws {
        let seen = Mutex<[ConnectionPool<FakeConnection>.Usage]>([])
        let pool = ConnectionPool<FakeConnection>(maxConnections: 2, leaseTimeout: .seconds(5),
                                                  observer: { usage in seen.withLock { $0.append(usage) } }) { FakeConnection(id: 1) }
        try await withThrowingTaskGroup(of: Void.self) { group in
            for _ in 0..<6 {
                group.addTask { try await pool.withConnection { _ in try await Task.sleep(for: .milliseconds(20)) } }
            }
            try await group.waitForAll()
        }
        let all = seen.withLock { $0 }
        #expect(all.first == .init(leased: 0, waiting: 0))
        #expect(all.map(\.leased).max() == 2)
        #expect(all.map(\.waiting).max() ?? 0 >= 1)
        #expect(all.allSatisfy { $0.leased <= 2 && $0.waiting <= 4 })
        #expect(all.last == .init(leased: 0, waiting: 0))
    }
}

@Suite("Owner thread and backoff")
struct OwnerThreadTests {
    @Test("runs jobs in order on one thread, off the cooperative pool")
    func ordered() async throws {
        let owner = OwnerThread<[Int]>(name: "test")
        try await withThrowingTaskGroup(of: Void.self) { group in
            for i in 0..<200 {
                group.addTask {
                    try await owner.run { list in
                        if list == nil { list = [] }
                        list!.append(i)
                    }
                }
            }
            try await group.waitForAll()
        }
        let names = try await owner.run { list in (list?.count ?? 0, Thread.current.name ?? "") }
        #expect(names.0 == 200)
        #expect(names.1 == "test")
        owner.shutdown()
        await #expect(throws: OwnerThreadClosed.self) { try await owner.run { _ in 1 } }
    }

    @Test("backoff grows and stays within its bounds")
    func backoff() {
        let b = Backoff(initial: .milliseconds(100), maximum: .seconds(2), minimum: .milliseconds(10))
        for attempt in 0..<20 {
            let d = b.delay(attempt: attempt)
            #expect(d >= .milliseconds(10) && d <= .seconds(2))
        }
        #expect((0..<50).map { _ in b.delay(attempt: 0) }.allSatisfy { $0 <= .milliseconds(100) })
    }
}

@Suite("Formats: hex, UUID text, JSON text, days and ISO 8601")
struct FormatTests {
    @Test("hex of bytes and of 64-bit values; digits read back in either case")
    func hex() {
        #expect([UInt8]([0x00, 0x0f, 0xa5, 0xff]).hexString == "000fa5ff")
        #expect([UInt8]().hexString == "")
        var out: [UInt8] = []
        Hex.append(0x0123_4567_89ab_cdef, to: &out)
        Hex.append(0, to: &out)
        #expect(String(decoding: out, as: UTF8.self) == "0123456789abcdef" + String(repeating: "0", count: 16))
        for n in UInt8(0)..<16 { #expect(Hex.value(Hex.digit(n)) == n) }
        #expect(Hex.value(UInt8(ascii: "F")) == 15 && Hex.value(UInt8(ascii: "g")) == nil && Hex.value(UInt8(ascii: "/")) == nil)
    }

    @Test("message ids are distinct version-4 UUIDs in lower case that Foundation reads")
    func messageIDs() throws {
        var seen = Set<String>()
        for _ in 0..<1_000 {
            let text = MessageID.random()
            let id = try #require(UUID(uuidString: text), "\(text)")
            #expect(text == id.uuidString.lowercased())
            #expect(Array(text)[14] == "4" && "89ab".contains(Array(text)[19]), "version 4, variant 10: \(text)")
            seen.insert(text)
        }
        #expect(seen.count == 1_000)
    }

    @Test("UUID text both ways agrees with Foundation; malformed text is refused")
    func uuids() {
        for _ in 0..<200 {
            let id = UUID()
            #expect(id.lowercasedString == id.uuidString.lowercased())
            #expect(UUID(text: id.uuidString) == id && UUID(text: id.lowercasedString) == id)
        }
        for bad in ["", "not-a-uuid", "0123456789abcdef0123456789abcdef0123", "01234567-89ab-cdef-0123-456789abcdeg",
                    "01234567+89ab-cdef-0123-456789abcdef", "01234567-89ab-cdef-0123-456789abcdef0", "é1234567-89ab-cdef-0123-456789abcde"] {
            #expect(UUID(text: bad) == nil, "\(bad)")
            #expect(UUID(uuidString: bad) == nil, "Foundation agrees on \(bad)")
        }
    }

    @Test("JSON string quoting: plain strings copied, escapes as JSON requires; Foundation reads them back")
    func quoting() throws {
        let long = String(repeating: "an answer that is longer than a small string ", count: 40)
        for s in ["plain", "", "say \"hi\"", "a\\b", "tab\tnew\nline\r", "\u{1}\u{1f}", "Grüße ✨", long, long + "\"", "\\" + long,
                  String(long.dropFirst(7).prefix(300)) + "\n"] {
            let quoted = JSONText.quoted(s)
            #expect(try JSONDecoder().decode(String.self, from: Data(quoted.utf8)) == s, "\(quoted)")
        }
        #expect(JSONText.quoted("\u{1}") == #""\u0001""#)
    }

    @Test("UTC day stamps agree with Calendar, leap years and centuries included")
    func dayStamps() {
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = TimeZone(identifier: "UTC")!
        for day in stride(from: Int64(-800), through: 60_000, by: 7) {
            let c = calendar.dateComponents([.year, .month, .day], from: Date(timeIntervalSince1970: Double(day) * 86_400))
            let expected = String(format: "%04d%02d%02d", c.year!, c.month!, c.day!)
            #expect(utcDayStamp(daysSinceEpoch: day) == expected, "day \(day)")
        }
    }

    @Test("days to dates and back are inverse over ±2,000 years; ISO 8601 both ways agrees with Foundation")
    func civilDays() throws {
        for day in stride(from: Int64(-730_000), through: 730_000, by: 97) {
            let (y, m, d) = civilDate(daysSinceEpoch: day)
            #expect(daysSinceEpoch(year: y, month: m, day: d) == day, "day \(day)")
        }
        let foundation = ISO8601DateFormatter()
        foundation.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        for seconds in [0, 951_782_400.5, 1_795_000_000.125, -86_400.25, 4_102_444_799.875] {  // whole milliseconds in binary
            let date = Date(timeIntervalSince1970: seconds)
            let text = iso8601(date)
            #expect(text == foundation.string(from: date), "\(seconds)")
            #expect(try abs(#require(parseISO8601(text)).timeIntervalSince1970 - seconds) < 0.001, "\(text)")
        }
        #expect(parseISO8601("2026-02-28T23:30:00+01:30")?.timeIntervalSince1970 == 1_772_316_000)
        #expect(parseISO8601("2026-13-01T00:00:00Z") == nil && parseISO8601("yesterday") == nil)
    }
}

@Suite("Batch queue")
struct BatchQueueTests {
    @Test("weighted items: a batch holds at most maxBatch of weight, in order; a heavy item goes alone")
    func weighted() async throws {
        let queue = BatchQueue<[Int], Int>(maxBatch: 10, maxDelay: .milliseconds(1), weight: { $0.count }) { CancellationError() }
        let sizes = [3, 4, 5, 12, 1, 1, 2]
        let taker = Task { () -> [[Int]] in
            var seen: [[Int]] = []
            while seen.flatMap({ $0 }).count < sizes.count, let batch = await queue.nextBatch() {
                seen.append(batch.map { $0.item.count })
                for entry in batch { entry.succeed(entry.item.count) }
            }
            return seen
        }
        // Queued in order before the taker looks (each submitter waits for its own answer).
        let answers = try await withThrowingTaskGroup(of: Int.self) { group in
            for (i, size) in sizes.enumerated() {
                group.addTask { try await queue.submit(Array(repeating: i, count: size)) }
                try await Task.sleep(for: .milliseconds(5))
            }
            return try await group.reduce(into: [Int]()) { $0.append($1) }
        }
        #expect(answers.sorted() == sizes.sorted())
        let batches = await taker.value
        #expect(batches.allSatisfy { $0.reduce(0, +) <= 10 || $0.count == 1 }, "\(batches)")
        #expect(batches.flatMap { $0 } == sizes, "order kept: \(batches)")
        queue.close()
        #expect(await queue.nextBatch() == nil)
    }

    @Test("posted items share batches with submitted ones, in order, and nobody waits for them; a closed queue refuses a post")
    func posted() async throws {
        let queue = BatchQueue<Int, Int>(maxBatch: 4, maxDelay: .seconds(30)) { CancellationError() }
        for i in 1...3 { #expect(queue.post(i)) }
        async let waited = queue.submit(4) // the fourth item fills the batch
        let batch = try #require(await queue.nextBatch())
        #expect(batch.map(\.item) == [1, 2, 3, 4])
        for entry in batch { entry.succeed(entry.item * 10) } // answering a posted item is a no-op
        #expect(try await waited == 40)
        queue.close()
        #expect(!queue.post(5))
        #expect(await queue.nextBatch() == nil)
    }

    @Test("maxItems: when that many wait, the batch goes at once instead of after maxDelay")
    func maxItems() async throws {
        let queue = BatchQueue<Int, Int>(maxBatch: 1000, maxDelay: .seconds(30), maxItems: 3) { CancellationError() }
        let taker = Task { await queue.nextBatch()?.map { entry in entry.succeed(entry.item); return entry.item } }
        let started = ContinuousClock.now
        let total = try await withThrowingTaskGroup(of: Int.self) { group in
            for i in 1...3 { group.addTask { try await queue.submit(i) } }
            return try await group.reduce(0, +)
        }
        #expect(total == 6)
        #expect(await taker.value?.sorted() == [1, 2, 3])
        #expect(ContinuousClock.now - started < .seconds(10), "did not wait for maxDelay")
        queue.close()
    }

    @Test("many unit items: every submitter answered once, batches of at most maxBatch")
    func many() async throws {
        let queue = BatchQueue<Int, Int>(maxBatch: 100, maxDelay: .milliseconds(2)) { CancellationError() }
        let largest = SharedInt()
        let takers = Task {
            await withTaskGroup(of: Void.self) { group in
                for _ in 0..<2 {
                    group.addTask {
                        while let batch = await queue.nextBatch() {
                            largest.raise(to: batch.count)
                            for entry in batch { entry.succeed(entry.item * 2) }
                        }
                    }
                }
            }
        }
        let total = try await withThrowingTaskGroup(of: Int.self) { group in
            for i in 0..<10_000 { group.addTask { try await queue.submit(i) } }
            return try await group.reduce(0, +)
        }
        #expect(total == 2 * (0..<10_000).reduce(0, +))
        #expect(largest.current <= 100 && largest.current > 1)
        queue.close()
        await takers.value
        await #expect(throws: CancellationError.self) { try await queue.submit(1) }
    }
}

@Suite("WAL positions")
struct WALPositionTests {
    @Test("LSN text → 64-bit position, ordered as the server orders them; junk is an error")
    func lsn() throws {
        #expect(try PostgresReadRouter.lsn("0/0") == 0)
        #expect(try PostgresReadRouter.lsn("0/16B3748") == 0x16B3748)
        #expect(try PostgresReadRouter.lsn("16/B374D848") == (0x16 << 32) | 0xB374D848)
        #expect(try PostgresReadRouter.lsn("1/0") > PostgresReadRouter.lsn("0/FFFFFFFF"))
        for bad in ["", "12", "x/1", "1/2/3"] { #expect(throws: PostgresError.self) { try PostgresReadRouter.lsn(bad) } }
    }
}

@Suite("Connection URLs in errors")
struct URLTextTests {
    @Test("the password is replaced by ***; user, host, port and path are kept")
    func redacted() {
        #expect(URLText.redacted("amqp://aira:s3cret@127.0.0.1:5672/%2f") == "amqp://aira:***@127.0.0.1:5672/%2f")
        #expect(URLText.redacted("redis://:pw@localhost:6379/2") == "redis://:***@localhost:6379/2")
        #expect(URLText.redacted("postgres://u:p@ss@db/x?sslmode=disable") == "postgres://u:***@db/x?sslmode=disable")
        #expect(URLText.redacted("redis://localhost:6379") == "redis://localhost:6379")
        #expect(URLText.redacted("http://user@host/") == "http://user@host/")
        #expect(URLText.redacted("not a url") == "not a url")
    }

    @Test("an invalid Redis or AMQP URL's error does not print its password")
    func invalidURLErrors() {
        do {
            _ = try RedisConfiguration(url: "redis://:topsecret@host:6379/notanumber")
            Issue.record("accepted")
        } catch {
            #expect(!"\(error)".contains("topsecret"), "\(error)")
        }
        do {
            _ = try AMQPConfiguration(url: "amqps://guest:topsecret@")
            Issue.record("accepted")
        } catch {
            #expect(!"\(error)".contains("topsecret"), "\(error)")
        }
    }

    @Test("a PostgreSQL error's description holds no row data: no constraint detail, no undecodable value")
    func postgresErrorsHoldNoRowData() {
        let unique = PostgresError.server(sqlState: "23505", message: "duplicate key value violates unique constraint \"accounts_email_key\"",
                                          detail: "Key (email)=(ada@example.com) already exists.")
        #expect("\(unique)" == "PostgreSQL error 23505: duplicate key value violates unique constraint \"accounts_email_key\"")
        #expect(unique.isUniqueViolation)
        let decoding = PostgresError.decoding(column: "note", value: "ada@example.com", expected: "Int")
        #expect(!"\(decoding)".contains("ada@example.com") && "\(decoding)".contains("15 bytes"), "\(decoding)")
    }
}
