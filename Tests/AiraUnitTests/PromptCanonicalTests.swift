import AiraLLM
import Foundation
import Testing

/// The question canonicalisation measured on a paraphrase set built here: for each of 40
/// questions (20 English, 20 Korean), variants a person types for the same question — other
/// case and spacing, other punctuation, filler words, Hangul/Latin spacing — and whether each
/// variant gets the question's cache key, before (`PromptNormalizer.normalize`, the exact form)
/// and after (`PromptNormalizer.canonical`). Then pairs that differ in negation or in a number,
/// which must never share a key. docs/gpt.md records the figures this prints.
@Suite("Prompt canonicalisation")
struct PromptCanonicalTests {
    static let english = [
        "what is rabbitmq", "how do i reset my password", "explain the difference between tcp and udp",
        "what's the capital of france", "is python good for web development", "how many days are in a leap year",
        "why is the sky blue", "who wrote hamlet", "what does http 404 mean", "how do i install redis on debian 12",
        "can i run postgresql on a raspberry pi", "what's a good name for a cat", "summarize the plot of inception",
        "how long should i boil an egg", "what is the boiling point of water at 2000 m", "translate 'good morning' into korean",
        "why doesn't my swift code compile", "how do vaccines work", "recommend a book about history", "what time zone is seoul in",
    ]
    static let korean = [
        "RabbitMQ란 뭐야", "비밀번호를 어떻게 바꿔", "TCP와 UDP의 차이를 설명해줘", "파이썬으로 웹 개발 하기 좋아",
        "윤년은 며칠이야", "하늘은 왜 파래", "햄릿은 누가 썼어", "HTTP 404는 무슨 뜻이야", "Redis를 데비안에 설치하는 방법",
        "GPT-4는 언제 나왔어", "서울에서 부산까지 KTX로 몇 시간 걸려", "고양이 이름 추천해줘", "인셉션 줄거리 요약해줘",
        "계란은 몇 분 삶아야 해", "물의 끓는점은 몇 도야", "iPhone 15와 갤럭시 S24 비교해줘", "Swift 코드가 왜 컴파일이 안 돼",
        "백신은 어떻게 작동해", "역사책 추천해줘", "서울은 UTC 몇 시야",
    ]

    struct Variant {
        var base: String
        var text: String
        var kind: String
    }

    /// The variants of every question, by kind.
    static func variants() -> [Variant] {
        var out: [Variant] = []
        func add(_ base: String, _ text: String, _ kind: String) {
            if text != base { out.append(Variant(base: base, text: text, kind: kind)) }
        }
        for q in english {
            add(q, "  " + q.prefix(1).uppercased() + q.dropFirst().replacingOccurrences(of: " ", with: "  ") + "?", "case, spacing, end")
            add(q, q + "??", "case, spacing, end")
            add(q, q.replacingOccurrences(of: "'", with: "\u{2019}"), "punctuation")
            add(q, "\u{201C}" + q + "\u{201D}", "punctuation")
            add(q, "hey, " + q, "filler")
            add(q, "can you tell me " + q, "filler")
            add(q, "um, " + q + "?", "filler")
            add(q, "please " + q, "filler")
            add(q, q + ", thanks!", "filler")
            add(q, q + " please", "filler")
        }
        for q in korean {
            add(q, q + "?", "case, spacing, end")
            add(q, q + "??", "case, spacing, end")
            add(q, q + "~", "punctuation")
            add(q, q + "?!", "punctuation")
            add(q, "혹시 " + q, "filler")
            add(q, "저기요, " + q + "?", "filler")
            add(q, q + " 좀 알려줘", "filler")
            add(q, q + " 궁금해요", "filler")
            // Hangul next to Latin letters or digits, spaced the other way.
            add(q, Self.respaceLatin(q), "Hangul/Latin spacing")
            // Spaces between Hangul words: not changed, on purpose (see the test below).
            if let space = q.firstRange(of: " "), q[q.index(before: space.lowerBound)].isHangul, q[space.upperBound].isHangul {
                add(q, q.replacingCharacters(in: space, with: ""), "Hangul word spacing (kept apart)")
            }
        }
        return out
    }

    /// A space added at each Hangul/Latin-or-digit boundary, or removed where there is one.
    static func respaceLatin(_ text: String) -> String {
        let chars = Array(text)
        var out = ""
        var i = 0
        while i < chars.count {
            let c = chars[i]
            if c == " ", i > 0, i + 1 < chars.count, chars[i - 1].isHangul != chars[i + 1].isHangul,
               chars[i - 1].isLatinOrDigit || chars[i + 1].isLatinOrDigit {
                i += 1
                continue
            }
            out.append(c)
            if i + 1 < chars.count, (c.isHangul && chars[i + 1].isLatinOrDigit) || (c.isLatinOrDigit && chars[i + 1].isHangul) {
                out.append(" ")
            }
            i += 1
        }
        return out
    }

    @Test("the paraphrase set: the share of variants that hit their question's entry, exact form before, canonical form after")
    func hitRates() {
        let variants = Self.variants()
        var table: [String: (total: Int, before: Int, after: Int)] = [:]
        for v in variants {
            if ProcessInfo.processInfo.environment["AIRA_SHOW_MISSES"] != nil, PromptNormalizer.canonical(v.text) != PromptNormalizer.canonical(v.base) {
                print("miss [\(v.kind)]: \(v.text) → \(PromptNormalizer.canonical(v.text)) | \(PromptNormalizer.canonical(v.base))")
            }
            var row = table[v.kind] ?? (0, 0, 0)
            row.total += 1
            if PromptNormalizer.normalize(v.text) == PromptNormalizer.normalize(v.base) { row.before += 1 }
            if PromptNormalizer.canonical(v.text) == PromptNormalizer.canonical(v.base) { row.after += 1 }
            table[v.kind] = row
        }
        let total = table.values.reduce(0) { $0 + $1.total }
        let before = table.values.reduce(0) { $0 + $1.before }
        let after = table.values.reduce(0) { $0 + $1.after }
        print("paraphrase set: \(Self.english.count + Self.korean.count) questions, \(total) variants")
        for (kind, row) in table.sorted(by: { $0.key < $1.key }) {
            print("  \(kind): \(row.total) variants, exact \(row.before) hit, canonical \(row.after) hit")
        }
        print("  all: exact \(before)/\(total) (\(100 * before / total) %), canonical \(after)/\(total) (\(100 * after / total) %)")
        for kind in ["case, spacing, end", "punctuation", "filler", "Hangul/Latin spacing"] {
            #expect(table[kind].map { $0.after == $0.total } == true, "\(kind): \(String(describing: table[kind]))")
        }
        #expect(table["Hangul word spacing (kept apart)"]?.after == 0)
        #expect(after > before)
    }

    /// Pairs that mean different things and must keep different keys.
    static let different: [(String, String)] = [
        ("turn on the lights", "turn off the lights"), ("is it safe", "is it not safe"), ("can i use redis", "can't i use redis"),
        ("do i need a visa", "do i not need a visa"), ("please delete it", "please don't delete it"), ("what happened in 2023", "what happened in 2024"),
        ("convert 1.5 km to miles", "convert 15 km to miles"), ("3 days", "30 days"), ("1,5 liters", "15 liters"), ("python 2", "python 3"),
        ("hello world in python", "world in python"), ("tell me a joke", "a joke about me"), ("what is 5!", "what is 5"),
        ("이거 돼?", "이거 안 돼?"), ("먹어도 돼", "먹으면 안 돼"), ("할 수 있어", "할 수 없어"), ("못 가", "가"), ("3일 뒤", "4일 뒤"),
        ("2024년", "2025년"), ("아버지가 방에 들어가신다", "아버지 가방에 들어가신다"), ("사과 3개", "사과 13개"), ("v1 API", "v2 API"),
        ("1 2개", "12개"), ("3~5일", "35일"), ("5-3", "53"), ("-5도", "5도"),
    ]

    @Test("questions that differ in negation or in a number never share a key")
    func negationAndNumbers() {
        for (a, b) in Self.different {
            #expect(PromptNormalizer.canonical(a) != PromptNormalizer.canonical(b), "\(a) | \(b) → \(PromptNormalizer.canonical(a))")
        }
        // Every question of the set with a number changed, or a negation added, is another question.
        for q in Self.english + Self.korean {
            let key = PromptNormalizer.canonical(q)
            for digit in q.indices where q[q.index(before: q.endIndex)] != q[digit] && q[digit].isNumber {
                let changed = q.replacingCharacters(in: digit...digit, with: q[digit] == "7" ? "8" : "7")
                #expect(PromptNormalizer.canonical(changed) != key, "\(q) → \(changed)")
            }
            let negated = Self.korean.contains(q) ? q.replacingOccurrences(of: " ", with: " 안 ", options: [], range: q.range(of: " "))
                                                  : q.replacingOccurrences(of: " ", with: " not ", options: [], range: q.range(of: " "))
            if negated != q { #expect(PromptNormalizer.canonical(negated) != key, "\(q) → \(negated)") }
        }
    }

    @Test("ASCII: the cache key's byte path and the full canonical form agree, on 20,000 random questions")
    func bytePathAgrees() {
        var g = SplitMix(seed: 11)
        let pieces = ["what", "is", "5", "10", "hey,", "hey", "hello!", "hi~", "please", "thanks", "thank", "you", "can", "could", "would",
                      "tell", "me", "um,", "uh", "?", "??", "!", "!!", "?!", ".", "..", "...", "~", ",", " ,", "'", "\"", ";", ":", "x", "  ",
                      "\t", "i", "wonder", "was", "wondering", "quick", "question", "5!", "3.5", "1,5", "not", "don't", "thx", "Please", "HEY,"]
        for _ in 0..<20_000 {
            var text = ""
            for _ in 0..<Int.random(in: 1...8, using: &g) {
                text += pieces.randomElement(using: &g)! + (Bool.random(using: &g) ? " " : "")
            }
            var out: [UInt8] = []
            PromptNormalizer.appendCanonical(text, to: &out)
            #expect(String(decoding: out, as: UTF8.self) == PromptNormalizer.canonical(text), "\(text)")
        }
    }

    @Test("the canonical form's rules, one by one")
    func rules() {
        let c = PromptNormalizer.canonical
        #expect(c("It\u{2019}s \u{201C}fine\u{201D} \u{2014} really") == c("it's \"fine\" - really"))
        #expect(c("what?? really!!") == c("what? really!"))
        #expect(c("what ?! really") == c("what? really"))
        #expect(c("\u{201C}what is x?\u{201D}") == c("what is x") && c("'what is x'") == c("what is x"))
        #expect(c("\"yes\" or \"no\"") == "\"yes\" or \"no\"", "quotes are taken off only when one pair encloses everything")
        #expect(c("GPT 란") == c("GPT란") && c("3 일") == c("3일") && c("iPhone 15 와") == c("iPhone 15와"))
        #expect(c("hey, what is x") == "what is x" && c("hello! what is x") == "what is x" && c("hello world") == "hello world")
        #expect(c("can you please tell me what is x please") == "what is x")
        #expect(c("what is x, thank you") == "what is x")
        #expect(c("혹시 x 좀 알려주세요") == "x", "\(c("혹시 x 좀 알려주세요"))")
        #expect(c("좀비 영화") == "좀비 영화")
        #expect(c("알려줘") == "알려줘", "a question that is only a filler stays as it is")
        #expect(c("날씨 어때") != c("날씨어때"))
    }
}

extension Character {
    var isHangul: Bool { self.unicodeScalars.first.map { (0xAC00...0xD7A3).contains($0.value) || (0x3131...0x318E).contains($0.value) } ?? false }
    var isLatinOrDigit: Bool { self.isASCII && (self.isLetter || self.isNumber) }
}
