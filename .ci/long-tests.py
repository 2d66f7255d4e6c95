#!/usr/bin/env python3
"""Lists the test functions longer than a limit (default 100 lines, issue 23's rule).

usage: .ci/long-tests.py [LIMIT]   (run from the repository root; exits 1 if any is over)

A test function is an `fn` whose attributes include `#[test]` or `#[<runtime>::test...]`;
its length runs from the `fn` line to its closing brace, counted by brace depth with
strings, chars and comments skipped.
"""
import pathlib
import re
import sys

TEST_ATTR = re.compile(r"^\s*#\[(\w+::)?test\b")
FN = re.compile(r"^\s*(pub(\(\w+\))?\s+)?(async\s+)?fn\s+(\$?\w+)")
ROOTS = ["shared", "tests", "console", "functions"]


def body_length(lines, start):
    """Lines from `start` (the fn line) to the brace that closes the function."""
    depth, seen = 0, False
    text = "\n".join(lines[start:])
    i, line = 0, 0
    while i < len(text):
        c = text[i]
        if text.startswith("//", i):
            i = text.find("\n", i)
            if i < 0:
                break
            continue
        if text.startswith("/*", i):
            end = text.find("*/", i)
            line += text.count("\n", i, end)
            i = end + 2
            continue
        raw = re.match(r'b?r(#*)"', text[i:])  # raw strings, byte raw strings too
        if raw and (i == 0 or not (text[i - 1].isalnum() or text[i - 1] == "_")):
            close = '"' + raw.group(1)
            end = text.find(close, i + len(raw.group(0)))
            line += text.count("\n", i, end)
            i = end + len(close)
            continue
        if c == '"':
            j = i + 1
            while text[j] != '"':
                j += 2 if text[j] == "\\" else 1
            line += text.count("\n", i, j)
            i = j + 1
            continue
        if c == "'" and re.match(r"'(\\.|[^\\'])'|'\\u\{[0-9a-fA-F]+\}'", text[i:]):
            i += len(re.match(r"'(\\.|[^\\'])'|'\\u\{[0-9a-fA-F]+\}'", text[i:]).group(0))
            continue
        if c == "\n":
            line += 1
        elif c == "{":
            depth, seen = depth + 1, True
        elif c == "}":
            depth -= 1
            if seen and depth == 0:
                return line + 1
        i += 1
    raise ValueError("unbalanced braces")


def long_tests(limit):
    for root in ROOTS:
        for path in sorted(pathlib.Path(root).rglob("*.rs")):
            if "target" in path.parts:
                continue
            lines = path.read_text().split("\n")
            for n, text in enumerate(lines):
                if not TEST_ATTR.match(text):
                    continue
                k = n + 1
                while k < len(lines) and not FN.match(lines[k]):
                    k += 1
                length = body_length(lines, k)
                if length > limit:
                    yield length, f"{path}:{k + 1}", FN.match(lines[k]).group(4)


def main():
    limit = int(sys.argv[1]) if len(sys.argv) > 1 else 100
    found = sorted(long_tests(limit), reverse=True)
    for length, place, name in found:
        print(f"{length:5} {place} {name}")
    print(f"{len(found)} test functions over {limit} lines")
    sys.exit(1 if found else 0)


if __name__ == "__main__":
    main()
