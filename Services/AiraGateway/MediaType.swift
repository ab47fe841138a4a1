/// What an upload is, from its first bytes (never from its name or the client's Content-Type).
enum MediaType {
    /// Bytes needed to recognise every supported type.
    static let sniffLength = 200

    /// The media type of content starting with `head`, or nil if it is nothing Aira accepts.
    static func sniff(_ head: [UInt8]) -> String? {
        func at(_ offset: Int, _ bytes: [UInt8]) -> Bool {
            head.count >= offset + bytes.count && Array(head[offset..<offset + bytes.count]) == bytes
        }
        func ascii(_ s: String) -> [UInt8] { Array(s.utf8) }
        if at(0, [0xFF, 0xD8, 0xFF]) { return "image/jpeg" }
        if at(0, [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]) { return "image/png" }
        if at(0, ascii("GIF87a")) || at(0, ascii("GIF89a")) { return "image/gif" }
        if at(0, ascii("RIFF")) && at(8, ascii("WEBP")) { return "image/webp" }
        if at(0, ascii("RIFF")) && at(8, ascii("AVI ")) { return "video/x-msvideo" }
        if at(0, [0x1A, 0x45, 0xDF, 0xA3]) {
            // EBML: WebM declares its doctype in the header; anything else is Matroska.
            return Self.contains(head.prefix(64), ascii("webm")) ? "video/webm" : "video/x-matroska"
        }
        if at(4, ascii("ftyp")) {
            let brand = head.count >= 12 ? String(decoding: head[8..<12], as: UTF8.self) : ""
            switch brand {
            case "qt  ": return "video/quicktime"
            case "3gp4", "3gp5", "3gp6", "3g2a": return "video/3gpp"
            case "heic", "heix", "mif1", "avif": return nil // still images in ISO-BMFF: not supported
            default: return "video/mp4"
            }
        }
        if at(0, [0x00, 0x00, 0x01, 0xBA]) || at(0, [0x00, 0x00, 0x01, 0xB3]) { return "video/mpeg" }
        if head.count > 188 && head[0] == 0x47 && head[188] == 0x47 { return "video/mp2t" }
        return nil
    }

    private static func contains(_ haystack: ArraySlice<UInt8>, _ needle: [UInt8]) -> Bool {
        guard haystack.count >= needle.count else { return false }
        return (haystack.startIndex...(haystack.endIndex - needle.count)).contains { Array(haystack[$0..<$0 + needle.count]) == needle }
    }

    static let accepted = "JPEG, PNG, GIF, WebP images; MP4, QuickTime, WebM, Matroska, AVI, MPEG, MPEG-TS, 3GP videos"
}
