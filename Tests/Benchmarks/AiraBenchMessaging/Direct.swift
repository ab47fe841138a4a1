import AiraCore
import CRabbitMQ
import AiraMessaging
import Foundation

/// The baseline: rabbitmq-c driven directly from one thread, no runtime, same settings.
enum Direct {
    static func connect(host: String, port: Int32) -> amqp_connection_state_t {
        let state = amqp_new_connection()!
        let socket = amqp_tcp_socket_new(state)!
        guard amqp_socket_open(socket, host, port) == 0 else { fatalError("cannot connect to \(host):\(port)") }
        let reply = aira_amqp_login_plain(state, "/", 0, 131_072, 0, "guest", "guest")
        guard reply.reply_type == AMQP_RESPONSE_NORMAL else { fatalError("login failed") }
        amqp_channel_open(state, 1)
        guard amqp_get_rpc_reply(state).reply_type == AMQP_RESPONSE_NORMAL else { fatalError("channel.open failed") }
        return state
    }

    static func close(_ state: amqp_connection_state_t) {
        _ = amqp_channel_close(state, 1, 200)
        _ = amqp_connection_close(state, 200)
        amqp_destroy_connection(state)
    }

    /// Persistent publishes with confirms, at most `window` unconfirmed. Returns seconds taken.
    static func publish(host: String, port: Int32, queue: String, body: [UInt8], count: Int, window: Int) -> Double {
        let state = connect(host: host, port: port)
        defer { close(state) }
        amqp_confirm_select(state, 1)
        guard amqp_get_rpc_reply(state).reply_type == AMQP_RESPONSE_NORMAL else { fatalError("confirm.select failed") }
        // The same envelope the runtime puts on every message: content type, persistent, type,
        // a unique message id (= correlation id), timestamp, app id and a traceparent header.
        var props = amqp_basic_properties_t()
        props._flags = aira_amqp_flag_delivery_mode() | aira_amqp_flag_content_type() | aira_amqp_flag_type()
            | aira_amqp_flag_message_id() | aira_amqp_flag_correlation_id() | aira_amqp_flag_timestamp()
            | aira_amqp_flag_app_id() | aira_amqp_flag_headers()
        props.delivery_mode = 2
        let texts: [String] = ["application/json", "bench.event.v1", "aira", "traceparent",
                               "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", queue, ""]
        let strings: [UnsafeMutablePointer<CChar>] = texts.map { strdup($0)! }
        defer { strings.forEach { free($0) } }
        props.content_type = amqp_cstring_bytes(strings[0])
        props.type = amqp_cstring_bytes(strings[1])
        props.app_id = amqp_cstring_bytes(strings[2])
        var header = amqp_table_entry_t()
        header.key = amqp_cstring_bytes(strings[3])
        header.value.kind = UInt8(ascii: "S")
        header.value.value.bytes = amqp_cstring_bytes(strings[4])
        let queueName = strings[5], empty = strings[6]
        let idBuffer = UnsafeMutablePointer<CChar>.allocate(capacity: 64)
        defer { idBuffer.deallocate() }

        var confirmed = [Bool](repeating: false, count: count + 2)
        var lowest = 1, sent = 0, done = 0
        let start = Date()
        body.withUnsafeBytes { raw in
            let bytes = amqp_bytes_t(len: raw.count, bytes: UnsafeMutableRawPointer(mutating: raw.baseAddress))
            withUnsafeMutablePointer(to: &header) { headerPointer in
            props.headers = amqp_table_t(num_entries: 1, entries: headerPointer)
            while done < count {
                while sent < count && sent - done < window {
                    // A unique message id per message, made as the runtime makes them.
                    let id = MessageID.random()
                    _ = id.withCString { strncpy(idBuffer, $0, 63) }
                    props.message_id = amqp_cstring_bytes(idBuffer)
                    props.correlation_id = props.message_id
                    props.timestamp = UInt64(Date().timeIntervalSince1970)
                    let rc = amqp_basic_publish(state, 1, amqp_cstring_bytes(empty), amqp_cstring_bytes(queueName), 0, 0, &props, bytes)
                    precondition(rc == 0, "publish failed")
                    sent += 1
                }
                var frame = amqp_frame_t()
                guard amqp_simple_wait_frame(state, &frame) == 0 else { fatalError("wait frame failed") }
                guard frame.frame_type == UInt8(AMQP_FRAME_METHOD), frame.payload.method.id == 0x003C_0050 else { continue }
                let ack = frame.payload.method.decoded.assumingMemoryBound(to: amqp_basic_ack_t.self).pointee
                let tag = Int(ack.delivery_tag)
                if ack.multiple != 0 {
                    while lowest <= tag { if !confirmed[lowest] { confirmed[lowest] = true; done += 1 }; lowest += 1 }
                } else if !confirmed[tag] {
                    confirmed[tag] = true; done += 1
                    while lowest <= count && confirmed[lowest] { lowest += 1 }
                }
                amqp_maybe_release_buffers(state)
            }
            }
        }
        return Date().timeIntervalSince(start)
    }

    /// Consumes `count` messages with `prefetch`, acking each. Returns seconds taken.
    static func consume(host: String, port: Int32, queue: String, count: Int, prefetch: UInt16) -> Double {
        let state = connect(host: host, port: port)
        defer { close(state) }
        amqp_basic_qos(state, 1, 0, prefetch, 0)
        let queueName = strdup(queue)!
        defer { free(queueName) }
        amqp_basic_consume(state, 1, amqp_cstring_bytes(queueName), amqp_empty_bytes, 0, 0, 0, amqp_empty_table)
        guard amqp_get_rpc_reply(state).reply_type == AMQP_RESPONSE_NORMAL else { fatalError("consume failed") }
        var received = 0
        let start = Date()
        while received < count {
            amqp_maybe_release_buffers(state)
            var envelope = amqp_envelope_t()
            let reply = amqp_consume_message(state, &envelope, nil, 0)
            guard reply.reply_type == AMQP_RESPONSE_NORMAL else { continue }
            _ = amqp_basic_ack(state, 1, envelope.delivery_tag, 0)
            amqp_destroy_envelope(&envelope)
            received += 1
        }
        return Date().timeIntervalSince(start)
    }
}
