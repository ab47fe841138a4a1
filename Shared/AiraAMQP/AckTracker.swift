/// Which deliveries on a channel are still unacknowledged, so that acks requested together can
/// go out as one `basic.ack multiple=true` when they cover the oldest unacked deliveries.
///
/// Delivery tags arrive in increasing order; handlers finish in any order. An ack is never held
/// back waiting for older ones: what cannot be coalesced is sent on its own in the same flush.
struct AckTracker {
    /// Unsettled delivery tags in delivery order, from `head`.
    private var outstanding: [UInt64] = []
    private var head = 0
    /// Settled out of order (acked alone, nacked, rejected): skipped when they reach the front.
    private var settledElsewhere: Set<UInt64> = []
    /// Acks requested since the last flush.
    private var requested: Set<UInt64> = []

    var unsettledCount: Int { self.outstanding.count - self.head - self.settledElsewhere.count }

    mutating func delivered(_ tag: UInt64) { self.outstanding.append(tag) }

    mutating func requestAck(_ tag: UInt64) { self.requested.insert(tag) }

    /// A tag settled by its own frame (nack, reject).
    mutating func settledOne(_ tag: UInt64) {
        self.requested.remove(tag)
        self.settledElsewhere.insert(tag)
    }

    /// Everything up to `tag` settled by a multiple ack sent directly.
    mutating func settledUpTo(_ tag: UInt64) {
        while self.head < self.outstanding.count, self.outstanding[self.head] <= tag {
            let t = self.outstanding[self.head]
            self.requested.remove(t)
            self.settledElsewhere.remove(t)
            self.head += 1
        }
        self.compact()
    }

    struct Plan: Equatable {
        var multipleUpTo: UInt64?
        var single: [UInt64]
    }

    /// What to send for the requested acks, and the bookkeeping as if it was sent.
    mutating func flush() -> Plan {
        var plan = Plan(multipleUpTo: nil, single: [])
        guard !self.requested.isEmpty else { return plan }
        var covered = 0
        while self.head < self.outstanding.count {
            let t = self.outstanding[self.head]
            if self.settledElsewhere.remove(t) != nil {
                self.head += 1
            } else if self.requested.remove(t) != nil {
                plan.multipleUpTo = t
                covered += 1
                self.head += 1
            } else {
                break
            }
        }
        if covered == 1, let t = plan.multipleUpTo {
            // One tag: a plain ack says the same (tags before it are already settled).
            plan.multipleUpTo = nil
            plan.single.append(t)
        }
        for t in self.requested.sorted() {
            plan.single.append(t)
            self.settledElsewhere.insert(t)
        }
        self.requested.removeAll(keepingCapacity: true)
        self.compact()
        return plan
    }

    private mutating func compact() {
        if self.head > 4096 && self.head * 2 > self.outstanding.count {
            self.outstanding.removeFirst(self.head)
            self.head = 0
        }
    }
}
