#if canImport(Glibc)
    import Glibc
#endif
import CLinux

/// How a child process ended and what it printed.
public struct ProcessOutput: Sendable {
    /// The exit status, or nil when a signal ended the process.
    public var exitStatus: Int32?
    /// The signal that ended the process, if any.
    public var signal: Int32?
    public var stdout: [UInt8]
    public var stderr: [UInt8]

    public var succeeded: Bool { exitStatus == 0 }

    /// "exit status 2" or "killed by signal 9".
    public var termination: String {
        if let s = exitStatus { return "exit status \(s)" }
        return "killed by signal \(signal ?? 0)"
    }
}

/// Runs a program with the given environment and standard input and collects both outputs,
/// without a shell and without deadlocking on large inputs or outputs (one poll loop).
public enum Subprocess {
    /// Runs `path` with `arguments` (argv[0] is `path`). Retries while exec fails with ETXTBSY
    /// (the binary is still being written, e.g. during an upgrade), as the Go library does.
    public static func run(
        _ path: String, arguments: [String] = [], environment: [String: String], stdin: [UInt8] = [],
        argv0: String? = nil
    ) throws(SystemError) -> ProcessOutput {
        var attempt = 0
        while true {
            do {
                return try runOnce(path, arguments: arguments, environment: environment, stdin: stdin, argv0: argv0)
            } catch let e where e.errno == ETXTBSY && attempt < 5 {
                attempt += 1
                System.sleep(milliseconds: 200 * attempt)
            }
        }
    }

    private static func runOnce(
        _ path: String, arguments: [String], environment: [String: String], stdin input: [UInt8], argv0: String?
    ) throws(SystemError) -> ProcessOutput {
        let pipes = try Pipes()
        let pid: pid_t
        do {
            pid = try spawn(path, argv: [argv0 ?? path] + arguments, environment: environment, pipes)
        } catch {
            close(pipes.stdin[1]); close(pipes.stdout[0]); close(pipes.stderr[0])
            throw error
        }
        var output = exchange(pipes, input: input)
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        if status & 0x7F == 0 {
            output.exitStatus = (status >> 8) & 0xFF
        } else {
            output.signal = status & 0x7F
        }
        return output
    }

    /// The child's stdin, stdout and stderr pipes (close-on-exec; the child gets its ends by dup2).
    struct Pipes {
        var stdin: [Int32] = [-1, -1]
        var stdout: [Int32] = [-1, -1]
        var stderr: [Int32] = [-1, -1]

        init() throws(SystemError) {
            guard clinux_pipe2(&stdin, O_CLOEXEC) == 0 else { throw SystemError("pipe", errno: errno) }
            guard clinux_pipe2(&stdout, O_CLOEXEC) == 0 else {
                let e = errno
                close(stdin[0]); close(stdin[1])
                throw SystemError("pipe", errno: e)
            }
            guard clinux_pipe2(&stderr, O_CLOEXEC) == 0 else {
                let e = errno
                for fd in stdin + stdout { close(fd) }
                throw SystemError("pipe", errno: e)
            }
        }
    }

    /// Starts the child on the pipes; our copies of its ends are closed either way. The child
    /// starts with default signal handling and an empty mask, whatever ours is (a caller that
    /// ignores SIGPIPE must not pass that on).
    private static func spawn(_ path: String, argv arguments: [String], environment: [String: String], _ pipes: Pipes) throws(SystemError)
        -> pid_t
    {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_adddup2(&actions, pipes.stdin[0], 0)
        posix_spawn_file_actions_adddup2(&actions, pipes.stdout[1], 1)
        posix_spawn_file_actions_adddup2(&actions, pipes.stderr[1], 2)
        var attr = posix_spawnattr_t()
        posix_spawnattr_init(&attr)
        defer { posix_spawnattr_destroy(&attr) }
        var defaults = sigset_t()
        sigemptyset(&defaults)
        sigaddset(&defaults, SIGPIPE)
        sigaddset(&defaults, SIGINT)
        sigaddset(&defaults, SIGTERM)
        var empty = sigset_t()
        sigemptyset(&empty)
        posix_spawnattr_setsigdefault(&attr, &defaults)
        posix_spawnattr_setsigmask(&attr, &empty)
        posix_spawnattr_setflags(&attr, Int16(POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK))

        let argv = arguments.map { strdup($0) } + [nil]
        let envp = environment.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer {
            for p in argv { free(p) }
            for p in envp { free(p) }
        }
        var pid: pid_t = 0
        let rc = posix_spawn(&pid, path, &actions, &attr, argv, envp)
        close(pipes.stdin[0]); close(pipes.stdout[1]); close(pipes.stderr[1])
        if rc != 0 { throw SystemError("exec \(path)", errno: rc) }
        return pid
    }

    /// Writes `input` to the child's stdin while reading its stdout and stderr until both close.
    ///
    /// A child that exits without reading all of its stdin makes our write fail with EPIPE and
    /// raise SIGPIPE, whose default action would kill this process without a word (no CNI error
    /// on stdout). The signal goes to the writing thread: it is blocked here, and the one a failed
    /// write left pending is taken before unblocking. The process-wide disposition stays.
    private static func exchange(_ pipes: Pipes, input: [UInt8]) -> ProcessOutput {
        var pipeSignal = sigset_t()
        sigemptyset(&pipeSignal)
        sigaddset(&pipeSignal, SIGPIPE)
        var savedMask = sigset_t()
        var pending = sigset_t()
        sigpending(&pending)
        let alreadyPending = sigismember(&pending, SIGPIPE) == 1
        pthread_sigmask(SIG_BLOCK, &pipeSignal, &savedMask)
        var brokenPipe = false
        defer {
            if brokenPipe && !alreadyPending {
                var now = timespec(tv_sec: 0, tv_nsec: 0)
                while sigtimedwait(&pipeSignal, nil, &now) < 0 && errno == EINTR {}
            }
            pthread_sigmask(SIG_SETMASK, &savedMask, nil)
        }

        var output = ProcessOutput(exitStatus: nil, signal: nil, stdout: [], stderr: [])
        var writeFD = pipes.stdin[1]
        var written = 0
        if input.isEmpty {
            close(writeFD)
            writeFD = -1
        } else {
            _ = fcntl(writeFD, F_SETFL, fcntl(writeFD, F_GETFL) | O_NONBLOCK)
        }
        var readFDs = [pipes.stdout[0], pipes.stderr[0]]
        var buf = [UInt8](repeating: 0, count: 65536)
        while !readFDs.isEmpty || writeFD >= 0 {
            var fds = readFDs.map { pollfd(fd: $0, events: Int16(POLLIN), revents: 0) }
            if writeFD >= 0 { fds.append(pollfd(fd: writeFD, events: Int16(POLLOUT), revents: 0)) }
            let n = poll(&fds, nfds_t(fds.count), -1)
            if n < 0 {
                if errno == EINTR { continue }
                break
            }
            for p in fds where p.revents != 0 {
                if p.fd == writeFD {
                    let w = input.withUnsafeBytes { write(writeFD, $0.baseAddress! + written, $0.count - written) }
                    if w > 0 { written += w }
                    if w < 0 && errno == EPIPE { brokenPipe = true }
                    if w < 0 && errno != EAGAIN && errno != EINTR || written == input.count {
                        close(writeFD)  // EPIPE: the child does not read all of its input
                        writeFD = -1
                    }
                    continue
                }
                let r = buf.withUnsafeMutableBytes { read(p.fd, $0.baseAddress, $0.count) }
                if r > 0 {
                    if p.fd == pipes.stdout[0] {
                        output.stdout.append(contentsOf: buf[0..<r])
                    } else {
                        output.stderr.append(contentsOf: buf[0..<r])
                    }
                } else if r == 0 || (errno != EINTR && errno != EAGAIN) {
                    close(p.fd)
                    readFDs.removeAll { $0 == p.fd }
                }
            }
        }
        return output
    }
}
