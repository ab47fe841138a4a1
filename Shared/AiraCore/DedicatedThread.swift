import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Starts an OS thread for work that blocks (C connection I/O). The name (at most 15
/// characters on Linux) shows in `top -H` and debuggers; it is set from inside the thread
/// because Linux threads otherwise keep the name of the thread that created them.
package func startDedicatedThread(name: String, _ body: @escaping @Sendable () -> Void) {
    let thread = Thread {
        #if os(Linux)
        _ = setThreadName(pthread_self(), String(name.prefix(15)))
        #endif
        body()
    }
    thread.name = name
    thread.stackSize = 1 << 20
    thread.start()
}

#if os(Linux)
/// glibc's pthread_setname_np, which Swift's Glibc module hides behind _GNU_SOURCE.
@_silgen_name("pthread_setname_np")
private func setThreadName(_ thread: pthread_t, _ name: UnsafePointer<CChar>) -> Int32
#endif
