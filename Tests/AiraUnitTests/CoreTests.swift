import AiraCore
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
        owner.join()
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

@Suite("Small formats")
struct SmallFormatTests {
    @Test("hex of bytes")
    func hex() {
        #expect([UInt8]([0x00, 0x0f, 0xa5, 0xff]).hexString == "000fa5ff")
        #expect([UInt8]().hexString == "")
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
}
