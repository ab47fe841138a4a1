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
