import AiraMessaging
import Foundation
import Synchronization

/// Runs ffmpeg as a subprocess with a time limit, without blocking a thread: the exit arrives
/// through the termination handler; stderr goes to a file (no pipe to fill up and stall).
struct FFmpeg: Sendable {
    var executable: String
    var timeout: Duration
    /// Output width in pixels (height keeps the aspect ratio, rounded to even).
    var width: Int

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
        let process = Process()
        process.executableURL = URL(fileURLWithPath: self.executable)
        process.arguments = arguments
        let errorPath = output + ".stderr"
        FileManager.default.createFile(atPath: errorPath, contents: nil)
        guard let errorFile = FileHandle(forWritingAtPath: errorPath) else {
            throw TransientError(code: "ffmpeg_io", "cannot create \(errorPath)")
        }
        defer {
            try? errorFile.close()
            try? FileManager.default.removeItem(atPath: errorPath)
        }
        process.standardError = errorFile
        process.standardOutput = FileHandle.nullDevice
        process.standardInput = FileHandle.nullDevice

        let exited = AsyncStream<Void>.makeStream()
        process.terminationHandler = { _ in exited.continuation.finish() }
        do {
            try process.run()
        } catch {
            throw TransientError(code: "ffmpeg_not_started", "cannot start \(self.executable): \(error)")
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

        if timedOut.load(ordering: .relaxed) {
            throw TransientError(code: "ffmpeg_timeout", "ffmpeg took longer than \(self.timeout) on \(input)")
        }
        if process.terminationReason == .uncaughtSignal {
            throw TransientError(code: "ffmpeg_killed", "ffmpeg was killed by signal \(process.terminationStatus)")
        }
        guard process.terminationStatus == 0 else {
            let text = (try? String(contentsOfFile: errorPath, encoding: .utf8)) ?? ""
            return .failed(reason: Self.summary(text, status: process.terminationStatus))
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
