import Base
#if canImport(Glibc)
    import Glibc
#endif

/// Delegation to another plugin (IPAM), as spec section 4 describes: the delegate is found on
/// CNI_PATH and run with the same environment (CNI_COMMAND set to the verb) and the same stdin.
public enum Delegate {
    /// Whether `path` is the running executable.
    static func isSelf(_ path: String) -> Bool {
        var a = stat()
        var b = stat()
        guard stat(path, &a) == 0, stat("/proc/self/exe", &b) == 0 else { return false }
        return a.st_dev == b.st_dev && a.st_ino == b.st_ino
    }

    /// The path of plugin `type` in the directories of `searchPath` (first match).
    /// `type` must be a plain file name: a config cannot make a plugin run an arbitrary path.
    public static func find(_ type: String, in searchPath: [String]) throws(CNIError) -> String {
        if type.isEmpty || type == "." || type == ".." || type.contains("/") || type.utf8.contains(0) {
            throw CNIError(
                .invalidNetworkConfig, "invalid plugin type \"\(type)\"", details: "must be a file name in CNI_PATH")
        }
        if searchPath.isEmpty {
            throw CNIError(
                .invalidEnvironment, "missing environment variable CNI_PATH",
                details: "needed to find the delegate plugin \"\(type)\"")
        }
        for dir in searchPath {
            let candidate = dir.hasSuffix("/") ? dir + type : dir + "/" + type
            if System.isExecutableFile(candidate) { return candidate }
        }
        throw CNIError(
            .delegateFailed, "failed to find plugin \"\(type)\" in CNI_PATH",
            details: "searched \(searchPath.joined(separator: ":"))")
    }

    /// Runs `type` for `command` and returns its stdout. A failing delegate's CNI error is thrown
    /// unchanged (same code, message and details); its stderr goes to the caller's stderr.
    public static func exec(
        _ type: String, _ command: CNICommand, _ ctx: PluginContext, stdin: [UInt8]? = nil
    ) throws(CNIError) -> [UInt8] {
        let path = try find(type, in: ctx.args.path)
        var env = ctx.environment
        env["CNI_COMMAND"] = command.rawValue
        // A delegate that is this very binary (same file as /proc/self/exe) and one of its plugins
        // (ctx.inProcess) runs in-process, with the same environment and stdin: the code an exec
        // would run, without the exec. Anything else on CNI_PATH is exec'ed.
        if let plugin = ctx.inProcess[type], isSelf(path) {
            let input = stdin ?? ctx.stdin
            let outcome = PluginMain.run(plugin, environment: env, readStdin: { input }, log: ctx.log, inProcess: ctx.inProcess)
            let bytes = Array(outcome.stdout.utf8)
            if outcome.exitCode == 0 { return bytes }
            if let parsed = try? JSONValue.parse(bytes), let e = CNIError(json: parsed) { throw e }
            throw CNIError(.delegateFailed, "delegate plugin \"\(type)\" \(command.rawValue) failed", details: outcome.stdout)
        }
        let out: ProcessOutput
        do {
            out = try Subprocess.run(path, environment: env, stdin: stdin ?? ctx.stdin)
        } catch {
            throw CNIError(.delegateFailed, "failed to run delegate plugin \"\(type)\"", details: error.description)
        }
        if !out.stderr.isEmpty { ctx.log(String(decoding: out.stderr, as: UTF8.self)) }
        if out.succeeded { return out.stdout }
        if let parsed = try? JSONValue.parse(out.stdout), let e = CNIError(json: parsed) { throw e }
        let tail = String(decoding: out.stderr.suffix(512), as: UTF8.self)
        throw CNIError(
            .delegateFailed, "delegate plugin \"\(type)\" \(command.rawValue) failed with \(out.termination)",
            details: tail.isEmpty ? "no error on its stdout" : tail)
    }

    /// IPAM ADD: the delegate's result, read in whatever version it printed.
    public static func add(_ type: String, _ ctx: PluginContext) throws(CNIError) -> CNIResult {
        let out = try exec(type, .add, ctx)
        let value: JSONValue
        do {
            value = try JSONValue.parse(out)
        } catch {
            throw CNIError(.decodingFailure, "failed to decode the result of delegate \"\(type)\"", details: error.description)
        }
        return try CNIResult(json: value, defaultVersion: ctx.config.cniVersion, path: "\(type) result")
    }

    /// IPAM DEL, CHECK, GC or STATUS (no output expected).
    public static func run(_ type: String, _ command: CNICommand, _ ctx: PluginContext) throws(CNIError) {
        _ = try exec(type, command, ctx)
    }
}
