// aira-chaos (scripts/chaos): faults injected into a running Aira under load, and what was lost
// counted where the effects land. Each case starts its own stack with `scripts/run` (a vhost,
// ports and folders of its own), streams real work at it, injects the faults, waits for the
// work to settle, and reports one row: case, load, faults, messages sent, effects counted, lost,
// duplicated, 5xx. Exit 1 when any case lost, doubled or answered 5xx where it must not.
//
//   aira-chaos [--short] [CASE ...]      (default: every case)
//     workers killed:   kill-audit-writer kill-email-worker kill-thumbnail-worker kill-auth kill-gpt-proxy kill-analyzer
//     servers down:     kill-rabbitmq redis-down postgres-down disk-full cluster-node-loss
//     operators:        replay-killed
//     hostile input:    garbage-amqp hostile-http fuzz-api
//
// The cases live in Workers.swift, Outages.swift and Input.swift; Support.swift has the report
// row, the load helpers and the HTTP client.
// CHAOS_CLIP: the video the thumbnail jobs read (scripts/chaos makes a small one).
import AiraAMQP
import AiraCore
import AiraMessaging
import AiraPostgres
import AiraWorkload
import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import Logging
import Synchronization

var arguments = Array(CommandLine.arguments.dropFirst())
let short = arguments.contains("--short")
arguments.removeAll { $0 == "--short" }
let allCases = ["kill-audit-writer", "kill-email-worker", "kill-thumbnail-worker", "kill-auth", "kill-gpt-proxy", "kill-analyzer", "kill-rabbitmq",
                "redis-down", "postgres-down", "disk-full", "cluster-node-loss", "replay-killed", "garbage-amqp", "hostile-http", "fuzz-api"]
let chosen = arguments.isEmpty ? allCases : arguments
if let unknown = chosen.first(where: { !allCases.contains($0) }) {
    FileHandle.standardError.write(Data("aira-chaos: unknown case \(unknown) (one of: \(allCases.joined(separator: ", ")))\n".utf8))
    exit(2)
}

var outcomes: [Outcome] = []
for name in chosen {
    log("case \(name)")
    do {
        switch name {
        case "kill-audit-writer":
            outcomes.append(try await killWorker("audit-writer", kind: .audit, count: short ? 3_000 : 10_000, perSecond: short ? 200 : 500))
        case "kill-email-worker":
            outcomes.append(try await killWorker("email-worker", kind: .email, count: short ? 600 : 10_000, perSecond: short ? 40 : 150))
        case "kill-thumbnail-worker":
            outcomes.append(try await killWorker("thumbnail-worker", kind: .thumbnail, count: short ? 180 : 10_000, perSecond: short ? 12 : 30))
        case "kill-auth":
            outcomes.append(try await killAuth(count: short ? 1_000 : 10_000, perSecond: short ? 50 : 100))
        case "kill-gpt-proxy":
            outcomes.append(try await killGPTProxy(count: short ? 1_000 : 10_000, perSecond: short ? 50 : 100))
        case "kill-analyzer":
            outcomes.append(try await killAnalyzer(users: short ? 3_000 : 10_000))
        case "kill-rabbitmq":
            outcomes.append(try await killRabbitMQ(count: short ? 3_000 : 10_000, perSecond: short ? 150 : 300))
        case "redis-down":
            outcomes.append(try await redisDown(outage: .seconds(short ? 15 : 30), around: .seconds(short ? 5 : 15)))
        case "postgres-down":
            outcomes.append(try await postgresDown(count: short ? 1_500 : 10_000, perSecond: short ? 50 : 100, outage: .seconds(short ? 15 : 30)))
        case "cluster-node-loss":
            outcomes.append(try await clusterNodeLoss(count: short ? 1_500 : 6_000, perSecond: short ? 100 : 150))
        case "disk-full":
            outcomes.append(try await diskFull())
        case "replay-killed":
            outcomes.append(try await replayKilled(count: short ? 2_000 : 10_000, rate: short ? 500 : 1_000))
        case "garbage-amqp":
            outcomes.append(try await garbageAMQP())
        case "hostile-http":
            outcomes.append(try await hostileHTTP(slowClients: short ? 300 : 1_000, duration: .seconds(short ? 10 : 30)))
        default:
            outcomes.append(try await fuzzAPI(examples: short ? 10 : 50))
        }
    } catch {
        var failed = Outcome(name: name, load: "-", faults: "-")
        failed.failures.append("\(error)")
        outcomes.append(failed)
    }
    log("\(outcomes.last!.passed ? "passed" : "FAILED"): \(name)")
}
await database.shutdown()

print("| case | load | faults injected | messages sent (confirmed) | effects counted | lost | duplicated | 5xx | result | notes |")
print("|---|---|---|---|---|---|---|---|---|---|")
for o in outcomes {
    let result = o.passed ? "pass" : "**FAIL**" + (o.failures.isEmpty ? "" : ": " + o.failures.joined(separator: "; "))
    print("| \(o.name) | \(o.load) | \(o.faults) | \(o.sent) | \(o.effects) | \(o.lost) | \(o.duplicated) | \(o.serverErrors.map(String.init) ?? "—") | \(result) | \(o.notes.joined(separator: "; ")) |")
}
exit(outcomes.allSatisfy(\.passed) ? 0 : 1)
