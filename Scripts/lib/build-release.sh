# The shipped build: release, Swift stdlib linked statically, and, for start-up time, libstdc++ and
# libgcc linked statically too (the dynamic loader spent 60% of a plugin's start resolving
# libstdc++.so's symbols), relative relocations packed (lld, DT_RELR), and no RUNPATH (every exec
# otherwise probes a dozen directories for libc and libm). libmnl/libnftnl stay shared.
# Sets RELEASE_BIN to the directory holding cni-plugins and cnictl.
build_release() {
    local root="$PWD/.build-release" cxx
    # A guest of Scripts/kernel-vm-test --script: the host's build, read-only, as it is.
    if [ -n "${SWIFT_CNI_PREBUILT:-}" ]; then
        RELEASE_BIN="$root/release"
        [ -x "$RELEASE_BIN/cni-plugins" ] || { echo "release build: none prebuilt at $RELEASE_BIN" >&2; return 1; }
        return 0
    fi
    local flags=(-c release --static-swift-stdlib --scratch-path "$root"
        -Xswiftc -use-ld=lld -Xlinker -z -Xlinker pack-relative-relocs
        -Xswiftc -Xclang-linker -Xswiftc -static-libgcc)
    cxx=$(gcc -print-file-name=libstdc++.a 2>/dev/null)
    # Without it the link would silently fall back to libstdc++.so (a slower start): fail instead.
    [ -f "$cxx" ] || { echo "release build: no libstdc++.a (gcc/g++ missing: Scripts/lib/deps.sh installs them)" >&2; return 1; }
    # -lstdc++ (which the Swift driver always passes) then finds this script, not the .so.
    mkdir -p "$root/static-cxx"
    echo "INPUT($cxx)" > "$root/static-cxx/libstdc++.so"
    flags+=(-Xlinker "-L$root/static-cxx")
    swift build "${flags[@]}" 2>&1 | grep -aEv '^\[[0-9]+/[0-9]+\]|^Building|^Compiling' || true
    RELEASE_BIN=$(swift build "${flags[@]}" --show-bin-path)
    [ -x "$RELEASE_BIN/cni-plugins" ] || { echo "release build failed" >&2; return 1; }
    patchelf --remove-rpath "$RELEASE_BIN/cni-plugins" || { echo "release build: patchelf failed" >&2; return 1; }
    if readelf -d "$RELEASE_BIN/cni-plugins" | grep -q 'libstdc++'; then
        echo "release build: cni-plugins links libstdc++.so, not the static library" >&2
        return 1
    fi
}
