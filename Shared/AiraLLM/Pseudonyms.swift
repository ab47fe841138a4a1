import Foundation

/// Personal data swapped for numbered placeholders (`[EMAIL_1]`, `[PHONE_2]`, ...) before a
/// conversation goes to the upstream model, and put back in its answer (docs/gpt.md, "Private
/// data"). The same value gets the same placeholder throughout a conversation, and the same
/// conversation always gets the same placeholders: an answer cached with placeholders is
/// restored for whoever asks that conversation again.
public struct Pseudonyms: Sendable, Equatable {
    /// Placeholder → the value it stands for.
    public private(set) var originals: [String: String] = [:]
    private var placeholders: [String: String] = [:]
    private var counts: [String: Int] = [:]

    public init() {}

    public var isEmpty: Bool { self.originals.isEmpty }

    /// `text` with every finding of `redactor` replaced by its placeholder.
    public mutating func replace(_ text: String, redactor: PIIRedactor) -> String {
        let found = redactor.findings(in: text)
        guard !found.isEmpty else { return text }
        let bytes = Array(text.utf8)
        var out: [UInt8] = []
        out.reserveCapacity(bytes.count + 16 * found.count)
        var at = 0
        for finding in found {
            out += bytes[at..<finding.range.lowerBound]
            let value = String(decoding: bytes[finding.range], as: UTF8.self)
            out += self.placeholder(for: value, kind: finding.kind).utf8
            at = finding.range.upperBound
        }
        out += bytes[at...]
        return String(decoding: out, as: UTF8.self)
    }

    private mutating func placeholder(for value: String, kind: PIIRedactor.Kind) -> String {
        if let known = self.placeholders[value] { return known }
        let name = String(kind.placeholder.dropFirst().dropLast())   // [EMAIL] → EMAIL
        let n = (self.counts[name] ?? 0) + 1
        self.counts[name] = n
        let placeholder = "[\(name)_\(n)]"
        self.placeholders[value] = placeholder
        self.originals[placeholder] = value
        return placeholder
    }

    /// `text` with each of these placeholders replaced by its value.
    public func restore(_ text: String) -> String {
        guard !self.originals.isEmpty, text.utf8.contains(UInt8(ascii: "[")) else { return text }
        var out = text
        for (placeholder, value) in self.originals where out.contains(placeholder) {
            out = out.replacingOccurrences(of: placeholder, with: value)
        }
        return out
    }

    /// The longest placeholder, in characters.
    var longest: Int { self.originals.keys.map(\.count).max() ?? 0 }
}

/// Restores placeholders in an answer that arrives in pieces, which may cut a placeholder in
/// two (`[EMA` + `IL_1]`): text from an unclosed `[` waits for the next piece, as long as it
/// could still become a placeholder.
public struct StreamRestorer: Sendable {
    public let names: Pseudonyms
    private var pending = ""

    public init(_ names: Pseudonyms) { self.names = names }

    /// What of the answer so far can be sent now, restored.
    public mutating func feed(_ piece: String) -> String {
        guard !self.names.isEmpty else { return piece }
        self.pending += piece
        if let open = self.pending.lastIndex(of: "["), !self.pending[open...].contains("]"),
           self.pending.distance(from: open, to: self.pending.endIndex) < self.names.longest {
            let ready = String(self.pending[..<open])
            self.pending = String(self.pending[open...])
            return self.names.restore(ready)
        }
        let ready = self.pending
        self.pending = ""
        return self.names.restore(ready)
    }

    /// The rest, when the answer has ended.
    public mutating func finish() -> String {
        let rest = self.pending
        self.pending = ""
        return self.names.restore(rest)
    }
}
