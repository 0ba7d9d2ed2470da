# SPDX-License-Identifier: MIT
"""Frees of blocks a flow never showed allocated: counted and said at the end of the flow, not
shown as events (issue 21). Such a block was allocated before tracing began, by code that is
not traced (CPython's own tp_alloc, a library the extension links), or in the parent before a
fork; a flow of frees with no allocations reads as a bug in the extension, which it is not.

Both engines' flows go through one UnseenFrees (modes.Trace for bpftrace's rows, engine_flow for
the engine's). The blocks it remembers are bounded: once `limit` are live it can no longer tell,
and from then on shows every free, and says so."""
import sys


class UnseenFrees:
    def __init__(self, limit):
        self.limit = limit
        self.live = set()  # (pid, pointer) of the blocks the flow showed allocated, not freed
        self.hidden = 0  # frees not shown
        self.full_at = None  # blocks live when the record filled: frees shown from then on

    def allocated(self, pid, pointer):
        if self.full_at is not None or not pointer:
            return
        if len(self.live) >= self.limit:
            self.full_at = len(self.live)
            self.live = set()  # nothing is hidden from now on: no need to remember
            return
        self.live.add((pid, pointer))

    def moved(self, pid, old, new, size):
        """A realloc of `old` (0: none) to `size` bytes that returned `new`: a new block, the
        old one gone; NULL for a size of 0 released `old`; any other NULL failed, `old` stays
        (docs/probes.md)."""
        if not new and size:
            return
        if old and self.full_at is None:
            self.live.discard((pid, old))
        self.allocated(pid, new)

    def shows_free(self, pid, pointer):
        """Whether the free of `pointer` by `pid` is shown: its block was shown allocated (or
        the pointer is NULL, a call rather than a block; or the record is full)."""
        if not pointer or self.full_at is not None:
            return True
        try:
            self.live.remove((pid, pointer))
            return True
        except KeyError:
            self.hidden += 1
            return False

    def said(self):
        """What the flow's reader is told at its end: a line each, or none."""
        lines = []
        if self.hidden:
            lines.append(f"{self.hidden} frees of blocks this flow did not show allocated "
                         "(allocated before tracing began, by code that is not traced, or "
                         "before a fork) are not shown")
        if self.full_at is not None:
            lines.append(f"once {self.full_at} blocks were live, every free is shown, whether "
                         "or not its block was shown allocated; raise --max-entries")
        return lines


def say_unseen_frees(unseen, out):
    """At the end of a flow, after its rows, and on standard error."""
    for line in unseen.said():
        print(f"pymemtrace-trace: {line}", file=sys.stderr)
        out.write(line + "\n")
