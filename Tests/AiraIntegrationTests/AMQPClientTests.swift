import AiraAMQP
import Foundation
import Testing

@Suite("AMQP client", .enabled(if: TestServers.available))
struct AMQPClientTests {
    @Test("publish with confirms, consume, ack")
    func roundTrip() async throws {
        let connection = try await TestServers.connect()
        let channel = try await connection.openChannel()
        try await channel.enableConfirms()
        let queue = uniqueName("amqp.roundtrip")
        try await channel.declareQueue(queue, options: .init(durable: true, arguments: ["x-queue-type": .string("quorum")]))
        try await channel.setPrefetch(10)
        let consumer = try await channel.consume(queue: queue)

        let headers: AMQPTable = ["x-test": .string("yes"), "n": .int(42)]
        try await channel.publish(exchange: "", routingKey: queue, body: Array("hello".utf8),
                                  properties: .init(contentType: "text/plain", headers: headers, deliveryMode: 2,
                                                    correlationID: "c-1", messageID: "m-1", timestamp: 1_700_000_000,
                                                    type: "test.v1"),
                                  mandatory: true)
        var iterator = consumer.deliveries.makeAsyncIterator()
        let delivery = try #require(await iterator.next())
        #expect(String(decoding: delivery.body, as: UTF8.self) == "hello")
        #expect(delivery.properties.messageID == "m-1")
        #expect(delivery.properties.correlationID == "c-1")
        #expect(delivery.properties.type == "test.v1")
        #expect(delivery.properties.timestamp == 1_700_000_000)
        #expect(delivery.properties.headers["x-test"] == .string("yes"))
        #expect(delivery.properties.headers["n"]?.intValue == 42)
        #expect(delivery.routingKey == queue)
        channel.ack(delivery)

        #expect(try await eventually { try await channel.inspectQueue(queue).messageCount == 0 })
        try await channel.cancel(consumerTag: consumer.tag)
        try await channel.deleteQueue(queue)
        await connection.close()
    }

    @Test("a mandatory publish nobody receives fails loudly")
    func unroutable() async throws {
        let connection = try await TestServers.connect()
        let channel = try await connection.openChannel()
        try await channel.enableConfirms()
        let exchange = uniqueName("amqp.unroutable")
        try await channel.declareExchange(exchange, type: "topic", durable: false)
        await #expect {
            try await channel.publish(exchange: exchange, routingKey: "nobody.listens", body: [1], mandatory: true)
        } throws: { error in
            guard case AMQPError.unroutable(_, let key, _) = error else { return false }
            return key == "nobody.listens"
        }
        // The channel is still usable afterwards.
        let queue = uniqueName("amqp.after")
        try await channel.declareQueue(queue, options: .init(durable: false, autoDelete: false))
        try await channel.publish(exchange: "", routingKey: queue, body: [2], mandatory: true)
        try await channel.deleteQueue(queue)
        await connection.close()
    }

    @Test("a channel error is reported and the channel recovers")
    func channelError() async throws {
        let connection = try await TestServers.connect()
        let channel = try await connection.openChannel()
        await #expect {
            _ = try await channel.inspectQueue(uniqueName("does-not-exist"))
        } throws: { error in
            (error as? AMQPError)?.replyCode == 404
        }
        let queue = uniqueName("amqp.recovered")
        try await channel.declareQueue(queue, options: .init(durable: false))
        #expect(try await channel.inspectQueue(queue).messageCount == 0)
        try await channel.deleteQueue(queue)
        await connection.close()
    }

    @Test("pipelined confirmed publishes all complete")
    func pipelined() async throws {
        let connection = try await TestServers.connect()
        let channel = try await connection.openChannel()
        try await channel.enableConfirms()
        let queue = uniqueName("amqp.pipelined")
        try await channel.declareQueue(queue, options: .init(durable: true, arguments: ["x-queue-type": .string("quorum")]))
        try await withThrowingTaskGroup(of: Void.self) { group in
            for i in 0..<2000 {
                group.addTask {
                    try await channel.publish(exchange: "", routingKey: queue, body: Array("\(i)".utf8),
                                              properties: .init(deliveryMode: 2), mandatory: true)
                }
            }
            try await group.waitForAll()
        }
        #expect(try await eventually { try await channel.inspectQueue(queue).messageCount == 2000 })
        try await channel.deleteQueue(queue)
        await connection.close()
    }

    @Test("connecting to a closed port fails fast with a clear error")
    func connectFailure() async throws {
        var config = try TestServers.amqpConfiguration()
        config.port = 1
        let started = ContinuousClock.now
        await #expect(throws: AMQPError.self) {
            _ = try await AMQPConnection.connect(configuration: config, logger: TestServers.logger, timeout: .seconds(1))
        }
        #expect(ContinuousClock.now - started < .seconds(3))
    }

    @Test("a cluster URL: nodes that refuse are passed over at once, without waiting out a backoff")
    func clusterFailover() async throws {
        var config = try TestServers.amqpConfiguration()
        let live = config.nodes[0]
        let dead = [AMQPConfiguration.Node(host: "127.0.0.1", port: try closedPort()),
                    AMQPConfiguration.Node(host: "127.0.0.1", port: try closedPort())]
        config.nodes = dead + [live]
        // Whichever node it starts at, it must reach the live one in its first round (a round
        // of refusals takes milliseconds; a backoff between them would take 200 ms and more).
        for _ in 0..<5 {
            let started = ContinuousClock.now
            let connection = try await AMQPConnection.connect(configuration: config, logger: TestServers.logger, timeout: .seconds(5))
            #expect(ContinuousClock.now - started < .milliseconds(150))
            let channel = try await connection.openChannel()
            let queue = uniqueName("cluster")
            try await channel.declareQueue(queue, options: .init(durable: false, autoDelete: false))
            _ = try await channel.deleteQueue(queue)
            await connection.close()
        }
        // No node answers: a clear error naming each one.
        config.nodes = dead
        await #expect {
            _ = try await AMQPConnection.connect(configuration: config, logger: TestServers.logger, timeout: .seconds(1))
        } throws: { error in
            "\(error)".contains("\(dead[0])") && "\(error)".contains("\(dead[1])")
        }
    }
}
