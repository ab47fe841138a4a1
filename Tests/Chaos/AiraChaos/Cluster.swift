import AiraAMQP
import AiraCore
import AiraMessaging
import AiraWorkload
import Foundation
import Synchronization
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// The whole system on the three-node cluster of `scripts/cluster` (started here when it is not
/// running, and stopped again): a steady stream of confirmed audit messages, GPT questions and
/// logins through the gateway; the node that leads the most of the busiest quorum queues is
/// killed with SIGKILL and started again 10 s later. Counted: confirmed messages vs. rows stored
/// (0 lost, 0 doubled), requests that failed and for how long, the time until every service was
/// ready again (with no process restarted).
func clusterNodeLoss(count: Int, perSecond: Int) async throws -> Outcome {
    var outcome = Outcome(name: "cluster node kill -9", load: "\(count) audit messages at \(perSecond)/s + a GPT question and a login through the gateway every 100 ms",
                          faults: "SIGKILL to the node leading the busiest quorum queues at 30 %, started again 10 s later")
    let cluster = LocalRun.root.appendingPathComponent("scripts/cluster").path
    let wasUp = await shell("bash \(cluster) status").status == 0
    if !wasUp {
        log("starting the three-node cluster (scripts/cluster up)")
        let up = await shell("bash \(cluster) up", timeout: .seconds(300))
        guard up.status == 0 else { throw ChaosError("scripts/cluster up failed:\n\(up.output.suffix(2000))") }
    }
    let url = await shell("bash \(cluster) url").output.trimmingCharacters(in: .whitespacesAndNewlines)
    guard url.hasPrefix("amqp://") else { throw ChaosError("scripts/cluster url: \(url)") }

    let managementPort: @Sendable (Int) -> Int = { node in 15701 + node - 1 }
    var clusterEnvironment = environment
    clusterEnvironment["AIRA_AMQP_URL"] = url
    clusterEnvironment["AIRA_RABBITMQ_MANAGEMENT_URL"] = "http://guest:guest@127.0.0.1:\(managementPort(1))"
    let directory = dataDirectory.appendingPathComponent("chaos/cluster-node-loss")
    try? FileManager.default.removeItem(at: directory)
    let stack = try await LocalRun(prefix: "aira-chaos", environment: clusterEnvironment, directory: directory)
    do {
        outcome = try await clusterNodeLoss(count: count, perSecond: perSecond, stack: stack, outcome: outcome, cluster: cluster,
                                            managementPort: managementPort)
    } catch {
        log("failed: \(error); supervisor log:\n\(stack.supervisorLog.suffix(2000))")
        await stack.tearDown()
        if !wasUp { _ = await shell("bash \(cluster) down", timeout: .seconds(120)) }
        throw error
    }
    await stack.tearDown()
    if !wasUp { _ = await shell("bash \(cluster) down", timeout: .seconds(120)) }
    return outcome
}

private func clusterNodeLoss(count: Int, perSecond: Int, stack: LocalRun, outcome start: Outcome, cluster: String,
                             managementPort: @escaping @Sendable (Int) -> Int) async throws -> Outcome {
    var outcome = start
    stack.extraEnvironment.merge(floodSettings) { $1 }
    try await stack.start("gateway,auth,gpt-proxy,mock-llm,audit-writer")
    let port = stack.portBase
    let tag = "chaos-cluster-\(UUID().uuidString.prefix(6).lowercased())"
    let user = try await signUpAndLogIn(port: port, email: "\(tag)@chaos.example")
    let work = Workload(kind: .audit, tag: tag.replacingOccurrences(of: "-", with: "_"), database: database,
                        mediaRoot: URL(fileURLWithPath: stack.environment["AIRA_MEDIA_DIR"]!))
    let (confirmed, retried) = (Counter(), Counter())

    // Clients: a new GPT question (through the proxy to the mock LLM) and a login, each every 100 ms.
    let calls = PhasedCalls()
    let question = Counter()
    let failures = Mutex<[(ContinuousClock.Instant, Int)]>([])
    @Sendable func note(_ answer: Answer) -> Answer {
        if answer.status != 200 { failures.withLock { $0.append((ContinuousClock.now, answer.status)) } }
        return answer
    }
    let loops = [
        calls.loop("GPT question") {
            question.add()
            return note(await call(.POST, port: port, "/api/gpt/qna", json: #"{"question":"\#(tag) question \#(question.current): what is a quorum?"}"#,
                                   token: user.token, timeout: .seconds(30)))
        },
        calls.loop("login") {
            note(await call(.POST, port: port, "/api/auth/login", json: #"{"email":"\#(tag)@chaos.example","password":"chaos-password-1"}"#,
                            timeout: .seconds(15)))
        },
    ]
    async let streaming: Void = stream(work, count: count, perSecond: perSecond, stack: stack, videos: [], confirmed: confirmed, retried: retried)
    while confirmed.current < count * 3 / 10 { try await Task.sleep(for: .milliseconds(50)) }

    // The node that leads the most of the busiest queues (audit.events first, then the RPC queues).
    let busiest = ["audit.events", "gpt.ask", "auth.credentials"]
    let listed = try JSONSerialization.jsonObject(with: try await stack.managementCall(
        "GET", "/api/queues/\(stack.vhost)?columns=name,leader,type")) as? [[String: Any]] ?? []
    var leads: [String: Int] = [:]
    for q in listed where busiest.contains(q["name"] as? String ?? "") {
        if let leader = q["leader"] as? String { leads[leader, default: 0] += q["name"] as? String == "audit.events" ? 2 : 1 }
    }
    guard let leader = leads.max(by: { $0.value < $1.value })?.key, let victim = Int(leader.dropFirst("rabbit-c".count).prefix { $0.isNumber }),
          (1...3).contains(victim) else {
        throw ChaosError("no leader found for \(busiest) in \(listed)")
    }
    // Look at the cluster through a node that stays up.
    let watcher = victim == 1 ? 2 : 1
    stack.extraEnvironment["AIRA_RABBITMQ_MANAGEMENT_URL"] = "http://guest:guest@127.0.0.1:\(managementPort(watcher))"
    let before = confirmed.current
    calls.phase.withLock { $0 = "during" }
    let killedAt = ContinuousClock.now  // before the command: it takes a second or so to send the signal
    let killed = await shell("bash \(cluster) kill \(victim)")
    guard killed.status == 0 else { throw ChaosError("scripts/cluster kill \(victim): \(killed.output)") }
    log("cluster: SIGKILL to node \(victim) (\(leader), leading \(leads[leader] ?? 0) of the weighted busiest queues) after \(before) of \(count) messages")
    try await Task.sleep(for: .seconds(10))
    let restarted = await shell("bash \(cluster) start \(victim)", timeout: .seconds(120))
    guard restarted.status == 0 else { throw ChaosError("scripts/cluster start \(victim):\n\(restarted.output.suffix(2000))") }
    log("cluster: node \(victim) running again \(seconds(ContinuousClock.now - killedAt)) after the kill")
    let back = try await allReady(stack, timeout: .seconds(120)) ? ContinuousClock.now - killedAt : nil
    calls.phase.withLock { $0 = "after" }
    try await streaming
    try await Task.sleep(for: .seconds(3))
    calls.stop()
    for l in loops { await l.value }

    outcome.sent = confirmed.current
    let effects = try await settle(work, count: count, timeout: .seconds(120))
    outcome.effects = effects.total
    outcome.lost = count - effects.distinct
    outcome.duplicated = effects.duplicated
    var serverErrors = 0
    for (name, tally) in calls.all {
        outcome.notes.append("\(name): \(tally.summary)")
        serverErrors += tally.serverErrors
        if (tally.all[0] ?? 0) > 0 { outcome.failures.append("\(name): \(tally.all[0]!) calls got no answer") }
    }
    outcome.serverErrors = serverErrors
    let failed = failures.withLock { $0 }
    if let first = failed.first?.0, let last = failed.last?.0 {
        outcome.notes.append("\(failed.count) requests failed (\(Set(failed.map(\.1)).sorted().map(String.init).joined(separator: ", "))), "
                             + "from \(seconds(first - killedAt)) to \(seconds(last - killedAt)) after the kill")
    } else {
        outcome.notes.append("no request failed")
    }
    outcome.notes.append("publishes retried \(retried.current)")
    if let back { outcome.notes.append("every service ready \(seconds(back)) after the kill (the node was down 10 s)") }
    else { outcome.failures.append("not every service was ready again within 120 s of the node's return") }
    let restarts = try await stack.status().instances.map(\.restarts).reduce(0, +)
    outcome.notes.append("process restarts \(restarts)")
    if restarts > 0 { outcome.failures.append("\(restarts) service processes had to be restarted") }
    _ = try await stack.run(["stop"])
    _ = try await database.query("DELETE FROM users WHERE email LIKE \(tag + "%")")
    return outcome
}

/// `bash -c COMMAND` to its end (SIGKILL after `timeout`): exit status and output (through a
/// file: a node started in the background could hold a pipe open).
func shell(_ command: String, timeout: Duration = .seconds(60)) async -> (status: Int32, output: String) {
    let out = FileManager.default.temporaryDirectory.appendingPathComponent("aira-chaos-\(UUID().uuidString.prefix(8)).txt")
    defer { try? FileManager.default.removeItem(at: out) }
    do {
        let child = try LocalRun.spawn("/bin/bash", ["-c", command], environment: environment, output: out)
        return try await child.wait(timeout: timeout)
    } catch {
        return (127, "\(error)")
    }
}
