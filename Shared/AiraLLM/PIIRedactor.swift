/// Finds personal data in text and replaces it: e-mail addresses, phone numbers (Korean mobile,
/// landline and representative numbers, North American, any `+` international number), payment
/// card numbers (Luhn-valid) and national ids (Korean resident and foreigner registration
/// numbers, US social security numbers). What the audit log stores of a question goes through
/// it (docs/gpt.md, "Private data"), with recall and false positives measured on a labelled set
/// the unit tests build.
///
/// One pass over the UTF-8 bytes, no regular expressions: it runs on every question, cached or
/// not. Hangul or other non-ASCII text right next to a number or an address is a boundary
/// (`번호는010-1234-5678입니다` is found).
public struct PIIRedactor: Sendable {
    public enum Kind: String, Sendable, CaseIterable {
        case email, phone, card, nationalID

        /// What replaces a finding.
        public var placeholder: String {
            switch self {
            case .email: "[EMAIL]"
            case .phone: "[PHONE]"
            case .card: "[CARD]"
            case .nationalID: "[NATIONAL_ID]"
            }
        }
    }

    /// One finding: what it is and where, as a range of UTF-8 offsets.
    public struct Finding: Sendable, Equatable {
        public var kind: Kind
        public var range: Range<Int>
    }

    public init() {}

    /// `text` with each finding replaced by its kind's placeholder.
    public func redact(_ text: String) -> String {
        // Most questions hold neither a digit nor an `@`: nothing to copy or scan.
        guard text.utf8.contains(where: { Self.isDigit($0) || $0 == UInt8(ascii: "@") }) else { return text }
        let bytes = Array(text.utf8)
        let found = Self.findings(in: bytes)
        guard !found.isEmpty else { return text }
        var out: [UInt8] = []
        out.reserveCapacity(bytes.count)
        var at = 0
        for f in found {
            out += bytes[at..<f.range.lowerBound]
            out += f.kind.placeholder.utf8
            at = f.range.upperBound
        }
        out += bytes[at...]
        return String(decoding: out, as: UTF8.self)
    }

    /// The findings in `text`, in order, not overlapping.
    public func findings(in text: String) -> [Finding] { Self.findings(in: Array(text.utf8)) }

    static func findings(in s: [UInt8]) -> [Finding] {
        var found: [Finding] = []
        var i = 0
        while i < s.count {
            let c = s[i]
            if c == UInt8(ascii: "@"), let f = Self.email(s, at: i) {
                // The local part was already passed over: drop a number found inside it.
                while let last = found.last, last.range.upperBound > f.range.lowerBound { found.removeLast() }
                found.append(f)
                i = f.range.upperBound
                continue
            }
            if Self.startsNumber(s, at: i), let (f, end) = Self.number(s, at: i) {
                if let f { found.append(f) }
                i = end
                continue
            }
            i += 1
        }
        return found
    }

    // MARK: E-mail

    static func email(_ s: [UInt8], at i: Int) -> Finding? {
        var start = i
        while start > 0, start > i - 64, Self.isLocal(s[start - 1]) { start -= 1 }
        while start < i, s[start] == UInt8(ascii: ".") { start += 1 }
        guard start < i, s[i - 1] != UInt8(ascii: ".") else { return nil }
        var end = i + 1
        while end < s.count, end < i + 254, Self.isAlnum(s[end]) || s[end] == UInt8(ascii: "-") || s[end] == UInt8(ascii: ".") {
            end += 1
        }
        while end > i + 1, s[end - 1] == UInt8(ascii: ".") || s[end - 1] == UInt8(ascii: "-") { end -= 1 }
        let labels = s[(i + 1)..<end].split(separator: UInt8(ascii: "."), omittingEmptySubsequences: false)
        guard labels.count >= 2, labels.allSatisfy({ !$0.isEmpty }),
              let tld = labels.last, tld.count >= 2, tld.allSatisfy(Self.isLetter) else { return nil }
        return Finding(kind: .email, range: start..<end)
    }

    static func isLocal(_ c: UInt8) -> Bool {
        Self.isAlnum(c) || c == UInt8(ascii: ".") || c == UInt8(ascii: "_") || c == UInt8(ascii: "%") || c == UInt8(ascii: "+")
            || c == UInt8(ascii: "-")
    }

    // MARK: Numbers

    /// A digit run may start here: a digit, `+` or `(` before a digit, not inside a word or a
    /// longer number.
    static func startsNumber(_ s: [UInt8], at i: Int) -> Bool {
        let c = s[i]
        let opens = c == UInt8(ascii: "+") || c == UInt8(ascii: "(")
        guard Self.isDigit(c) || (opens && i + 1 < s.count && Self.isDigit(s[i + 1])) else { return false }
        guard i > 0 else { return true }
        let p = s[i - 1]
        // Not after `/` either: a number in a URL's path is an id, not a phone.
        return !(Self.isAlnum(p) || p == UInt8(ascii: ".") || p == UInt8(ascii: ",") || p == UInt8(ascii: "-")
                 || p == UInt8(ascii: "_") || p == UInt8(ascii: "/"))
    }

    /// Reads the run of digits and separators starting at `i`; returns what it is (nil: not
    /// personal data) and where reading goes on.
    static func number(_ s: [UInt8], at i: Int) -> (Finding?, Int)? {
        var groups: [[UInt8]] = [[]]
        var separators: [UInt8] = []
        var j = i
        let plus = s[j] == UInt8(ascii: "+")
        if plus { j += 1 }
        var parenthesised = false
        var firstSeparator: UInt8?
        while j < s.count {
            let c = s[j]
            if Self.isDigit(c) {
                groups[groups.count - 1].append(c)
                j += 1
                continue
            }
            // A separator counts only between digits (or around a parenthesised area code).
            let isSeparator = c == UInt8(ascii: " ") || c == UInt8(ascii: "-") || c == UInt8(ascii: ".")
                || c == UInt8(ascii: "(") || c == UInt8(ascii: ")")
            guard isSeparator, separators.count < 8 else { break }
            var k = j
            var run: [UInt8] = []
            while k < s.count, run.count < 2, [UInt8(ascii: " "), UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "("),
                                               UInt8(ascii: ")")].contains(s[k]) {
                run.append(s[k])
                k += 1
            }
            guard k < s.count, Self.isDigit(s[k]), run.count == 1 || run == [UInt8(ascii: ")"), UInt8(ascii: " ")] else { break }
            if run.contains(UInt8(ascii: "(")) || run.contains(UInt8(ascii: ")")) { parenthesised = true }
            if !groups[groups.count - 1].isEmpty {
                if groups.count == 1 { firstSeparator = run[0] }
                groups.append([])
                separators.append(run[0] == UInt8(ascii: ")") ? UInt8(ascii: ")") : run[0])
            }
            j = k
        }
        // A number glued to a letter or running on into a decimal part is something else.
        if j < s.count, Self.isAlnum(s[j]) || (s[j] == UInt8(ascii: ".") || s[j] == UInt8(ascii: ",")) && j + 1 < s.count
            && Self.isDigit(s[j + 1]) {
            var k = j
            while k < s.count, Self.isAlnum(s[k]) || s[k] == UInt8(ascii: ".") || s[k] == UInt8(ascii: ",") { k += 1 }
            return (nil, k)
        }
        groups.removeAll { $0.isEmpty }
        let digits = groups.flatMap { $0 }
        let kind = Self.classify(digits: digits, groups: groups.map(\.count), separators: separators, plus: plus,
                                 parenthesised: parenthesised)
        // An opening parenthesis belongs to the number only around an area code: `(02) 123-4567`,
        // not `(010 1234 5678)`.
        let start = s[i] == UInt8(ascii: "(") && firstSeparator != UInt8(ascii: ")") ? i + 1 : i
        return (kind.map { Finding(kind: $0, range: start..<j) }, max(j, i + 1))
    }

    static func classify(digits d: [UInt8], groups: [Int], separators: [UInt8], plus: Bool, parenthesised: Bool) -> Kind? {
        let n = d.count
        let hyphenOrSpace = separators.allSatisfy { $0 == UInt8(ascii: "-") || $0 == UInt8(ascii: " ") }
        let dashed = separators.allSatisfy { $0 == UInt8(ascii: "-") }
        if plus { return (8...15).contains(n) ? .phone : nil }
        // Korean resident / foreigner registration number: YYMMDD-GNNNNNN.
        if n == 13, groups == [6, 7] || groups == [13], dashed, Self.isBirthDate(d), (1...8).contains(Int(d[6] - 48)) {
            return .nationalID
        }
        // US social security number: AAA-GG-SSSS.
        if n == 9, groups == [3, 2, 4], dashed {
            let area = Int(String(decoding: d[0..<3], as: UTF8.self))!
            let group = Int(String(decoding: d[3..<5], as: UTF8.self))!
            let serial = Int(String(decoding: d[5..<9], as: UTF8.self))!
            return area != 0 && area != 666 && area < 900 && group != 0 && serial != 0 ? .nationalID : nil
        }
        // Payment cards: 13–19 digits in one run or in groups of four (Amex 4-6-5), Luhn-valid.
        if (13...19).contains(n), hyphenOrSpace, groups.count == 1 || groups.dropLast().allSatisfy({ $0 == 4 }) || groups == [4, 6, 5],
           Self.luhn(d) {
            return .card
        }
        // Korean phones: mobile 01X, area codes 0XX, representative 15XX/16XX/18XX-XXXX.
        if d[0] == UInt8(ascii: "0") {
            if d.count > 1, d[1] == UInt8(ascii: "1"), (10...11).contains(n), groups.count == 1 || groups.count == 3 { return .phone }
            if (9...11).contains(n), groups.count == 3 || (groups.count == 2 && parenthesised) { return .phone }
            return nil
        }
        if n == 8, groups == [4, 4], dashed, d[0] == UInt8(ascii: "1"), [UInt8(ascii: "5"), UInt8(ascii: "6"), UInt8(ascii: "8")].contains(d[1]) {
            return .phone
        }
        // North American: (AAA) EEE-NNNN, AAA-EEE-NNNN, AAA.EEE.NNNN, 1-AAA-EEE-NNNN.
        if n == 10, groups == [3, 3, 4], !separators.isEmpty, d[0] >= UInt8(ascii: "2") { return .phone }
        if n == 11, groups == [1, 3, 3, 4], d[0] == UInt8(ascii: "1") { return .phone }
        return nil
    }

    static func isBirthDate(_ d: [UInt8]) -> Bool {
        let month = Int(d[2] - 48) * 10 + Int(d[3] - 48)
        let day = Int(d[4] - 48) * 10 + Int(d[5] - 48)
        return (1...12).contains(month) && (1...31).contains(day)
    }

    static func luhn(_ d: [UInt8]) -> Bool {
        var sum = 0
        for (i, c) in d.reversed().enumerated() {
            var v = Int(c - 48)
            if i % 2 == 1 {
                v *= 2
                if v > 9 { v -= 9 }
            }
            sum += v
        }
        return sum % 10 == 0
    }

    static func isDigit(_ c: UInt8) -> Bool { c >= 48 && c <= 57 }
    static func isLetter(_ c: UInt8) -> Bool { (c | 0x20) >= 97 && (c | 0x20) <= 122 }
    static func isAlnum(_ c: UInt8) -> Bool { Self.isDigit(c) || Self.isLetter(c) }
}
