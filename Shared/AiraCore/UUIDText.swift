import Foundation
import Synchronization

/// UUIDs as text, the one formatter: lower-case 8-4-4-4-12, as Aira stores, sends and shows
/// them. Foundation's `uuidString` (a C `sprintf` on Linux, then `lowercased()`) and
/// `UUID(uuidString:)` (a C `sscanf`) are not used: both showed in hot-path profiles.

extension UUID {
    /// The form Aira stores and shows: lower-case 8-4-4-4-12 (what `uuidString.lowercased()` gives).
    public var lowercasedString: String {
        withUnsafeBytes(of: self.uuid) { raw in
            String(unsafeUninitializedCapacity: 36) { out in
                var i = 0
                for (n, byte) in raw.enumerated() {
                    if n == 4 || n == 6 || n == 8 || n == 10 { out[i] = UInt8(ascii: "-"); i += 1 }
                    out[i] = Hex.digit(byte >> 4)
                    out[i + 1] = Hex.digit(byte & 0x0F)
                    i += 2
                }
                return i
            }
        }
    }

    /// Parses 8-4-4-4-12 hexadecimal text in either case, like `UUID(uuidString:)` (whose
    /// `sscanf` was a twentieth of the audit writer's CPU).
    public init?(text: String) {
        var text = text
        guard let parsed = text.withUTF8({ Self.parse($0) }) else { return nil }
        self.init(uuid: parsed)
    }

    private static func parse(_ s: UnsafeBufferPointer<UInt8>) -> uuid_t? {
        guard s.count == 36, s[8] == UInt8(ascii: "-"), s[13] == UInt8(ascii: "-"), s[18] == UInt8(ascii: "-"),
              s[23] == UInt8(ascii: "-") else { return nil }
        var out: uuid_t = (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
        let ok = withUnsafeMutableBytes(of: &out) { bytes -> Bool in
            var i = 0
            for n in 0..<16 {
                if i == 8 || i == 13 || i == 18 || i == 23 { i += 1 }
                guard let high = Hex.value(s[i]), let low = Hex.value(s[i + 1]) else { return false }
                bytes[n] = high << 4 | low
                i += 2
            }
            return true
        }
        return ok ? out : nil
    }
}

/// Message and call ids: random version-4 UUIDs from ``FastRandom``, as text. (Foundation's
/// `UUID()` reads /dev/urandom on Linux each time, which showed in the hot path.)
public enum MessageID {
    public static func random() -> String {
        let high = (FastRandom.next() & 0xFFFF_FFFF_FFFF_0FFF) | 0x0000_0000_0000_4000  // version 4
        let low = (FastRandom.next() & 0x3FFF_FFFF_FFFF_FFFF) | 0x8000_0000_0000_0000   // variant 10
        let uuid = withUnsafeBytes(of: (high.bigEndian, low.bigEndian)) { $0.loadUnaligned(as: uuid_t.self) }
        return UUID(uuid: uuid).lowercasedString
    }
}

/// Ids made per message (message, call, trace and span ids): splitmix64, seeded once from the
/// system generator. Per-byte system randomness was one of the top two costs in the messaging
/// benchmark's profile. The ids must be unique, not secret: never use this for a token.
package enum FastRandom {
    private static let state = Mutex<UInt64>(UInt64.random(in: .min ... .max))

    package static func next() -> UInt64 {
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
