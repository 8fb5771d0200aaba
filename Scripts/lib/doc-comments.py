#!/usr/bin/env python3
"""Every public (or open) type, initializer, function and subscript under Sources/ has a doc
comment (`///` or `/** */` right above it, attributes and #if lines between allowed).

Usage: doc-comments.py ROOT. Prints each declaration without one as `path:line: declaration` and
exits 1 if there is any; prints the count checked either way.
"""
import os
import re
import sys

DECL = re.compile(
    r'^\s*(?:@\w+(?:\([^)]*\))?\s+)*'
    r'(?:public|open)(?:\s+(?:static|class|final|override|mutating|nonmutating|convenience|required|indirect|nonisolated))*\s+'
    r'(func|init|struct|class|enum|protocol|typealias|subscript|actor)\b')
BETWEEN = re.compile(r'^\s*(@\w+.*|#if.*|#else.*|#elseif.*|#endif.*)$')


def documented(lines, i):
    j = i - 1
    while j >= 0 and BETWEEN.match(lines[j]):
        j -= 1
    return j >= 0 and (lines[j].strip().startswith('///') or lines[j].strip().endswith('*/'))


def main(root):
    checked, missing = 0, []
    for d, _, files in sorted(os.walk(os.path.join(root, 'Sources'))):
        for f in sorted(files):
            if not f.endswith('.swift'):
                continue
            path = os.path.join(d, f)
            lines = open(path, encoding='utf-8').read().split('\n')
            for i, line in enumerate(lines):
                if DECL.match(line):
                    checked += 1
                    if not documented(lines, i):
                        missing.append(f'{os.path.relpath(path, root)}:{i + 1}: {line.strip()[:100]}')
    for m in missing:
        print(m)
    print(f'doc comments: {checked} public types and functions, {len(missing)} without one')
    return 1 if missing else 0


if __name__ == '__main__':
    sys.exit(main(sys.argv[1]))
