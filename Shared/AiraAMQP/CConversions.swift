import CRabbitMQ
#if canImport(Glibc)
import Glibc
#endif

/// Owns the C memory of one call (strings, table entries) and frees it all at once afterwards.
/// rabbitmq-c copies what it sends before returning, so the arena can end with the call.
/// Memory comes from bump-allocated chunks; `reset()` makes them reusable (the publish path
/// keeps one arena and resets it per message instead of calling malloc for every string).
///
/// Keep it alive across the C call (``withArena(_:)`` or `defer { withExtendedLifetime(arena) {} }`):
/// Swift may free an object right after its last use.
final class CArena {
    private var chunks: [(pointer: UnsafeMutableRawPointer, size: Int)] = []
    private var offset = 0
    private static let chunkSize = 16 * 1024

    deinit { for c in self.chunks { free(c.pointer) } }

    /// Makes all memory reusable; keeps the first chunk.
    func reset() {
        if self.chunks.count > 1 {
            for c in self.chunks.dropFirst() { free(c.pointer) }
            self.chunks.removeLast(self.chunks.count - 1)
        }
        self.offset = 0
    }

    func allocate(_ size: Int, alignment: Int = 8) -> UnsafeMutableRawPointer {
        let size = max(size, 1)
        if let last = self.chunks.last {
            let aligned = (self.offset + alignment - 1) & ~(alignment - 1)
            if aligned + size <= last.size {
                self.offset = aligned + size
                return last.pointer + aligned
            }
        }
        let chunk = max(Self.chunkSize, size)
        guard let p = malloc(chunk) else { fatalError("out of memory") }
        self.chunks.append((p, chunk))
        self.offset = size
        return p
    }

    func bytes(_ string: String) -> amqp_bytes_t {
        var string = string
        return string.withUTF8 { utf8 in
            let p = self.allocate(utf8.count, alignment: 1)
            if utf8.count > 0 { p.copyMemory(from: utf8.baseAddress!, byteCount: utf8.count) }
            return amqp_bytes_t(len: utf8.count, bytes: p)
        }
    }

    func bytes(_ array: inout [UInt8]) -> amqp_bytes_t {
        let count = array.count
        let p = self.allocate(count, alignment: 1)
        array.withUnsafeBytes { src in
            if count > 0 { p.copyMemory(from: src.baseAddress!, byteCount: count) }
        }
        return amqp_bytes_t(len: count, bytes: p)
    }


    func table(_ table: AMQPTable) -> amqp_table_t {
        guard !table.isEmpty else { return amqp_table_t(num_entries: 0, entries: nil) }
        let count = table.count
        let raw = self.allocate(count * MemoryLayout<amqp_table_entry_t>.stride, alignment: MemoryLayout<amqp_table_entry_t>.alignment)
        let entries = raw.bindMemory(to: amqp_table_entry_t.self, capacity: count)
        for (i, (key, value)) in table.enumerated() {
            entries[i].key = self.bytes(key)
            entries[i].value = self.field(value)
        }
        return amqp_table_t(num_entries: Int32(count), entries: entries)
    }

    func field(_ value: AMQPFieldValue) -> amqp_field_value_t {
        var f = amqp_field_value_t()
        switch value {
        case .string(let s):
            f.kind = Kind.utf8; f.value.bytes = self.bytes(s)
        case .int(let v):
            f.kind = Kind.i64; f.value.i64 = v
        case .bool(let b):
            f.kind = Kind.boolean; f.value.boolean = b ? 1 : 0
        case .double(let d):
            f.kind = Kind.f64; f.value.f64 = d
        case .timestamp(let t):
            f.kind = Kind.timestamp; f.value.u64 = t
        case .bytes(var b):
            f.kind = Kind.bytes; f.value.bytes = self.bytes(&b)
        case .table(let t):
            f.kind = Kind.table; f.value.table = self.table(t)
        case .array(let items):
            f.kind = Kind.array
            let raw = self.allocate(max(items.count, 1) * MemoryLayout<amqp_field_value_t>.stride,
                                    alignment: MemoryLayout<amqp_field_value_t>.alignment)
            let entries = raw.bindMemory(to: amqp_field_value_t.self, capacity: max(items.count, 1))
            for (i, item) in items.enumerated() { entries[i] = self.field(item) }
            f.value.array = amqp_array_t(num_entries: Int32(items.count), entries: entries)
        case .void:
            f.kind = Kind.void
        }
        return f
    }

    func properties(_ p: AMQPProperties) -> amqp_basic_properties_t {
        var c = amqp_basic_properties_t()
        var flags: amqp_flags_t = 0
        if let v = p.contentType { c.content_type = self.bytes(v); flags |= aira_amqp_flag_content_type() }
        if let v = p.contentEncoding { c.content_encoding = self.bytes(v); flags |= amqp_flags_t(1 << 14) }
        if !p.headers.isEmpty { c.headers = self.table(p.headers); flags |= aira_amqp_flag_headers() }
        if let v = p.deliveryMode { c.delivery_mode = v; flags |= aira_amqp_flag_delivery_mode() }
        if let v = p.priority { c.priority = v; flags |= aira_amqp_flag_priority() }
        if let v = p.correlationID { c.correlation_id = self.bytes(v); flags |= aira_amqp_flag_correlation_id() }
        if let v = p.replyTo { c.reply_to = self.bytes(v); flags |= aira_amqp_flag_reply_to() }
        if let v = p.expiration { c.expiration = self.bytes(v); flags |= aira_amqp_flag_expiration() }
        if let v = p.messageID { c.message_id = self.bytes(v); flags |= aira_amqp_flag_message_id() }
        if let v = p.timestamp { c.timestamp = v; flags |= aira_amqp_flag_timestamp() }
        if let v = p.type { c.type = self.bytes(v); flags |= aira_amqp_flag_type() }
        if let v = p.appID { c.app_id = self.bytes(v); flags |= aira_amqp_flag_app_id() }
        c._flags = flags
        return c
    }
}

/// Field kinds as rabbitmq-c stores them (one ASCII letter each).
enum Kind {
    static let boolean = UInt8(ascii: "t")
    static let i8 = UInt8(ascii: "b"), u8 = UInt8(ascii: "B")
    static let i16 = UInt8(ascii: "s"), u16 = UInt8(ascii: "u")
    static let i32 = UInt8(ascii: "I"), u32 = UInt8(ascii: "i")
    static let i64 = UInt8(ascii: "l"), u64 = UInt8(ascii: "L")
    static let f32 = UInt8(ascii: "f"), f64 = UInt8(ascii: "d")
    static let decimal = UInt8(ascii: "D")
    static let utf8 = UInt8(ascii: "S"), bytes = UInt8(ascii: "x")
    static let array = UInt8(ascii: "A"), table = UInt8(ascii: "F")
    static let timestamp = UInt8(ascii: "T"), void = UInt8(ascii: "V")
}

// MARK: - C to Swift

extension amqp_bytes_t {
    var array: [UInt8] {
        guard self.len > 0, let p = self.bytes else { return [] }
        return Array(UnsafeRawBufferPointer(start: p, count: self.len))
    }

    var string: String {
        guard self.len > 0, let p = self.bytes else { return "" }
        return String(decoding: UnsafeRawBufferPointer(start: p, count: self.len), as: UTF8.self)
    }
}

func swiftTable(_ t: amqp_table_t) -> AMQPTable {
    var result: AMQPTable = [:]
    guard t.num_entries > 0, let entries = t.entries else { return result }
    for i in 0..<Int(t.num_entries) {
        result[entries[i].key.string] = swiftField(entries[i].value)
    }
    return result
}

func swiftField(_ f: amqp_field_value_t) -> AMQPFieldValue {
    switch f.kind {
    case Kind.boolean: return .bool(f.value.boolean != 0)
    case Kind.i8: return .int(Int64(f.value.i8))
    case Kind.u8: return .int(Int64(f.value.u8))
    case Kind.i16: return .int(Int64(f.value.i16))
    case Kind.u16: return .int(Int64(f.value.u16))
    case Kind.i32: return .int(Int64(f.value.i32))
    case Kind.u32: return .int(Int64(f.value.u32))
    case Kind.i64: return .int(f.value.i64)
    case Kind.u64: return .int(Int64(clamping: f.value.u64))
    case Kind.f32: return .double(Double(f.value.f32))
    case Kind.f64: return .double(f.value.f64)
    case Kind.decimal:
        var v = Double(f.value.decimal.value)
        for _ in 0..<f.value.decimal.decimals { v /= 10 }
        return .double(v)
    case Kind.utf8: return .string(f.value.bytes.string)
    case Kind.bytes: return .bytes(f.value.bytes.array)
    case Kind.timestamp: return .timestamp(f.value.u64)
    case Kind.table: return .table(swiftTable(f.value.table))
    case Kind.array:
        let a = f.value.array
        guard a.num_entries > 0, let e = a.entries else { return .array([]) }
        return .array((0..<Int(a.num_entries)).map { swiftField(e[$0]) })
    default: return .void
    }
}

func swiftProperties(_ c: amqp_basic_properties_t) -> AMQPProperties {
    let f = c._flags
    var p = AMQPProperties()
    if f & aira_amqp_flag_content_type() != 0 { p.contentType = c.content_type.string }
    if f & amqp_flags_t(1 << 14) != 0 { p.contentEncoding = c.content_encoding.string }
    if f & aira_amqp_flag_headers() != 0 { p.headers = swiftTable(c.headers) }
    if f & aira_amqp_flag_delivery_mode() != 0 { p.deliveryMode = c.delivery_mode }
    if f & aira_amqp_flag_priority() != 0 { p.priority = c.priority }
    if f & aira_amqp_flag_correlation_id() != 0 { p.correlationID = c.correlation_id.string }
    if f & aira_amqp_flag_reply_to() != 0 { p.replyTo = c.reply_to.string }
    if f & aira_amqp_flag_expiration() != 0 { p.expiration = c.expiration.string }
    if f & aira_amqp_flag_message_id() != 0 { p.messageID = c.message_id.string }
    if f & aira_amqp_flag_timestamp() != 0 { p.timestamp = c.timestamp }
    if f & aira_amqp_flag_type() != 0 { p.type = c.type.string }
    if f & aira_amqp_flag_app_id() != 0 { p.appID = c.app_id.string }
    return p
}

/// Runs `body` with an arena that lives until `body` has returned.
func withArena<T>(_ body: (CArena) throws -> T) rethrows -> T {
    let arena = CArena()
    return try withExtendedLifetime(arena) { try body(arena) }
}
