import AiraLLM
import Foundation
import Testing

@Suite("Prompt normalisation and cache keys")
struct PromptNormalizerTests {
    @Test("equivalent spellings normalise to one text", arguments: [
        ("What is RabbitMQ?", "what is rabbitmq"),
        ("  what   is\tRabbitMQ \n", "what is rabbitmq"),
        ("WHAT IS RABBITMQ?!...", "what is rabbitmq"),
        ("Ｗｈａｔ ｉｓ ＲａｂｂｉｔＭＱ？", "what is rabbitmq"),      // full-width (NFKC)
        ("ﬁnd the ﬁle", "find the file"),                          // ligatures (NFKC)
        ("Café", "cafe\u{301}".precomposedStringWithCanonicalMapping),  // composed and decomposed é
        ("What is\u{00A0}RabbitMQ\u{2026}", "what is rabbitmq"),   // no-break space, ellipsis
        ("Straße", "strasse"),                                     // case folding
    ])
    func equivalent(_ a: String, _ b: String) {
        #expect(PromptNormalizer.normalize(a) == PromptNormalizer.normalize(b))
    }

    @Test("ASCII is folded without Foundation, exactly as Foundation folds it")
    func asciiFold() {
        let every = String(decoding: (0..<128).map { UInt8($0) }, as: UTF8.self)
        var samples = [every, "What IS RabbitMQ?!", "ZZ top", "@[`{"]
        var generator = SystemRandomNumberGenerator()
        for _ in 0..<300 {
            samples.append(String(decoding: (0..<Int.random(in: 0...40, using: &generator)).map { _ in UInt8.random(in: 0..<128, using: &generator) },
                                  as: UTF8.self))
        }
        for text in samples {
            #expect(PromptNormalizer.fold(text) == text.precomposedStringWithCompatibilityMapping.folding(options: [.caseInsensitive], locale: nil),
                    "\(Array(text.utf8))")
        }
        // Not ASCII: Foundation's path (NFKC and full case folding).
        #expect(PromptNormalizer.fold("Ｓtraße ﬁ") == "strasse fi")
    }

    @Test("different questions stay different", arguments: [
        ("turn on the lights", "turn off the lights"),
        ("2+2", "2-2"),
        ("is it safe?", "is it unsafe?"),
        ("what is a.b", "what is ab"),                              // inner punctuation is kept
        ("C++", "C"),
        ("rabbit mq", "rabbitmq"),                                  // spaces between words matter
        ("¿qué?", "que"),
    ])
    func different(_ a: String, _ b: String) {
        #expect(PromptNormalizer.normalize(a) != PromptNormalizer.normalize(b))
    }

    @Test("the key covers the whole conversation, the model, the parameters and the system prompt")
    func keyCoverage() {
        let question = [ChatMessage(role: "user", content: "What is RabbitMQ?")]
        let base = CacheKey(model: "m", version: "1", messages: question, parameters: .init())
        #expect(base == CacheKey(model: "m", version: "1", messages: [ChatMessage(role: "user", content: " what is rabbitmq ")],
                                 parameters: .init()))
        #expect(base.description.hasPrefix("gpt:cache:m:1:"))
        #expect(base.digest.count == 64)
        #expect(base != CacheKey(model: "m2", version: "1", messages: question, parameters: .init()))
        #expect(base.description != CacheKey(model: "m", version: "2", messages: question, parameters: .init()).description)
        #expect(base != CacheKey(model: "m", version: "1", messages: question, parameters: .init(temperature: 0.2)))
        #expect(CacheKey(model: "m", version: "1", messages: question, parameters: .init(temperature: 0.7))
                == CacheKey(model: "m", version: "1", messages: question, parameters: .init(temperature: 0.70)))
        #expect(base != CacheKey(model: "m", version: "1", messages: question, parameters: .init(maxTokens: 10)))
        let system = [ChatMessage(role: "system", content: "Answer in French.")] + question
        #expect(base != CacheKey(model: "m", version: "1", messages: system, parameters: .init()))
        #expect(CacheKey(model: "m", version: "1", messages: system, parameters: .init())
                != CacheKey(model: "m", version: "1", messages: [ChatMessage(role: "system", content: "Answer in German.")] + question,
                            parameters: .init()))
        // Earlier turns count: the same last question in another conversation is another question.
        let earlier = [ChatMessage(role: "user", content: "I use Kafka."), ChatMessage(role: "assistant", content: "OK.")] + question
        #expect(base != CacheKey(model: "m", version: "1", messages: earlier, parameters: .init()))
        // Roles count.
        #expect(base != CacheKey(model: "m", version: "1", messages: [ChatMessage(role: "assistant", content: "What is RabbitMQ?")],
                                 parameters: .init()))
    }

    @Test("keys are stable: the same conversation hashes as it always has (cached answers survive upgrades)")
    func keyStable() {
        // sha256 of "v1␟temperature=0.7␟top_p=-␟max_tokens=100␟…␟system␝Answer in French.␞user␝what is rabbitmq␞…"
        let key = CacheKey(model: "m", version: "1", messages: [
            ChatMessage(role: "system", content: " Answer  in French."),
            ChatMessage(role: "user", content: "What is RabbitMQ?"),
            ChatMessage(role: "assistant", content: "Une file d'attente."),
            ChatMessage(role: "USER", content: "Und\tKafka?!"),
        ], parameters: .init(temperature: 0.70, maxTokens: 100))
        #expect(key.digest == "226ba50f25d73b28a5d2fea571bbf0bd67e410165f5d7c36d74ef58845d243e2")
    }

    @Test("ASCII is normalised byte by byte exactly as the general (Unicode) path does it")
    func asciiNormalize() {
        let every = String(decoding: (0..<128).map { UInt8($0) }, as: UTF8.self)
        var samples = [every, "", "?", " ?! ", "What IS RabbitMQ?!", "a\t\n\u{0B}\u{0C}\rb", "x..., ", "\u{1C}\u{1D}\u{1E}\u{1F}"]
        var generator = SystemRandomNumberGenerator()
        // Letters, whitespace and the trailing punctuation are overrepresented, to hit every branch.
        let alphabet = Array("aZ \t\n\r.,!?;:-".utf8) + (0..<128).map { UInt8($0) }
        for _ in 0..<500 {
            samples.append(String(decoding: (0..<Int.random(in: 0...30, using: &generator)).map { _ in alphabet.randomElement(using: &generator)! },
                                  as: UTF8.self))
        }
        for text in samples {
            #expect(PromptNormalizer.normalize(text) == PromptNormalizer.normalizeScalars(text), "\(Array(text.utf8))")
        }
    }
}
