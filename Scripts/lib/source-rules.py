#!/usr/bin/env python3
"""Two rules of the code under Sources/:
- every public (or open) type, initializer, function and subscript has a doc comment (`///` or
  `/** */` right above it, attributes and #if lines between allowed);
- no function, initializer or subscript is longer than 80 lines (from its declaration to
  its closing brace).

Usage: source-rules.py ROOT. Prints each offence as `path:line: what` and exits 1 if there is
any; prints the counts checked either way.
"""
import os
import re
import sys

DECL = re.compile(
    r'^\s*(?:@\w+(?:\([^)]*\))?\s+)*'
    r'(?:public|open)(?:\s+(?:static|class|final|override|mutating|nonmutating|convenience|required|indirect|nonisolated))*\s+'
    r'(func|init|struct|class|enum|protocol|typealias|subscript|actor)\b')
FUNC = re.compile(
    r'^\s*(?:@\w+(?:\([^)]*\))?\s+)*'
    r'(?:(?:public|private|fileprivate|internal|package|open|static|class|final|override|mutating|nonisolated|convenience|required)\s+)*'
    r'(?:func|init[?!]?|deinit|subscript)\b')
STRING = re.compile(r'"(?:\\.|[^"\\])*"')
LIMIT = 80
BETWEEN = re.compile(r'^\s*(@\w+.*|#if.*|#else.*|#elseif.*|#endif.*)$')


def documented(lines, i):
    j = i - 1
    while j >= 0 and BETWEEN.match(lines[j]):
        j -= 1
    return j >= 0 and (lines[j].strip().startswith('///') or lines[j].strip().endswith('*/'))


def length(lines, i):
    """The lines from the declaration at `i` to its closing brace (0: a requirement, no body)."""
    depth, opened = 0, False
    for j in range(i, len(lines)):
        code = STRING.sub('""', lines[j]).split('//')[0]
        depth += code.count('{') - code.count('}')
        opened = opened or '{' in code
        if opened and depth <= 0:
            return j - i + 1
        if not opened and j > i + 8:
            return 0
    return 0


def main(root):
    checked, functions, missing = 0, 0, []
    for d, _, files in sorted(os.walk(os.path.join(root, 'Sources'))):
        for f in sorted(files):
            if not f.endswith('.swift'):
                continue
            path = os.path.join(d, f)
            lines = open(path, encoding='utf-8').read().split('\n')
            for i, line in enumerate(lines):
                if FUNC.match(line) and not line.strip().startswith('//'):
                    functions += 1
                    n = length(lines, i)
                    if n > LIMIT:
                        missing.append(f'{os.path.relpath(path, root)}:{i + 1}: {n} lines, more than {LIMIT}: {line.strip()[:80]}')
                if DECL.match(line):
                    checked += 1
                    if not documented(lines, i):
                        missing.append(f'{os.path.relpath(path, root)}:{i + 1}: {line.strip()[:100]}')
    for m in missing:
        print(m)
    print(f'source rules: {checked} public types and functions need a doc comment, {functions} functions at most {LIMIT} lines; {len(missing)} offences')
    return 1 if missing else 0


if __name__ == '__main__':
    sys.exit(main(sys.argv[1]))
