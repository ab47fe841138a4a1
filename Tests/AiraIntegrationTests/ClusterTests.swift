import AiraAMQP
import Foundation
import Subprocess
import Synchronization
import Testing

/// Against the three-node cluster `scripts/cluster up` runs (AIRA_TEST_CLUSTER_URL, set by
/// `scripts/test` when it starts the cluster): a node dies under a steady confirmed stream.
@Suite("RabbitMQ cluster: a node lost under load", .enabled(if: ProcessInfo.processInfo.environment["AIRA_TEST_CLUSTER_URL"] != nil),
       .serialized)
struct ClusterTests {
    static let url = ProcessInfo.processInfo.environment["AIRA_TEST_CLUSTER_URL"] ?? ""

    /// `scripts/cluster <arguments>`, its output appended to .data/cluster/test.log (not a pipe:
    /// a node started in the background keeps its standard output open).
    static func cluster(_ arguments: String...) async throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let log = root.appendingPathComponent(".data/cluster/test.log").path
        let command = "bash \(root.appendingPathComponent("scripts/cluster").path) \(arguments.joined(separator: " ")) >>\(log) 2>&1"
        let result = try await Subprocess.run(.path("/bin/bash"), arguments: ["-c", command], output: .discarded, error: .discarded)
        let tail = (try? String(contentsOfFile: log, encoding: .utf8))?.suffix(2000) ?? ""
        try #require(result.terminationStatus.isSuccess, "scripts/cluster \(arguments): \(tail)")
    }

    @Test("the publisher's node killed -9 mid-stream: it fails over to another node, and every confirmed message of a quorum queue is consumed")
    func nodeLoss() async throws {
        let count = 1500
        let perSecond = 150
        var config = try AMQPConfiguration(url: Self.url, connectionName: "aira-test-cluster")
        config.reconnectBackoff = .milliseconds(100)
        config.reconnectBackoffMax = .seconds(1)
        let publisherConnection = try await AMQPConnection.connect(configuration: config, logger: TestServers.logger)
        let consumerConnection = try await AMQPConnection.connect(configuration: config, logger: TestServers.logger)
        let publisher = try await publisherConnection.openChannel()
        try await publisher.enableConfirms()
        let queue = uniqueName("cluster.quorum")
        try await publisher.declareQueue(queue, options: .init(durable: true, arguments: ["x-queue-type": .string("quorum")]))
        let consuming = try await consumerConnection.openChannel()
        try await consuming.setPrefetch(100)
        let consumer = try await consuming.consume(queue: queue)
        let received = Mutex<Set<Int>>([])
        let reader = Task {
            for await delivery in consumer.deliveries {
                if let id = Int(String(decoding: delivery.body, as: UTF8.self)) { received.withLock { _ = $0.insert(id) } }
                consuming.ack(delivery)
            }
        }

        // The node to kill: the one the publisher reached (port 5701 + N - 1 is node N).
        let killedNode = try #require(publisherConnection.node)
        let nodeNumber = killedNode.port - (config.nodes.map(\.port).min() ?? killedNode.port) + 1
        var confirmed = 0
        var retries = 0
        var firstFailure: ContinuousClock.Instant?
        var recovered: Duration?
        let start = ContinuousClock.now
        for i in 0..<count {
            if i == count * 3 / 10 { try await Self.cluster("kill", String(nodeNumber)) }
            let due = start + .milliseconds(i * 1000 / perSecond)
            if ContinuousClock.now < due { try await Task.sleep(until: due) }
            // A careful publisher: a message whose confirm did not come is published again.
            while true {
                do {
                    try await publisher.publish(exchange: "", routingKey: queue, body: Array(String(i).utf8),
                                                properties: .init(deliveryMode: 2, messageID: "m-\(i)"), mandatory: true)
                    if let failed = firstFailure, recovered == nil { recovered = .now - failed }
                    confirmed += 1
                    break
                } catch {
                    if firstFailure == nil { firstFailure = .now }
                    retries += 1
                    try #require(ContinuousClock.now - start < .seconds(120), "no failover: \(error)")
                    try await Task.sleep(for: .milliseconds(50))
                }
            }
        }
        let allIn = await eventually(timeout: .seconds(60)) { received.withLock { $0.count } >= count }
        let got = received.withLock { $0 }
        #expect(allIn && got.count == count, "confirmed \(confirmed), consumed \(got.count), missing \(Set(0..<count).subtracting(got).sorted().prefix(10))")
        let now = try #require(publisherConnection.node)
        #expect(now != killedNode, "still on \(killedNode)")
        print("cluster node loss: killed node \(nodeNumber) (\(killedNode)); publisher moved to \(now); confirmed \(confirmed) of \(count), consumed \(got.count); publishes retried \(retries); publishing failed for \(recovered.map { "\(Int($0.seconds * 1000)) ms" } ?? "0 ms")")
        try await Self.cluster("start", String(nodeNumber))

        reader.cancel()
        _ = try? await publisher.deleteQueue(queue)
        await consumerConnection.close()
        await publisherConnection.close()
    }
}
