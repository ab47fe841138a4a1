import AiraCore
import Foundation
import Logging
import Synchronization

/// One JSON object per line on stderr: time, level, service, message, source and metadata.
public struct JSONLogHandler: LogHandler {
    public var logLevel: Logger.Level = .info
    public var metadata: Logger.Metadata = [:]
    public var metadataProvider: Logger.MetadataProvider?
    let label: String
    let service: String

    public init(label: String, service: String) {
        self.label = label
        self.service = service
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { self.metadata[key] }
        set { self.metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        var fields = self.metadata
        if let provided = self.metadataProvider?.get() { fields.merge(provided) { $1 } }
        if let extra = event.metadata { fields.merge(extra) { $1 } }
        // The line's own fields win over metadata of the same name.
        fields["ts"] = .string(iso8601(Date()))
        fields["level"] = .string(event.level.rawValue)
        fields["service"] = .string(self.service)
        fields["logger"] = .string(self.label)
        fields["msg"] = .string(event.message.description)
        if event.level >= .warning { fields["source"] = .string("\(event.source) \(event.file.split(separator: "/").last ?? ""):\(event.line)") }
        var line: [UInt8] = []
        line.reserveCapacity(256)
        Self.append(.dictionary(fields), to: &line)
        line.append(0x0A)
        Self.output.withLock { _ in FileHandle.standardError.write(Data(line)) }
    }

    private static let output = Mutex(())

    /// A metadata value as JSON (``JSONText``): strings as strings, keys sorted.
    static func append(_ value: Logger.Metadata.Value, to out: inout [UInt8]) {
        switch value {
        case .string(let s):
            JSONText.appendQuoted(s, to: &out)
        case .stringConvertible(let c):
            JSONText.appendQuoted(c.description, to: &out)
        case .array(let items):
            out.append(UInt8(ascii: "["))
            for (i, item) in items.enumerated() {
                if i > 0 { out.append(UInt8(ascii: ",")) }
                Self.append(item, to: &out)
            }
            out.append(UInt8(ascii: "]"))
        case .dictionary(let members):
            out.append(UInt8(ascii: "{"))
            for (i, key) in members.keys.sorted().enumerated() {
                if i > 0 { out.append(UInt8(ascii: ",")) }
                JSONText.appendQuoted(key, to: &out)
                out.append(UInt8(ascii: ":"))
                Self.append(members[key]!, to: &out)
            }
            out.append(UInt8(ascii: "}"))
        }
    }
}
