import AiraContracts
import AiraMessaging
import ArgumentParser
import Foundation

/// `aira-admin topology`: the consumer queues Aira declares, without a broker. What
/// scripts/test-kubernetes checks every KEDA trigger's queue against.
struct Topology: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "List the consumer queues of Aira's topology (kind, bindings, retry tiers, DLQ); no broker needed.")

    @Flag(help: "Print JSON instead of a table.")
    var json = false

    struct Entry: Encodable {
        let name: String
        let kind: String
        let bindings: [String]
        let queues: [String]
        let deliveryLimit: Int
        let maxLength: Int?
    }

    func run() async throws {
        let entries = AiraTopology.consumerQueues().map { spec in
            Entry(name: spec.name, kind: spec.kind == .rpc ? "rpc" : "work", bindings: spec.bindings, queues: spec.allQueues,
                  deliveryLimit: spec.deliveryLimit, maxLength: spec.maxLength)
        }
        if json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            print(String(decoding: try encoder.encode(entries), as: UTF8.self))
            return
        }
        for e in entries {
            print("\(e.name.padding(toLength: 20, withPad: " ", startingAt: 0)) \(e.kind.padding(toLength: 5, withPad: " ", startingAt: 0)) "
                  + "bindings: \(e.bindings.joined(separator: ",")); queues: \(e.queues.joined(separator: " "))")
        }
    }
}
