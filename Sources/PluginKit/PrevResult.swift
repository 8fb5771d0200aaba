import CNI

extension PluginContext {
    /// prevResult, which a chained plugin's ADD works on: code 7 saying so when the runtime passed
    /// none (the plugin was not in a conflist after a main plugin).
    public func chainedPrevResult(_ plugin: String) throws(CNIError) -> CNIResult {
        guard let prev = config.prevResult else {
            throw CNIError(
                .invalidNetworkConfig, "\(plugin) must be called as a chained plugin",
                details: "it needs prevResult, the result of the plugin before it in the conflist")
        }
        return prev
    }

    /// prevResult, which CHECK compares the attachment with: code 7 when the runtime passed none.
    public func checkedPrevResult(_ plugin: String) throws(CNIError) -> CNIResult {
        guard let prev = config.prevResult else {
            throw CNIError(.invalidNetworkConfig, "\(plugin) CHECK needs prevResult", details: "the runtime passes the ADD result")
        }
        return prev
    }
}
