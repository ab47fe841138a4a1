import AiraCore
import CHiredis
import Foundation
import Synchronization

/// The hiredis context, owned by one thread; freed on that thread.
final class RedisContext {
    let pointer: UnsafeMutablePointer<redisContext>
    init(_ pointer: UnsafeMutablePointer<redisContext>) { self.pointer = pointer }
    deinit { redisFree(self.pointer) }

    var errorText: String {
        withUnsafeBytes(of: self.pointer.pointee.errstr) { raw in
            String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
        }
    }
}

/// One Redis connection: a hiredis context on its own thread. Commands from async callers run
/// there in order. An I/O error or timeout marks it broken; the pool then replaces it.
final class RedisConnection: PooledConnection {
    private let thread: OwnerThread<RedisContext>
    private let broken = Atomic<Bool>(false)

    var isBroken: Bool { self.broken.load(ordering: .relaxed) }

    private init(thread: OwnerThread<RedisContext>) { self.thread = thread }

    static func connect(_ config: RedisConfiguration) async throws -> RedisConnection {
        let thread = OwnerThread<RedisContext>(name: "redis")
        let connection = RedisConnection(thread: thread)
        do {
            try await thread.run { resource in
                let server = try config.sentinel.map { try Self.askSentinels($0, config: config) }
                    ?? HostList.Endpoint(host: config.host, port: config.port)
                let context = try Self.open(server, config: config)
                resource = context
                if let password = config.password {
                    if case .error(let e) = try Self.execute(context, [Array("AUTH".utf8), Array(password.utf8)]) {
                        throw RedisError.connectFailed("AUTH: \(e)")
                    }
                }
                if config.database != 0 {
                    if case .error(let e) = try Self.execute(context, [Array("SELECT".utf8), Array(String(config.database).utf8)]) {
                        throw RedisError.connectFailed("SELECT: \(e)")
                    }
                }
                if config.sentinel != nil {
                    // Between a sentinel's answer and now a failover may have demoted it.
                    let role = try Self.execute(context, [Array("ROLE".utf8)])
                    guard let first = role.array?.first?.string else {
                        throw RedisError.connectFailed("\(server): ROLE answered \(role)")
                    }
                    guard first == "master" else {
                        throw RedisError.connectFailed("\(server) is a \(first), not the primary (a failover is under way)")
                    }
                }
            }
        } catch {
            thread.shutdown()
            throw error
        }
        return connection
    }

    private static func open(_ server: HostList.Endpoint, config: RedisConfiguration) throws -> RedisContext {
        guard let ctx = redisConnectWithTimeout(server.host, Int32(server.port), timeval(tv_sec: config.connectTimeout.timeval.seconds, tv_usec: config.connectTimeout.timeval.microseconds)) else {
            throw RedisError.connectFailed("out of memory")
        }
        let context = RedisContext(ctx)
        if ctx.pointee.err != 0 {
            throw RedisError.connectFailed("\(server): \(context.errorText)")
        }
        redisSetTimeout(ctx, timeval(tv_sec: config.commandTimeout.timeval.seconds, tv_usec: config.commandTimeout.timeval.microseconds))
        _ = redisEnableKeepAlive(ctx)
        return context
    }

    /// Which sentinel a connection asks first: each new connection starts at the next, so that
    /// one sentinel that is down costs one connect timeout at most once per round.
    private static let nextSentinel = Atomic<Int>(0)

    /// Asks the sentinels in turn for the primary's address (`SENTINEL get-master-addr-by-name`).
    private static func askSentinels(_ sentinel: RedisConfiguration.Sentinel, config: RedisConfiguration) throws -> HostList.Endpoint {
        let command = [Array("SENTINEL".utf8), Array("get-master-addr-by-name".utf8), Array(sentinel.primaryName.utf8)]
        let start = Self.nextSentinel.add(1, ordering: .relaxed).oldValue
        var failures: [String] = []
        for i in 0..<sentinel.nodes.count {
            let node = sentinel.nodes[(start + i) % sentinel.nodes.count]
            do {
                let context = try Self.open(node, config: config)
                var reply = try Self.execute(context, command)
                if case .error(let e) = reply, e.hasPrefix("NOAUTH"), let password = config.password {
                    _ = try Self.execute(context, [Array("AUTH".utf8), Array(password.utf8)])
                    reply = try Self.execute(context, command)
                }
                if let pair = reply.array, pair.count == 2, let host = pair[0].string, let port = pair[1].int.map(Int.init),
                   let endpoint = HostList.endpoint(host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)", defaultPort: port) {
                    return endpoint
                }
                failures.append(reply.isNull ? "\(node): monitors no primary named '\(sentinel.primaryName)'" : "\(node): answered \(reply)")
            } catch {
                failures.append("\(error)")
            }
        }
        throw RedisError.connectFailed("no sentinel named the primary: " + failures.joined(separator: "; "))
    }

    /// Runs one command; a server error comes back as `.error`, not thrown.
    func send(_ args: [[UInt8]]) async throws -> RedisValue {
        let reply = try await self.onThread { context in try Self.execute(context, args) }
        self.noteDemotion(reply)
        return reply
    }

    /// A `READONLY` reply: this server was the primary and is a replica now (a failover). The
    /// connection is discarded, so that the next one asks the sentinels (or, behind a Service
    /// that follows the primary, reaches the new one).
    private func noteDemotion(_ reply: RedisValue) {
        if case .error(let e) = reply, e.hasPrefix("READONLY") { self.broken.store(true, ordering: .relaxed) }
    }

    /// Sends every command, then reads every reply (one round trip).
    func pipeline(_ commands: [[[UInt8]]]) async throws -> [RedisValue] {
        let replies = try await self.onThread { context in
            for args in commands {
                let rc = Self.withArgv(args) { argc, argv, lens in redisAppendCommandArgv(context.pointer, argc, argv, lens) }
                guard rc == REDIS_OK else { throw RedisError.connectionLost(context.errorText) }
            }
            var replies: [RedisValue] = []
            replies.reserveCapacity(commands.count)
            for _ in commands {
                var raw: UnsafeMutableRawPointer?
                guard redisGetReply(context.pointer, &raw) == REDIS_OK, let raw else {
                    throw RedisError.connectionLost(context.errorText)
                }
                let reply = raw.assumingMemoryBound(to: redisReply.self)
                replies.append(Self.convert(reply))
                freeReplyObject(raw)
            }
            return replies
        }
        for reply in replies { self.noteDemotion(reply) }
        return replies
    }

    func close() async {
        self.thread.shutdown()
    }

    private func onThread<T: Sendable>(_ body: @escaping @Sendable (RedisContext) throws -> T) async throws -> T {
        do {
            return try await self.thread.run { resource in
                guard let context = resource else { throw RedisError.connectionLost("not connected") }
                return try body(context)
            }
        } catch let error as RedisError {
            if case .connectionLost = error { self.broken.store(true, ordering: .relaxed) }
            throw error
        } catch {
            self.broken.store(true, ordering: .relaxed)
            throw RedisError.connectionLost("\(error)")
        }
    }

    private static func execute(_ context: RedisContext, _ args: [[UInt8]]) throws -> RedisValue {
        let raw = Self.withArgv(args) { argc, argv, lens in redisCommandArgv(context.pointer, argc, argv, lens) }
        guard let raw else { throw RedisError.connectionLost(context.errorText) }
        defer { freeReplyObject(raw) }
        return Self.convert(raw.assumingMemoryBound(to: redisReply.self))
    }

    private static func withArgv<T>(_ args: [[UInt8]], _ body: (Int32, UnsafeMutablePointer<UnsafePointer<CChar>?>, UnsafePointer<Int>) -> T) -> T {
        // Copy every argument into one buffer that lives for the call.
        let total = args.reduce(0) { $0 + $1.count }
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: max(total, 1), alignment: 1)
        defer { buffer.deallocate() }
        var pointers = [UnsafePointer<CChar>?](repeating: nil, count: args.count)
        var lengths = [Int](repeating: 0, count: args.count)
        var offset = 0
        for (i, arg) in args.enumerated() {
            let start = buffer.baseAddress!.advanced(by: offset)
            arg.withUnsafeBytes { src in
                if !src.isEmpty { start.copyMemory(from: src.baseAddress!, byteCount: src.count) }
            }
            pointers[i] = UnsafePointer(start.assumingMemoryBound(to: CChar.self))
            lengths[i] = arg.count
            offset += arg.count
        }
        return pointers.withUnsafeMutableBufferPointer { p in
            lengths.withUnsafeBufferPointer { l in body(Int32(args.count), p.baseAddress!, l.baseAddress!) }
        }
    }

    private static func convert(_ reply: UnsafeMutablePointer<redisReply>) -> RedisValue {
        let r = reply.pointee
        switch r.type {
        case REDIS_REPLY_STRING:
            return .bulk(r.str.map { Array(UnsafeRawBufferPointer(start: $0, count: r.len)) } ?? [])
        case REDIS_REPLY_STATUS:
            return .simple(r.str.map { String(decoding: UnsafeRawBufferPointer(start: $0, count: r.len), as: UTF8.self) } ?? "")
        case REDIS_REPLY_ERROR:
            return .error(r.str.map { String(decoding: UnsafeRawBufferPointer(start: $0, count: r.len), as: UTF8.self) } ?? "")
        case REDIS_REPLY_INTEGER:
            return .integer(r.integer)
        case REDIS_REPLY_ARRAY:
            guard let elements = r.element else { return .array([]) }
            return .array((0..<r.elements).map { i in elements[i].map(convert) ?? .null })
        default:
            return .null
        }
    }
}
