import Base
import CNI

/// What both fuzz targets share: libFuzzer's driver (built with -sanitize=fuzzer -DFUZZING) and,
/// in a plain build, the replay of input files given as arguments.
public typealias FuzzCallback = @convention(c) (UnsafePointer<UInt8>?, Int) -> Int32

#if FUZZING
    @_silgen_name("LLVMFuzzerRunDriver")
    func LLVMFuzzerRunDriver(
        _ argc: UnsafeMutablePointer<Int32>, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>,
        _ cb: FuzzCallback
    ) -> Int32

    /// Hands the process to libFuzzer with `callback` as LLVMFuzzerTestOneInput.
    public func runFuzzer(_ argc: Int32, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?, _ callback: FuzzCallback) -> Int32 {
        var c = argc
        var v = argv
        return LLVMFuzzerRunDriver(&c, &v, callback)
    }
#endif

/// Runs `callback` on the content of every file named on the command line (a found crash stays a
/// regression check).
public func replayArguments(_ callback: FuzzCallback) {
    for path in CommandLine.arguments.dropFirst() {
        guard let bytes = try? System.readFile(path) else { continue }
        _ = bytes.withUnsafeBufferPointer { callback($0.baseAddress, $0.count) }
    }
}
