// aira-bench-auth: helpers for scripts/bench-auth.
//   hash-time COST COUNT   median wall time of one bcrypt hash at COST, single thread (ms)
//   hash COST PASSWORD     a bcrypt hash of PASSWORD (to seed benchmark users)
import Foundation
import HummingbirdBcrypt

let args = CommandLine.arguments.dropFirst().map { $0 }
func fail(_ message: String) -> Never {
    FileHandle.standardError.write(Data("aira-bench-auth: \(message)\n".utf8))
    exit(64)
}

switch args.first {
case "hash-time":
    guard args.count == 3, let cost = UInt8(args[1]), (4...31).contains(cost), let count = Int(args[2]), count > 0 else {
        fail("usage: hash-time COST COUNT")
    }
    let hash = Bcrypt.hash("bench-password-0001", cost: cost)
    var times: [Double] = []
    for _ in 0..<count {
        let start = ContinuousClock.now
        guard Bcrypt.verify("bench-password-0001", hash: hash) else { fail("verify failed") }
        let d = ContinuousClock.now - start
        times.append(Double(d.components.seconds) * 1000 + Double(d.components.attoseconds) / 1e15)
    }
    times.sort()
    print(String(format: "%.2f", times[times.count / 2]))
case "hash":
    guard args.count == 3, let cost = UInt8(args[1]), (4...31).contains(cost) else { fail("usage: hash COST PASSWORD") }
    print(Bcrypt.hash(args[2], cost: cost))
default:
    fail("usage: hash-time COST COUNT | hash COST PASSWORD")
}
