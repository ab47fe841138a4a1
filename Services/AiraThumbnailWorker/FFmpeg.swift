import AiraCore
import AiraMessaging
import Foundation
import Subprocess
#if canImport(System)
import System
#else
import SystemPackage
#endif

/// Blocking file-system calls on a thread of their own, never on the cooperative pool: the
/// media folder may be a network volume that stalls.
struct FileThread: Sendable {
    private let thread = OwnerThread<Void>(name: "thumbnail-files")

    func run<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
        try await self.thread.run { _ in try body() }
    }

    /// Ends the thread once the queued work has run (the worker's service group does it last).
    func shutdown() { self.thread.shutdown() }
}

/// Runs ffmpeg as a subprocess (swift-subprocess) with a time limit, without blocking a thread.
/// Foundation's `Process` kept about 1.3 KB per run on Linux (2,000 runs of /bin/true: RSS
/// +1.9 MB after the first 500; swift-subprocess: flat), which showed as the thumbnail worker's
/// slowly growing memory in the 30-minute soak (docs/load/README.md).
struct FFmpeg: Sendable {
    var executable: String
    var timeout: Duration
    /// Output width in pixels (height keeps the aspect ratio, rounded to even).
    var width: Int
    var files: FileThread
    /// What of ffmpeg's error output is kept (it is summarised to its last lines anyway).
    static let errorLimit = 1 << 20

    enum Outcome: Sendable {
        case finished
        /// ffmpeg could not read or convert the input: the file is corrupt or not a supported format.
        case failed(reason: String)
    }

    /// Writes one representative frame of `input` (the `thumbnail` filter picks the most typical
    /// frame of the first ones; an image is its own frame), scaled to `width`, as JPEG to `output`.
    func thumbnail(input: String, output: String) async throws -> Outcome {
        let arguments = ["-nostdin", "-hide_banner", "-loglevel", "error", "-y",
                         "-i", input, "-map", "0:v:0",
                         "-vf", "thumbnail=30,scale=\(self.width):-2:flags=lanczos,format=yuvj420p",
                         "-frames:v", "1", "-q:v", "4", "-f", "image2", "-c:v", "mjpeg", output]
        var options = PlatformOptions()
        // Past the time limit: SIGTERM, 2 s to finish, then SIGKILL.
        options.teardownSequence = [.gracefulShutDown(allowedDurationToNextStep: .seconds(2))]
        let executable = self.executable
        let run: ExecutionRecord
        do {
            run = try await withThrowingTaskGroup(of: ExecutionRecord?.self) { group in
                group.addTask { [options] in
                    let result = try await Subprocess.run(.path(FilePath(executable)), arguments: Arguments(arguments),
                                                          platformOptions: options, input: .none, output: .discarded,
                                                          error: .string(limit: Self.errorLimit))
                    return ExecutionRecord(status: result.terminationStatus, errors: result.standardError)
                }
                group.addTask { [timeout = self.timeout] in
                    try await Task.sleep(for: timeout)
                    return nil
                }
                defer { group.cancelAll() }
                guard let first = try await group.next(), let record = first else {
                    throw TransientError(code: "ffmpeg_timeout", "ffmpeg took longer than \(self.timeout) on \(input)")
                }
                return record
            }
        } catch let error as SubprocessError {
            if error.code == .outputLimitExceeded {
                return .failed(reason: "ffmpeg wrote more than \(Self.errorLimit) bytes of errors")
            }
            throw TransientError(code: "ffmpeg_not_started", "cannot run \(self.executable): \(error)")
        }
        switch run.status {
        case .exited(0):
            return .finished
        case .exited(let code):
            return .failed(reason: Self.summary(run.errors, status: code))
        case .signaled(let signal):
            throw TransientError(code: "ffmpeg_killed", "ffmpeg was killed by signal \(signal)")
        }
    }

    /// How one run ended, and its error output.
    struct ExecutionRecord: Sendable {
        var status: TerminationStatus
        var errors: String
    }

    /// The last lines of ffmpeg's error output (the first usually repeat the file name).
    static func summary(_ stderr: String, status: Int32) -> String {
        let lines = stderr.split(separator: "\n").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
        let text = lines.suffix(3).joined(separator: "; ")
        return text.isEmpty ? "ffmpeg exited with status \(status)" : String(text.prefix(500))
    }
}
