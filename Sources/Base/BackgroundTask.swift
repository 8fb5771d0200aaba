#if canImport(Glibc)
    import Glibc
#endif

/// Work started on its own thread now and joined later: for independent waits in one command
/// (an IPAM exec beside creating the veth, a firewall transaction beside deleting a link), so that
/// the kernel's grace periods and the child process overlap instead of adding up.
///
/// The thread starts in the creating thread's network namespace. ``value()`` must be called once
/// (it joins the thread); a task is not shared between threads.
public final class BackgroundTask<T> {
    private let box = Box()
    private var thread = pthread_t()
    private var joined = false
    private var started = false

    private final class Box: @unchecked Sendable {
        var result: Result<T, any Error>?
    }

    /// Starts `body` on a thread of its own (or runs it now when no thread can be had).
    public init(_ body: @escaping () throws -> T) {
        let box = self.box
        let job = PThreadJob { box.result = Result { try body() } }
        let ctx = Unmanaged.passRetained(job).toOpaque()
        if pthread_create(
            &thread, nil,
            { raw in
                Unmanaged<PThreadJob>.fromOpaque(raw!).takeRetainedValue().work()
                return nil
            }, ctx) == 0
        {
            started = true
        } else {
            Unmanaged<PThreadJob>.fromOpaque(ctx).release()
            job.work()  // no thread to be had: do it here, now
        }
    }

    /// Waits for the work and returns its result (or rethrows its error).
    public func value() throws -> T {
        if started && !joined {
            pthread_join(thread, nil)
            joined = true
        }
        return try box.result!.get()
    }

    deinit {
        if started && !joined { pthread_join(thread, nil) }
    }
}

private final class PThreadJob {
    let work: () -> Void
    init(_ work: @escaping () -> Void) { self.work = work }
}

/// A thread that runs `body` to its end (or for the life of the process) and is never joined:
/// a daemon's waits that must not hold up its event loop (a stop signal, kernel events).
public enum DetachedThread {
    /// Starts `body` on a new detached thread; false when no thread could be made.
    @discardableResult
    public static func start(_ body: @escaping () -> Void) -> Bool {
        let ctx = Unmanaged.passRetained(PThreadJob(body)).toOpaque()
        var thread = pthread_t()
        let made =
            pthread_create(
                &thread, nil,
                { raw in
                    Unmanaged<PThreadJob>.fromOpaque(raw!).takeRetainedValue().work()
                    return nil
                }, ctx) == 0
        if made {
            pthread_detach(thread)
        } else {
            Unmanaged<PThreadJob>.fromOpaque(ctx).release()
        }
        return made
    }
}
