import Base
import CNI

/// The CNI error code of a failed plugin run, nil when it succeeded or printed no error object.
public func code(_ o: PluginOutcome) -> UInt? {
    guard o.exitCode != 0, let v = try? JSONValue.parse(o.stdout) else { return nil }
    return CNIError(json: v)?.code.rawValue
}

/// "msg | details" of a failed run's error object (its stdout otherwise), for assertions and logs.
public func msg(_ o: PluginOutcome) -> String {
    guard let v = try? JSONValue.parse(o.stdout), let e = CNIError(json: v) else { return o.stdout }
    return e.msg + " | " + e.details
}

/// A configuration with `prevResult` set to `result`.
public func withPrev(_ conf: String, _ result: String) -> String {
    var c = try! JSONValue.parse(conf).objectValue!
    c["prevResult"] = try! JSONValue.parse(result)
    return JSONValue.object(c).serialized()
}
