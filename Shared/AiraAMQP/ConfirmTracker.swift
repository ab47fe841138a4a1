/// Publishes waiting for their broker confirm, by delivery tag. Tags are consecutive from 1 on
/// each channel (confirm mode), so the pending set is a window of an array, not a dictionary.
struct ConfirmTracker {
    private(set) var nextTag: UInt64 = 1
    /// The tag of `slots[head]`.
    private var base: UInt64 = 1
    private var slots: [PendingPublish?] = []
    private var head = 0

    var isEmpty: Bool { self.pendingCount == 0 }
    private(set) var pendingCount = 0

    /// Registers the next publish; returns its tag.
    mutating func add(_ pending: PendingPublish) -> UInt64 {
        let tag = self.nextTag
        self.nextTag += 1
        self.slots.append(pending)
        self.pendingCount += 1
        return tag
    }

    /// Takes the publish with `tag` (single confirm).
    mutating func take(_ tag: UInt64) -> PendingPublish? {
        guard tag >= self.base, tag < self.nextTag else { return nil }
        let i = self.head + Int(tag - self.base)
        guard let p = self.slots[i] else { return nil }
        self.slots[i] = nil
        self.pendingCount -= 1
        self.advance()
        return p
    }

    /// Takes every publish with a tag up to `tag` (multiple confirm), oldest first.
    mutating func take(upTo tag: UInt64) -> [PendingPublish] {
        var taken: [PendingPublish] = []
        while self.head < self.slots.count, self.base <= tag {
            if let p = self.slots[self.head] { taken.append(p) }
            self.slots[self.head] = nil
            self.head += 1
            self.base += 1
        }
        self.pendingCount -= taken.count
        self.advance()
        return taken
    }

    /// Marks the oldest pending publish with `messageID` as returned (unroutable). Returns are
    /// rare, so a scan is cheaper than indexing every publish by id.
    mutating func markReturned(messageID: String, _ error: AMQPError) {
        for i in self.head..<self.slots.count {
            if let p = self.slots[i], p.returned == nil, p.messageID == messageID {
                self.slots[i]!.returned = error
                return
            }
        }
    }

    /// Takes everything (the channel or connection went away), and starts over at tag 1.
    mutating func takeAll() -> [PendingPublish] {
        let all = self.slots[self.head...].compactMap { $0 }
        self = ConfirmTracker()
        return all
    }

    private mutating func advance() {
        while self.head < self.slots.count, self.slots[self.head] == nil {
            self.head += 1
            self.base += 1
        }
        if self.head == self.slots.count {
            self.slots.removeAll(keepingCapacity: true)
            self.head = 0
        } else if self.head > 4096 {
            self.slots.removeFirst(self.head)
            self.head = 0
        }
    }
}
