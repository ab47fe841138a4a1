#if canImport(Glibc)
import Glibc
#endif

/// CPU time from Linux's /proc, in seconds: what the benchmarks measure work by, because on a
/// shared virtual machine wall time also counts time the hypervisor gave to other machines.
public enum CPUTime {
    /// The whole machine: `busy` is user + nice + system + irq + softirq (not idle, not iowait,
    /// not steal, not guest — that is already in user); `steal` is what other machines took.
    public struct Machine: Sendable {
        public var busy: Double
        public var steal: Double
        public var total: Double

        public static func - (a: Machine, b: Machine) -> Machine {
            Machine(busy: a.busy - b.busy, steal: a.steal - b.steal, total: a.total - b.total)
        }
        /// The share of the interval's CPU time that went to other machines.
        public var stealShare: Double { self.total > 0 ? self.steal / self.total : 0 }
    }

    public static func machine() -> Machine {
        guard let line = Self.read("/proc/stat").split(separator: "\n").first else { return Machine(busy: 0, steal: 0, total: 0) }
        let v = line.split(separator: " ").dropFirst().compactMap { Double($0) }
        guard v.count >= 8 else { return Machine(busy: 0, steal: 0, total: 0) }
        let hz = Self.ticksPerSecond
        return Machine(busy: (v[0] + v[1] + v[2] + v[5] + v[6]) / hz, steal: v[7] / hz, total: v.prefix(8).reduce(0, +) / hz)
    }

    /// User + system time of process `pid` so far (0 once it is gone).
    public static func process(_ pid: Int32) -> Double {
        let stat = Self.read("/proc/\(pid)/stat")
        guard let close = stat.lastIndex(of: ")") else { return 0 }
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        guard fields.count > 12 else { return 0 }
        return ((Double(fields[11]) ?? 0) + (Double(fields[12]) ?? 0)) / Self.ticksPerSecond
    }

    /// Resident memory of this process in bytes (/proc/self/statm), 0 if unreadable.
    public static func residentBytes() -> Int {
        let fields = Self.read("/proc/self/statm").split(separator: " ")
        guard fields.count > 1, let pages = Int(fields[1]) else { return 0 }
        return pages * Int(sysconf(Int32(_SC_PAGESIZE)))
    }

    static let ticksPerSecond = Double(sysconf(Int32(_SC_CLK_TCK)))

    private static func read(_ path: String) -> String {
        guard let file = fopen(path, "r") else { return "" }
        defer { fclose(file) }
        var bytes: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = fread(&buffer, 1, buffer.count, file)
            if n <= 0 { break }
            bytes += buffer[0..<n]
        }
        return String(decoding: bytes, as: UTF8.self)
    }
}
