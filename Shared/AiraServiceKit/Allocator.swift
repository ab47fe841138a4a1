import CJemalloc
import Prometheus

/// The process's allocator. Every Aira executable links jemalloc (Shared/CJemalloc), which then
/// serves all of the process's `malloc`s — Swift objects, NIO buffers and the C clients alike.
/// glibc's malloc cost the gateway and the proxy measurably more CPU per request under the
/// cached-question load (the figures: docs/benchmarks.md).
/// `MALLOC_CONF` tunes it (e.g. `MALLOC_CONF=dirty_decay_ms:1000` to return memory sooner).
public enum Allocator {
    /// jemalloc's process-wide counters in bytes, as of this call.
    public struct Stats: Sendable, Equatable {
        /// Bytes in live allocations.
        public var allocated: Int
        /// Bytes in pages that hold live allocations (allocated plus fragmentation inside them).
        public var active: Int
        /// Bytes of physical memory the allocator holds, its metadata included.
        public var resident: Int
    }

    /// The current counters, or nil when jemalloc's statistics cannot be read.
    public static func stats() -> Stats? {
        // jemalloc caches its statistics; writing "epoch" refreshes them.
        var epoch: UInt64 = 1
        guard mallctl("epoch", nil, nil, &epoch, MemoryLayout<UInt64>.size) == 0,
              let allocated = Self.read("stats.allocated"), let active = Self.read("stats.active"),
              let resident = Self.read("stats.resident")
        else { return nil }
        return Stats(allocated: allocated, active: active, resident: resident)
    }

    private static func read(_ name: String) -> Int? {
        var value = 0
        var size = MemoryLayout<Int>.size
        return mallctl(name, &value, &size, nil, 0) == 0 ? value : nil
    }

    /// Gauges `aira_allocator_{allocated,active,resident}_bytes` in `registry`, refreshed by `update`.
    struct Gauges: Sendable {
        let allocated, active, resident: Gauge

        init(registry: PrometheusCollectorRegistry) {
            self.allocated = registry.makeGauge(name: "aira_allocator_allocated_bytes",
                                                help: "Bytes in live allocations (jemalloc stats.allocated)")
            self.active = registry.makeGauge(name: "aira_allocator_active_bytes",
                                             help: "Bytes in pages holding live allocations (jemalloc stats.active)")
            self.resident = registry.makeGauge(name: "aira_allocator_resident_bytes",
                                               help: "Physical memory the allocator holds (jemalloc stats.resident)")
        }

        func update() {
            guard let stats = Allocator.stats() else { return }
            self.allocated.set(Int64(stats.allocated))
            self.active.set(Int64(stats.active))
            self.resident.set(Int64(stats.resident))
        }
    }
}
