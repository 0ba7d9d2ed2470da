# SPDX-License-Identifier: MIT
"""--report folded: collapsed stacks, `outermost;...;innermost bytes` a line, which
flamegraph.pl, inferno and speedscope read. A frame is `file:line function`.

Names come from the target: a `;` would split a frame and a newline a line, so both are escaped
(names.shown escapes newlines and every other unprintable, `;` becomes \\x3b). The count is the
last field after a space, so spaces in names are fine."""
from .locations import frames_with_native, ranked
from .names import shown


def frame(file, line, function):
    return f"{shown(file)}:{line} {shown(function)}".replace(";", "\\x3b")


def stacks(entries):
    """{folded stack: bytes}, domains summed (a stack is the same whatever allocator it used),
    largest first; the native caller (--native) is the innermost frame."""
    sums = {}
    for entry in ranked(entries):
        key = ";".join(frame(*f) for f in reversed(frames_with_native(entry)))
        sums[key] = sums.get(key, 0) + entry["bytes"]
    return dict(sorted(sums.items(), key=lambda kv: (-kv[1], kv[0])))


def write(out, entries):
    for stack, total in stacks(entries).items():
        print(f"{stack} {total}", file=out)
