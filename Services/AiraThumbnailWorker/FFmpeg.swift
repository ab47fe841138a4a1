import AiraCore
import AiraMessaging
import Foundation
import Synchronization

/// Runs ffmpeg as a subprocess with a time limit, without blocking a thread: the exit arrives
/// through the termination handler; stderr goes to a file (no pipe to fill up and stall).
/// Blocking file-system calls (and fork/exec) on a thread of their own, never on the cooperative
/// pool: the media folder may be a network volume that stalls.
struct FileThread: Sendable {
    private let thread = OwnerThread<Void>(name: "thumbnail-files")

    func run<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
        try await self.thread.run { _ in try body() }
    }
}

struct FFmpeg: Sendable {
    var executable: String
    var timeout: Duration
    /// Output width in pixels (height keeps the aspect ratio, rounded to even).
    var width: Int
    var files: FileThread

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
        let errorPath = output + ".stderr"
        let exited = AsyncStream<Void>.makeStream()
        // Creating files and fork/exec block: on the file thread, not the cooperative pool.
        let (process, errorFile) = try await self.files.run { () throws -> (Process, FileHandle) in
            FileManager.default.createFile(atPath: errorPath, contents: nil)
            guard let errorFile = FileHandle(forWritingAtPath: errorPath) else {
                throw TransientError(code: "ffmpeg_io", "cannot create \(errorPath)")
            }
            let process = Process()
            process.executableURL = URL(fileURLWithPath: self.executable)
            process.arguments = arguments
            process.standardError = errorFile
            process.standardOutput = FileHandle.nullDevice
            process.standardInput = FileHandle.nullDevice
            process.terminationHandler = { _ in exited.continuation.finish() }
            do {
                try process.run()
            } catch {
                try? errorFile.close()
                try? FileManager.default.removeItem(atPath: errorPath)
                throw TransientError(code: "ffmpeg_not_started", "cannot start \(self.executable): \(error)")
            }
            return (process, errorFile)
        }
        let timedOut = Atomic<Bool>(false)
        let killer = Task { [timeout = self.timeout] in
            try await Task.sleep(for: timeout)
            timedOut.store(true, ordering: .relaxed)
            process.terminate()
            try await Task.sleep(for: .seconds(2))
            if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        }
        for await _ in exited.stream {}
        killer.cancel()
        let errorText = try await self.files.run { () -> String in
            try? errorFile.close()
            defer { try? FileManager.default.removeItem(atPath: errorPath) }
            return (try? String(contentsOfFile: errorPath, encoding: .utf8)) ?? ""
        }

        if timedOut.load(ordering: .relaxed) {
            throw TransientError(code: "ffmpeg_timeout", "ffmpeg took longer than \(self.timeout) on \(input)")
        }
        if process.terminationReason == .uncaughtSignal {
            throw TransientError(code: "ffmpeg_killed", "ffmpeg was killed by signal \(process.terminationStatus)")
        }
        guard process.terminationStatus == 0 else {
            return .failed(reason: Self.summary(errorText, status: process.terminationStatus))
        }
        return .finished
    }

    /// The last lines of ffmpeg's error output (the first usually repeat the file name).
    static func summary(_ stderr: String, status: Int32) -> String {
        let lines = stderr.split(separator: "\n").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
        let text = lines.suffix(3).joined(separator: "; ")
        return text.isEmpty ? "ffmpeg exited with status \(status)" : String(text.prefix(500))
    }
}
