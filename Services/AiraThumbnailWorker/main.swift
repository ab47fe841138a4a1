// aira-thumbnail-worker: consumes `thumbnail.generate`, makes a JPEG thumbnail of the uploaded
// video or image with ffmpeg, and marks the video `ready` or `failed`. See docs/workers.md.
import AiraServiceKit

await ServiceHost.main(ThumbnailWorkerConfiguration.self) { try await buildThumbnailWorker($0, logger: $1, registry: $2) }
