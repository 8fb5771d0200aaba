#!/usr/bin/env python3
"""The external tools the project's scripts and tests call, against Scripts/lib/tools.tsv.

  tools.py packages [TSV]   the Debian packages a manifest names (default tools.tsv)
  tools.py check [TSV]      every tool of the manifest is there; a missing one is named with its package
  tools.py scan [ROOT]      every command, absolute path and Python module the scripts, tests and
                      sources use is in tools.tsv (or comes with an Essential package, or is
                      the project's own); anything else is reported with the file and line

tools.tsv: one tool a line, `<what> <package> [<comment>]`, where <what> is a command name,
an absolute path, `py:<module>` (a Python module) or `pc:<name>` (a pkg-config library).
"""
import importlib.util
import os
import re
import shutil
import subprocess
import sys

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
MANIFEST = os.path.join(ROOT, "Scripts", "lib", "tools.tsv")
MANIFESTS = [MANIFEST, os.path.join(ROOT, "Scripts", "lib", "tools-vm.tsv")]


def manifest(path=MANIFEST):
    entries = {}
    with open(path) as f:
        for n, line in enumerate(f, 1):
            line = line.split("#", 1)[0].strip() if not line.lstrip().startswith("/") else line.strip()
            if not line or line.startswith("#"):
                continue
            parts = line.split()
            if len(parts) < 2:
                sys.exit(f"{os.path.basename(path)}:{n}: '{line}' names no package")
            entries[parts[0]] = parts[1]
    return entries


def present(what):
    if what.startswith("py:"):
        return importlib.util.find_spec(what[3:]) is not None
    if what.startswith("pc:"):
        return subprocess.run(["pkg-config", "--exists", what[3:]]).returncode == 0
    if what.startswith("/"):
        return os.path.exists(what)
    return shutil.which(what) is not None


def check(path):
    missing = [(w, p) for w, p in manifest(path).items() if not present(w)]
    for w, p in missing:
        print(f"deps: '{w}' is missing after the install: Debian package {p} ({os.path.relpath(path, ROOT)})", file=sys.stderr)
    return 1 if missing else 0


# ---- scan -------------------------------------------------------------------------------------

BASH_WORDS = set(
    """alias bg bind break builtin caller case cd command compgen complete continue declare dirs disown
    do done echo elif else enable esac eval exec exit export false fc fg fi for function getopts hash help
    history if in jobs kill let local logout mapfile popd printf pushd pwd read readarray readonly return
    select set shift shopt source suspend test then time times trap true type typeset ulimit umask unalias
    unset until wait while . : [ [[ ]] { } ! coproc""".split()
)
# Words that run the command after their own arguments.
WRAPPERS = {"exec": 0, "command": 0, "nohup": 0, "setsid": 0, "builtin": 0, "time": 0, "tb_in": 1, "tb_bg": 1,
            "taskset": 2, "stdbuf": 0, "xargs": 0, "nice": 0, "chroot": 1, "flock": 1}
IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_.+-]*$")
ABS_PATH = re.compile(r"(?<![\w$}/.-])(/(?:usr/)?(?:s?bin|lib/cni|libexec)/[A-Za-z0-9_.+-]+)")
SPLIT = re.compile(r"\$\(|`|&&|\|\||[;|()]|\b(?:then|do|else|if|elif|while|until)\s")


def functions(texts):
    names = set()
    for t in texts:
        names |= set(re.findall(r"^\s*(?:function\s+)?([A-Za-z_][A-Za-z0-9_-]*)\s*\(\)", t, re.M))
    return names


def strip_comment(line):
    out, quote = [], None
    for i, c in enumerate(line):
        if quote:
            if c == quote:
                quote = None
        elif c in "'\"":
            quote = c
        elif c == "#" and (i == 0 or line[i - 1] in " \t;"):
            break
        out.append(c)
    return "".join(out)


def scrub(line):
    """The line with quoted text blanked: what a command substitution inside double quotes runs
    is kept (as its own segment), arithmetic and parameter expansions go. Also returns, for a
    quote left open at the end of the line, (its character, the text before it)."""
    out, i, n = [], 0, len(line)
    opened = None

    def substitution(j):  # line[j:] starts after "$(": returns (content, index after the ")")
        depth, k = 1, j
        while k < n and depth:
            depth += {"(": 1, ")": -1}.get(line[k], 0)
            k += 1
        return line[j:k - 1], k

    while i < n:
        c = line[i]
        if line.startswith("$((", i) or line.startswith("((", i):
            k = line.find("))", i)
            i = n if k < 0 else k + 2
            out.append(" _ ")
        elif line.startswith("${", i):
            k = line.find("}", i)
            i = n if k < 0 else k + 1
            out.append("_")
        elif c == "'":
            k = line.find("'", i + 1)
            if k < 0:
                opened = ("'", line[:i])
            i = n if k < 0 else k + 1
            out.append("_")
        elif c == '"':
            start = i
            i += 1
            while i < n and line[i] != '"':
                if line[i] == "\\":
                    i += 2
                elif line.startswith("$(", i) and not line.startswith("$((", i):
                    body, i = substitution(i + 2)
                    out.append(" ; " + scrub(body)[0] + " ; ")
                else:
                    i += 1
            if i >= n:
                opened = ('"', line[:start])
            i += 1
            out.append("_")
        else:
            out.append(c)
            i += 1
    return "".join(out), opened


def command_words(segment):
    """The command a shell segment runs (after assignments and wrappers), and the ones it wraps."""
    toks = segment.replace("{", " ").replace("}", " ").split()
    words = []
    while toks:
        while toks and re.match(r"^[A-Za-z_][A-Za-z0-9_]*(\[[^]]*\])?\+?=", toks[0]):
            toks.pop(0)
        if not toks:
            break
        w = toks.pop(0).strip("\"'")
        if w == "!":
            continue
        words.append(w)
        if w in WRAPPERS:
            while toks and toks[0].startswith("-"):
                toks.pop(0)
            del toks[: WRAPPERS[w]]
        elif w == "env":
            while toks and (toks[0].startswith("-") or "=" in toks[0]):
                toks.pop(0)
        elif w in ("timeout", "nsenter", "unshare"):
            while toks and toks[0].startswith("-"):
                if toks.pop(0) == "--propagation" and toks:
                    toks.pop(0)
            if w == "timeout" and toks:
                toks.pop(0)
        elif w == "ip" and len(toks) >= 3 and toks[0] == "netns" and toks[1] == "exec":
            del toks[:3]
        else:
            break
    return words


def scan_shell(path, text, funcs, found, modules):
    heredoc, heredoc_python, cont = None, False, None

    def shell_line(n, line):
        """Scans one line of shell; returns what a quote it leaves open holds: (quote, mode)."""
        nonlocal heredoc, heredoc_python
        line = strip_comment(line)
        m = re.search(r"<<-?\s*['\"]?([A-Za-z_]+)['\"]?", line)
        if m:
            heredoc, heredoc_python = m.group(1), "python3" in line
        if "python3 -c" in line:
            for x in re.findall(r"\bimport\s+([\w, ]+)", line):
                for mod in x.split(","):
                    if mod.strip():
                        modules.setdefault(mod.strip().split(".")[0], f"{path}:{n}")
        for p in ABS_PATH.findall(line):
            found.setdefault(p, f"{path}:{n}")
        scrubbed, opened = scrub(line)
        scrubbed = re.sub(r"(^|;;)\s*[^()\s]+\)", " ", scrubbed)  # case arms' patterns
        scrubbed = re.sub(r"\b[A-Za-z_][A-Za-z0-9_]*\+?=\([^)]*\)", " ", scrubbed)  # array assignments
        for seg in SPLIT.split(scrubbed):
            for w in command_words(seg):
                if not IDENT.match(w) or w in BASH_WORDS or w in funcs or not w.strip("_"):
                    continue
                found.setdefault(w, f"{path}:{n}")
        if not opened:
            return None
        before = opened[1].rstrip()
        mode = "shell" if re.search(r"\b(bash|sh) -c$", before) else "python" if before.endswith("python3 -c") else "skip"
        return (opened[0], mode)

    for n, raw in enumerate(text.split("\n"), 1):
        if heredoc:
            if raw.strip() == heredoc:
                heredoc = None
            elif heredoc_python:
                scan_python_line(path, n, raw, modules)
            continue
        if cont:  # inside a quoted string opened on an earlier line
            quote, mode = cont
            k = raw.find(quote)
            body = raw if k < 0 else raw[:k]
            if mode == "shell":
                shell_line(n, body)
            elif mode == "python":
                scan_python_line(path, n, body, modules)
            if k < 0:
                continue
            cont, raw = None, "_" + raw[k + 1:]
        cont = shell_line(n, raw)


def scan_python_line(path, n, line, modules):
    m = re.match(r"^\s*(?:import\s+([\w., ]+)|from\s+([\w.]+)\s+import)", line)
    if m:
        for x in (m.group(1) or m.group(2)).split(","):
            if x.strip():
                modules.setdefault(x.strip().split()[0].split(".")[0], f"{path}:{n}")


def scan_python(path, text, found, modules):
    for n, line in enumerate(text.split("\n"), 1):
        scan_python_line(path, n, line, modules)
        for w in re.findall(r"(?:subprocess\.\w+|Popen|run|check_output)\(\s*\[\s*\"([a-z][a-z0-9_.+-]*)\"", line):
            found.setdefault(w, f"{path}:{n}")
        for p in ABS_PATH.findall(line):
            found.setdefault(p, f"{path}:{n}")


def scan_swift(path, text, found):
    for n, line in enumerate(text.split("\n"), 1):
        for w in re.findall(r"\bsh\(\s*\[?\s*\"([a-z][a-z0-9_.+-]*)\"", line):
            found.setdefault(w, f"{path}:{n}")
        for w in re.findall(r"(?<!\+ )\"(/(?:usr/)?(?:s?bin|lib/cni|libexec)/[A-Za-z0-9_.+-]+)\"", line):
            found.setdefault(w, f"{path}:{n}")


def package_of(path):
    real = os.path.realpath(path)
    for p in dict.fromkeys([path, real, real.replace("/usr/", "/", 1) if real.startswith("/usr/") else real]):
        r = subprocess.run(["dpkg-query", "-S", p], capture_output=True, text=True)
        owners = [l for l in r.stdout.splitlines() if not l.startswith("diversion by")]
        if r.returncode == 0 and owners:
            return owners[0].split(":")[0].split(",")[0].strip()
    return None


def essential(pkg):
    r = subprocess.run(["dpkg-query", "-W", "-f=${Essential} ${Priority}", pkg], capture_output=True, text=True)
    return r.stdout.split()[:1] == ["yes"]


def scan(root=ROOT):
    global ROOT, MANIFEST, MANIFESTS
    ROOT = root
    MANIFEST = os.path.join(ROOT, "Scripts", "lib", "tools.tsv")
    MANIFESTS = [m for m in (MANIFEST, os.path.join(ROOT, "Scripts", "lib", "tools-vm.tsv")) if os.path.exists(m)]
    texts = {}
    for d in ("Scripts", "Tests", "Sources"):
        for base, _, files in os.walk(os.path.join(ROOT, d)):
            for f in files:
                p = os.path.join(base, f)
                rel = os.path.relpath(p, ROOT)
                try:
                    with open(p, encoding="utf-8") as fh:
                        head = fh.readline()
                        texts[rel] = head + fh.read()
                except (UnicodeDecodeError, OSError):
                    continue
    shell = {p: t for p, t in texts.items() if p.startswith("Scripts") and (p.endswith(".sh") or t.startswith("#!/usr/bin/env bash") or t.startswith("#!/bin/bash"))}
    funcs = functions(shell.values())
    found, modules = {}, {}
    for p, t in shell.items():
        scan_shell(p, t, funcs, found, modules)
    for p, t in texts.items():
        if p.endswith(".py") or (p.startswith("Scripts") and t.startswith("#!/usr/bin/env python3")):
            scan_python(p, t, found, modules)
        elif p.endswith(".swift") and not p.startswith("Sources/Plugins"):
            scan_swift(p, t, found)
    listed = {}
    for m in MANIFESTS:
        listed.update(manifest(m))
    own = set(os.listdir(os.path.join(ROOT, "Scripts"))) | set(os.listdir(os.path.join(ROOT, "Scripts", "lib")))
    problems = []
    for w, where in sorted(found.items()):
        if w in listed or w in own:
            continue
        path = w if w.startswith("/") else shutil.which(w)
        if path and path.startswith("/opt/swift/"):
            continue  # the Swift toolchain, which the machine comes with
        if path is None:
            if not w.startswith("/") and (w.endswith(".sh") or w.endswith(".py")):
                continue
            # Not on this machine: a project binary (built), or a tool nothing installs.
            if w in PROJECT_BINARIES:
                continue
            problems.append(f"{where}: '{w}' is not installed and not in tools.tsv")
            continue
        pkg = package_of(path)
        if pkg and essential(pkg):
            continue
        problems.append(f"{where}: '{w}' ({path}, Debian package {pkg or 'unknown'}) is not in Scripts/lib/tools.tsv")
    stdlib = set(sys.stdlib_module_names)
    for m, where in sorted(modules.items()):
        if m in stdlib or f"py:{m}" in listed or os.path.exists(os.path.join(ROOT, "Scripts", "lib", m + ".py")):
            continue
        problems.append(f"{where}: Python module '{m}' is not in Scripts/lib/tools.tsv")
    for p in problems:
        print(p)
    print(f"tools: {len(found)} commands and paths, {len(modules)} Python modules used; {len(problems)} not accounted for")
    return 1 if problems else 0


PROJECT_BINARIES = {"cni-plugins", "cnictl", "cni-dnsd", "cni-overlayd", "dns-fuzz", "config-fuzz", "cnitool",
                    "bridge", "host-local", "macvlan", "portmap", "loopback", "tuning", "firewall", "dnsname", "vxlan"}

if __name__ == "__main__":
    cmd = sys.argv[1] if len(sys.argv) > 1 else ""
    path = os.path.abspath(sys.argv[2]) if len(sys.argv) > 2 and cmd != "scan" else MANIFEST
    if cmd == "packages":
        print("\n".join(sorted(set(manifest(path).values()))))
    elif cmd == "check":
        sys.exit(check(path))
    elif cmd == "scan":
        sys.exit(scan(os.path.abspath(sys.argv[2]) if len(sys.argv) > 2 else ROOT))
    else:
        sys.exit(__doc__)
