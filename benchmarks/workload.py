# SPDX-License-Identifier: MIT
"""The Python workloads of the benchmarks: a C extension (benchext) allocating from Python code.

    python3 workload.py {dense|realistic} N [--tracemalloc] [--gate]

dense       N allocations from nested functions, three plain lines before each, as fast as
            Python goes (worst case for any tracer); a live set of 64 blocks.
realistic   N rounds of ordinary work (strings, dicts, objects, sorting; about 20 us each
            untraced) with one allocation per round; a live set of 64 blocks.

--tracemalloc  tracemalloc.start() before anything else (as a user would at the top of a script).
--gate         print "READY <pid>" and wait for a line on stdin before the timed part (so a
               tracer can attach to this process).
Prints "TIME <seconds of the timed part> EVENTS <allocations> LIVE <blocks left allocated>", and
with --tracemalloc "TRACEMALLOC_LINE <blocks> <bytes>" (what tracemalloc attributes to the
allocating line). The LIVE blocks are deliberately never freed: a leak report must find them.
"""
import sys

if "--tracemalloc" in sys.argv:
    import tracemalloc
    tracemalloc.start()

import collections
import os
import time

sys.path.insert(0, os.environ.get("BENCHEXT_DIR", os.path.dirname(os.path.abspath(__file__))))
import benchext  # noqa: E402

LIVE = 64


def dense_leaf(i, live):
    size = 64 + (i & 63)
    x = i * 3 + 1
    y = x ^ (x >> 3)
    live.append(benchext.alloc(size))  # ALLOC_LINE dense
    if len(live) > LIVE:
        benchext.free(live.popleft())
    return y


def dense_middle(i, live):
    z = dense_leaf(i, live)
    return z + 1


def dense(n, live):
    total = 0
    for i in range(n):
        total += dense_middle(i, live)
    return total


class Record:
    __slots__ = ("name", "tags", "score")

    def __init__(self, name, tags, score):
        self.name = name
        self.tags = tags
        self.score = score

    def describe(self):
        return f"{self.name}: {','.join(self.tags)} ({self.score:.2f})"


WORDS = ["alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta", "iota", "kappa"]


def realistic_round(i, live, index):
    words = [WORDS[(i + j) % len(WORDS)] + str(j) for j in range(12)]
    counts = {}
    for word in words:
        counts[word[0]] = counts.get(word[0], 0) + len(word)
    records = [Record(w, sorted(counts)[:3], counts[w[0]] / 7.0) for w in words[:6]]
    text = "; ".join(r.describe() for r in records)
    index[i % 97] = text.upper().split(";")
    live.append(benchext.alloc(64 + len(text) % 512))  # ALLOC_LINE realistic
    if len(live) > LIVE:
        benchext.free(live.popleft())
    return len(text)


def realistic(n, live):
    index = {}
    total = 0
    for i in range(n):
        total += realistic_round(i, live, index)
    return total


def locate_cost(n):
    """ns per Python location lookup (no tracer): from a new frame each time, and repeated."""
    def fresh(f):
        return f(1)
    def timed(body):
        best = float("inf")
        for _ in range(5):
            start = time.perf_counter()
            body()
            best = min(best, time.perf_counter() - start)
        return best / n * 1e9
    new = timed(lambda: [fresh(benchext.locate) for _ in range(n)])
    new_noop = timed(lambda: [fresh(benchext.noop) for _ in range(n)])
    same = timed(lambda: benchext.locate(n))
    same_noop = timed(lambda: benchext.noop(n))
    print(f"LOCATE_NEW_FRAME {new - new_noop:.1f} LOCATE_SAME_FRAME {same - same_noop:.1f}")


def main():
    if sys.argv[1] == "locate":
        return locate_cost(int(sys.argv[2]))
    kind, n = sys.argv[1], int(sys.argv[2])
    work = {"dense": dense, "realistic": realistic}[kind]
    live = collections.deque()
    if "--gate" in sys.argv:
        print(f"READY {os.getpid()}", flush=True)
        sys.stdin.readline()
    start = time.perf_counter()
    work(n, live)
    elapsed = time.perf_counter() - start
    print(f"TIME {elapsed:.6f} EVENTS {n} LIVE {len(live)}", flush=True)
    if "--tracemalloc" in sys.argv:
        line = next(no for no, text in enumerate(open(__file__), 1)
                    if text.rstrip().endswith("# ALLOC_LINE " + kind))
        snapshot = tracemalloc.take_snapshot().filter_traces(
            [tracemalloc.Filter(True, __file__, line)])
        stats = snapshot.statistics("lineno")
        print(f"TRACEMALLOC_LINE {sum(s.count for s in stats)} {sum(s.size for s in stats)}",
              flush=True)


if __name__ == "__main__":
    main()
