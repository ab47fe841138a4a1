import AiraCore
import Foundation
import Synchronization

/// Hot-path helpers: every message carries a timestamp and a trace id, so these run for every
/// publish and delivery. Foundation's ISO 8601 FormatStyle and per-byte system randomness were
/// the top two costs in the messaging benchmark's profile.
enum FastRandom {
    /// splitmix64, seeded once from the system generator. Trace and span ids need to be unique,
    /// not secret.
    private static let state = Mutex<UInt64>(UInt64.random(in: .min ... .max))

    static func next() -> UInt64 {
        let s = state.withLock { s -> UInt64 in
            s &+= 0x9E37_79B9_7F4A_7C15
            return s
        }
        var z = s
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

private let hexDigits: [UInt8] = Array("0123456789abcdef".utf8)

/// Appends `value` as 16 lowercase hex digits.
func appendHex(_ value: UInt64, to out: inout [UInt8]) {
    var shift: UInt64 = 60
    for _ in 0..<16 {
        out.append(hexDigits[Int((value >> shift) & 0xF)])
        shift &-= 4
    }
}

/// Parses `YYYY-MM-DDTHH:MM:SS[.fraction](Z|±HH:MM)`; other ISO 8601 forms go to Foundation.
public func parseISO8601(_ text: String) -> Date? {
    if let fast = fastParseISO8601(Array(text.utf8)) { return fast }
    if let d = try? Date(text, strategy: .iso8601.year().month().day().time(includingFractionalSeconds: true)) { return d }
    return try? Date(text, strategy: .iso8601)
}

private func fastParseISO8601(_ s: [UInt8]) -> Date? {
    guard s.count >= 20, s[4] == 45, s[7] == 45, s[10] == 84 || s[10] == 32, s[13] == 58, s[16] == 58 else { return nil }
    func num(_ from: Int, _ len: Int) -> Int64? {
        var v: Int64 = 0
        for i in from..<(from + len) {
            let c = s[i]
            guard c >= 48 && c <= 57 else { return nil }
            v = v * 10 + Int64(c - 48)
        }
        return v
    }
    guard let y = num(0, 4), let mo = num(5, 2), let d = num(8, 2), let h = num(11, 2), let mi = num(14, 2), let sec = num(17, 2),
          (1...12).contains(mo), (1...31).contains(d), h < 24, mi < 60, sec < 61 else { return nil }
    var i = 19
    var fraction = 0.0
    if i < s.count, s[i] == 46 {
        i += 1
        var scale = 0.1
        let start = i
        while i < s.count, s[i] >= 48, s[i] <= 57 { fraction += Double(s[i] - 48) * scale; scale /= 10; i += 1 }
        guard i > start else { return nil }
    }
    guard i < s.count else { return nil }
    var offset: Int64 = 0
    if s[i] == 90 {
        i += 1
    } else if s[i] == 43 || s[i] == 45 {
        guard s.count >= i + 6, s[i + 3] == 58, let oh = num(i + 1, 2), let om = num(i + 4, 2) else { return nil }
        offset = (oh * 3600 + om * 60) * (s[i] == 43 ? 1 : -1)
        i += 6
    } else {
        return nil
    }
    guard i == s.count else { return nil }
    // Days from civil (Howard Hinnant's algorithm).
    let yy = mo <= 2 ? y - 1 : y
    let era = (yy >= 0 ? yy : yy - 399) / 400
    let yoe = yy - era * 400
    let doy = (153 * (mo > 2 ? mo - 3 : mo + 9) + 2) / 5 + d - 1
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
    let days = era * 146_097 + doe - 719_468
    let seconds = days * 86400 + h * 3600 + mi * 60 + sec - offset
    return Date(timeIntervalSince1970: Double(seconds) + fraction)
}

/// Message and call ids: random UUIDv4-shaped strings. Foundation's UUID() opens /dev/urandom
/// and formats with sprintf on Linux, which showed in the hot path.
public enum MessageID {
    public static func random() -> String {
        let a = FastRandom.next(), b = FastRandom.next()
        var hex: [UInt8] = []
        hex.reserveCapacity(32)
        appendHex((a & 0xFFFF_FFFF_FFFF_0FFF) | 0x0000_0000_0000_4000, to: &hex) // version 4
        appendHex((b & 0x3FFF_FFFF_FFFF_FFFF) | 0x8000_0000_0000_0000, to: &hex) // variant 10
        var out: [UInt8] = []
        out.reserveCapacity(36)
        for (i, c) in hex.enumerated() {
            if i == 8 || i == 12 || i == 16 || i == 20 { out.append(45) }
            out.append(c)
        }
        return String(decoding: out, as: UTF8.self)
    }
}
