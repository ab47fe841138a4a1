import AiraMessaging
import Foundation
import Testing

@Suite("Hot-path formats")
struct FastFormatsTests {
    @Test("UUIDs parse as Foundation parses them, without sscanf")
    func canonicalUUID() {
        for _ in 0..<500 {
            let id = UUID()
            #expect(parseCanonicalUUID(id.uuidString) == id)
            #expect(parseCanonicalUUID(id.uuidString.lowercased()) == id)
            let message = MessageID.random()
            #expect(parseCanonicalUUID(message)?.uuidString.lowercased() == message)
        }
        for text in ["", "not-a-uuid", "123e4567-e89b-12d3-a456-42661417400", "123e4567-e89b-12d3-a456-4266141740000",
                     "123e4567ae89b-12d3-a456-426614174000", "123e4567-e89b-12d3-a456-42661417400g", "{123e4567-e89b-12d3-a456-426614174000}",
                     "123e4567-e89b-12d3-a456-42661417400é"] {
            #expect(parseCanonicalUUID(text) == nil, "\(text)")
            #expect(UUID(uuidString: text) == nil, "Foundation accepts \(text)")
        }
        #expect(parseCanonicalUUID("123E4567-e89b-12d3-A456-426614174000") == UUID(uuidString: "123e4567-e89b-12d3-a456-426614174000"))
    }
}
