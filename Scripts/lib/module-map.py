#!/usr/bin/env python3
"""The module map of docs/architecture.md holds: every Swift file imports only what its module's
row allows, and no module imports Foundation (no shipped binary links it: with its ICU data it
was two thirds of each daemon's size).

usage: module-map.py [ROOT]   (exit 1 naming each offending file:line; 0 when the map holds)
"""
import glob, os, re, sys

ROOT = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..", "..")
SYSTEM = {"Glibc", "Darwin", "Dispatch", "Foundation"}


def targets():
    """Module name -> its source directory, from Package.swift (path:, else Sources/<name>)."""
    pkg = open(os.path.join(ROOT, "Package.swift")).read()
    out = {}
    for m in re.finditer(r'\.(target|executableTarget)\(\s*name:\s*"([^"]+)"([^()]*(?:\([^()]*\)[^()]*)*)\)', pkg):
        path = re.search(r'path:\s*"([^"]+)"', m.group(3))
        out[m.group(2)] = path.group(1) if path else "Sources/" + m.group(2)
    return {k: v for k, v in out.items() if not v.startswith("Tests/")}  # test helpers: not in the map


def allowed(modules):
    """Module -> the modules its row of the map allows; `every *Plugin` expands."""
    rows = {}
    for line in open(os.path.join(ROOT, "docs", "architecture.md")):
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) != 3 or not re.fullmatch(r"`[^`]+`", cells[0]):
            continue
        names = set(re.findall(r"`([^`*]+)`", cells[2]))
        if "every `*Plugin`" in cells[2]:
            names |= {m for m in modules if m.endswith("Plugin")}
        rows[cells[0].strip("`")] = names
    return rows


def main():
    mods = targets()
    rows = allowed(mods)
    problems = []
    for name, path in sorted(mods.items()):
        files = sorted(glob.glob(os.path.join(ROOT, path, "**", "*.swift"), recursive=True))
        if not files:
            continue
        if name not in rows:
            problems.append(f"{name} ({path}) has no row in docs/architecture.md")
            continue
        for f in files:
            for n, line in enumerate(open(f), 1):
                m = re.match(r"\s*(?:@[A-Za-z_]+(?:\([^)]*\))?\s+)?import\s+(?:(?:struct|enum|class|func|protocol)\s+)?([A-Za-z_][A-Za-z_0-9]*)", line)
                if not m:
                    continue
                imp = m.group(1)
                rel = os.path.relpath(f, ROOT)
                if imp in ("Foundation", "FoundationEssentials"):
                    problems.append(f"{rel}:{n}: {name} imports {imp}, which no shipped binary links (Base has the system calls)")
                if imp not in SYSTEM and imp not in rows[name]:
                    problems.append(f"{rel}:{n}: {name} imports {imp}, which its row of docs/architecture.md does not allow")
    for p in problems:
        print(p)
    print(f"module map: {len(mods)} modules, {len(problems)} problems")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
