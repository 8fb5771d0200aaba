import Base
/// A CNI command (`CNI_COMMAND`).
public enum CNICommand: String, CaseIterable, Sendable {
    case add = "ADD"
    case del = "DEL"
    case check = "CHECK"
    case gc = "GC"
    case status = "STATUS"
    case version = "VERSION"

    /// The environment variables that must be set (non-empty) for this command.
    ///
    /// As the spec, not stricter: DEL works without CNI_NETNS (the netns may be gone), STATUS
    /// without CNI_PATH. A plugin that needs CNI_PATH to delegate reports it missing then.
    public var requiredVariables: [String] {
        switch self {
        case .add, .check: return ["CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME"]
        case .del: return ["CNI_CONTAINERID", "CNI_IFNAME"]
        case .gc: return ["CNI_PATH"]
        case .status, .version: return []
        }
    }

    /// The lowest spec version in which the command exists.
    public var minimumVersion: CNIVersion {
        switch self {
        case .add, .del, .version: return .v0_1_0
        case .check: return .v0_4_0
        case .gc, .status: return .v1_1_0
        }
    }
}

/// The parameters of one plugin invocation, read from the environment and validated.
public struct CommandArgs: Sendable {
    public var command: CNICommand
    /// `CNI_CONTAINERID`; empty for GC, STATUS and VERSION.
    public var containerID: String
    /// `CNI_NETNS`; may be empty on DEL (the namespace may be gone).
    public var netns: String
    /// `CNI_IFNAME`; empty for GC, STATUS and VERSION.
    public var ifName: String
    /// `CNI_ARGS` as ordered key/value pairs.
    public var cniArgs: [(key: String, value: String)]
    /// `CNI_PATH` split on `:` (empty elements dropped).
    public var path: [String]

    /// The arguments as given (tests and in-process delegation); ``parse(_:)`` validates the environment.
    public init(
        command: CNICommand, containerID: String = "", netns: String = "", ifName: String = "",
        cniArgs: [(key: String, value: String)] = [], path: [String] = []
    ) {
        self.command = command
        self.containerID = containerID
        self.netns = netns
        self.ifName = ifName
        self.cniArgs = cniArgs
        self.path = path
    }

    /// The value of a `CNI_ARGS` key (the last one when repeated).
    public func cniArg(_ key: String) -> String? {
        cniArgs.last(where: { $0.key == key })?.value
    }

    /// Whether `CNI_ARGS` has `IgnoreUnknown=1` (or `true`).
    public var ignoreUnknownArgs: Bool {
        guard let v = cniArg("IgnoreUnknown") else { return false }
        return v == "1" || v.lowercased() == "true"
    }

    /// Rejects `CNI_ARGS` keys the plugin does not know (code 4), unless `IgnoreUnknown` is set, as
    /// the reference plugins do. The keys kubelet and podman always send are accepted, and so are
    /// the convention keys a main plugin reads and passes on unchanged to its IPAM (`IP`, `MAC`).
    public func checkCNIArgs(known: Set<String>) throws(CNIError) {
        if ignoreUnknownArgs { return }
        let always: Set<String> = [
            "IgnoreUnknown", "K8S_POD_NAMESPACE", "K8S_POD_NAME", "K8S_POD_INFRA_CONTAINER_ID", "K8S_POD_UID",
            "IP", "MAC",
        ]
        for (k, _) in cniArgs where !known.contains(k) && !always.contains(k) {
            throw CNIError(
                .invalidEnvironment, "unknown key \"\(k)\" in CNI_ARGS",
                details: "known keys: \(known.sorted().joined(separator: ", ")); add IgnoreUnknown=1 to ignore others")
        }
    }

    /// Reads and validates the CNI variables of `environment` (code 4 naming the variable).
    public static func parse(_ environment: [String: String]) throws(CNIError) -> CommandArgs {
        guard let cmdText = environment["CNI_COMMAND"], !cmdText.isEmpty else {
            throw CNIError(
                .invalidEnvironment, "missing environment variable CNI_COMMAND",
                details: "expected one of ADD, DEL, CHECK, GC, STATUS, VERSION")
        }
        guard let command = CNICommand(rawValue: cmdText) else {
            throw CNIError(
                .invalidEnvironment, "unknown CNI_COMMAND \"\(cmdText)\"",
                details: "expected one of ADD, DEL, CHECK, GC, STATUS, VERSION")
        }
        let missing = command.requiredVariables.filter { (environment[$0] ?? "").isEmpty }
        if !missing.isEmpty {
            let noun = missing.count == 1 ? "variable" : "variables"
            throw CNIError(
                .invalidEnvironment, "missing environment \(noun) \(missing.joined(separator: ", "))",
                details: "\(command.rawValue) requires \(command.requiredVariables.joined(separator: ", "))")
        }
        var args = CommandArgs(command: command)
        if command != .version {
            args.containerID = environment["CNI_CONTAINERID"] ?? ""
            args.netns = environment["CNI_NETNS"] ?? ""
            args.ifName = environment["CNI_IFNAME"] ?? ""
        }
        if !args.containerID.isEmpty { try validateContainerID(args.containerID) }
        if !args.ifName.isEmpty { try validateInterfaceName(args.ifName, variable: "CNI_IFNAME") }
        args.path = (environment["CNI_PATH"] ?? "").split(separator: ":").map(String.init)
        args.cniArgs = try parseCNIArgs(environment["CNI_ARGS"] ?? "")
        return args
    }

    /// `^[a-zA-Z0-9][a-zA-Z0-9_.\-]*$`
    public static func validateContainerID(_ id: String) throws(CNIError) {
        if !isValidIdentifier(id) {
            throw CNIError(
                .invalidEnvironment, "invalid CNI_CONTAINERID \"\(id)\"",
                details: "must match ^[a-zA-Z0-9][a-zA-Z0-9_.\\-]*$")
        }
    }

    /// Whether `s` matches `^[a-zA-Z0-9][a-zA-Z0-9_.\-]*$` (container IDs and network names).
    public static func isValidIdentifier(_ s: String) -> Bool {
        var first = true
        for c in s.utf8 {
            let alnum = (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x5A) || (c >= 0x61 && c <= 0x7A)
            if first {
                guard alnum else { return false }
                first = false
            } else if !(alnum || c == UInt8(ascii: "_") || c == UInt8(ascii: ".") || c == UInt8(ascii: "-")) {
                return false
            }
        }
        return !first
    }

    /// A Linux interface name: 1-15 bytes, not `.` or `..`, no `/`, `:` or whitespace.
    public static func validateInterfaceName(_ name: String, variable: String) throws(CNIError) {
        func bad(_ why: String) -> CNIError {
            CNIError(.invalidEnvironment, "invalid \(variable) \"\(name)\"", details: why)
        }
        let n = name.utf8.count
        if n == 0 { throw bad("must not be empty") }
        if n > 15 { throw bad("must be at most 15 bytes, is \(n)") }
        if name == "." || name == ".." { throw bad("must not be \".\" or \"..\"") }
        for c in name.utf8 {
            if c == UInt8(ascii: "/") || c == UInt8(ascii: ":") || c == 0x20 || (c >= 0x09 && c <= 0x0D) || c == 0 {
                throw bad("must not contain '/', ':' or whitespace")
            }
        }
    }

    /// `K=V;K2=V2`. Empty segments are skipped; a segment without `=` or with an empty key is code 4.
    public static func parseCNIArgs(_ text: String) throws(CNIError) -> [(key: String, value: String)] {
        var out: [(key: String, value: String)] = []
        for part in text.split(separator: ";", omittingEmptySubsequences: true) {
            guard let eq = part.firstIndex(of: "="), eq != part.startIndex else {
                throw CNIError(
                    .invalidEnvironment, "invalid CNI_ARGS \"\(text)\"",
                    details: "\"\(part)\" is not a KEY=VALUE pair")
            }
            out.append((String(part[..<eq]), String(part[part.index(after: eq)...])))
        }
        return out
    }
}
