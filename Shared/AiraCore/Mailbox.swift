#if canImport(Glibc)
import Glibc
#endif
import Synchronization

/// A job queue for one dedicated OS thread, with a self-pipe so that the thread can sleep in
/// `poll(2)` on its own socket and on new jobs at the same time.
///
/// Submitters never block: they append under a lock and write the pipe only when the owner
/// thread said it is about to sleep, so a busy thread takes thousands of jobs per wake-up.
package final class Mailbox<Job: Sendable>: Sendable {
    private struct State: ~Copyable {
        var jobs: [Job] = []
        var sleeping = false
        var closed = false
    }

    private let state = Mutex(State())
    private let readFD: Int32
    private let writeFD: Int32

    package init() {
        var fds: [Int32] = [0, 0]
        let rc = pipe(&fds)
        precondition(rc == 0, "pipe failed: \(errno)")
        for fd in fds {
            _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
            _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
        }
        self.readFD = fds[0]
        self.writeFD = fds[1]
    }

    deinit {
        Glibc.close(self.readFD)
        Glibc.close(self.writeFD)
    }

    /// Enqueues a job; returns false once the mailbox is closed (the job was not taken).
    @discardableResult
    package func submit(_ job: Job) -> Bool {
        let wake: Bool? = self.state.withLock { state in
            if state.closed { return nil }
            state.jobs.append(job)
            if state.sleeping { state.sleeping = false; return true }
            return false
        }
        guard let wake else { return false }
        if wake { self.signal() }
        return true
    }

    /// Takes every queued job (owner thread only).
    package func drain() -> [Job] {
        self.state.withLock { state in
            guard !state.jobs.isEmpty else { return [] }
            defer { state.jobs.removeAll(keepingCapacity: true) }
            return state.jobs
        }
    }

    /// Closes the mailbox and returns the jobs that were still queued, so the owner can fail them.
    package func close() -> [Job] {
        let jobs = self.state.withLock { state in
            state.closed = true
            defer { state.jobs = [] }
            return state.jobs
        }
        self.signal()
        return jobs
    }

    package var isClosed: Bool { self.state.withLock { $0.closed } }

    /// What woke the owner thread up.
    package struct Wakeup: Sendable {
        package var jobs: Bool
        package var fileReadable: Bool
    }

    /// Sleeps until a job arrives, `fd` (if any, ≥ 0) becomes readable, or `timeoutMilliseconds`
    /// passes (-1: no limit). Returns at once when jobs are already queued.
    package func wait(for fd: Int32 = -1, timeoutMilliseconds: Int32) -> Wakeup {
        let hasJobs = self.state.withLock { state -> Bool in
            if !state.jobs.isEmpty || state.closed { return true }
            state.sleeping = true
            return false
        }
        if hasJobs { return Wakeup(jobs: true, fileReadable: false) }

        var fds = [pollfd(fd: self.readFD, events: Int16(POLLIN), revents: 0),
                   pollfd(fd: fd, events: Int16(POLLIN), revents: 0)]
        let count: nfds_t = fd >= 0 ? 2 : 1
        var rc: Int32
        repeat { rc = poll(&fds, count, timeoutMilliseconds) } while rc < 0 && errno == EINTR
        self.state.withLock { $0.sleeping = false }
        var woke = Wakeup(jobs: false, fileReadable: false)
        if rc > 0 {
            if fds[0].revents != 0 {
                var buffer = [UInt8](repeating: 0, count: 64)
                while read(self.readFD, &buffer, buffer.count) > 0 {}
                woke.jobs = true
            }
            if count == 2, fds[1].revents != 0 { woke.fileReadable = true }
        }
        return woke
    }

    private func signal() {
        var one: UInt8 = 1
        _ = write(self.writeFD, &one, 1)
    }
}
