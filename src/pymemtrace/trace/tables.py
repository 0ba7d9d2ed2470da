# SPDX-License-Identifier: MIT
"""The text reports: locations ranked by bytes (the top N, what the cut left out, the totals),
bytes by domain, and the size histograms only when asked (--histograms). By default a summary
fits on a screen, whatever the number of locations: a 650-test suite printed 5,244 lines of
histograms before its table when they came by default."""
from .locations import domain_name, ranked, stack_of
from .names import shown
from .native import text as native_text

INDENT = "   "


def _share(part, total):
    return f"{100.0 * part / total:.1f}%" if total else "-"


def _location(stack):
    """(file:line, function) of the innermost frame; callers follow the function, ' < ' each."""
    file, line, function = stack[0]
    callers = "".join(f" < {shown(f)}:{n} {shown(fn)}" for f, n, fn in stack[1:])
    return f"{shown(file)}:{line}", shown(function) + callers


def _columns(header, rows, right):
    """Lines of `rows` (lists of cells) under `header`, each column as wide as its widest cell;
    the `right` columns aligned right, the last one never padded."""
    widths = [max(len(cell) for cell in column) for column in zip(header, *rows)]
    lines = []
    for cells in [header, *rows]:
        padded = [cell.rjust(width) if index in right else cell.ljust(width)
                  for index, (cell, width) in enumerate(zip(cells, widths))]
        padded[-1] = cells[-1].rjust(widths[-1]) if len(cells) - 1 in right else cells[-1]
        lines.append(INDENT + "  ".join(padded).rstrip())
    return lines


def _words(number, word):
    """`number word`, the word plural unless the number is 1."""
    return f"{number} {word}{'s' * (number != 1)}"


def location_lines(entries, top, unit="allocation"):
    """The ranked table of `entries` (largest first, the first `top`, all for 0) and a line for
    the rest. `unit`: what a count counts."""
    entries = ranked(entries)
    total = sum(e["bytes"] for e in entries)
    kept = entries[:top] if top else entries
    rows = []
    for e in kept:
        where, what = _location(stack_of(e))
        if "native" in e:  # --native: the C or C++ code that called the allocator
            what += "  " + native_text(e["native"])
        rows.append([str(e["bytes"]), _share(e["bytes"], total), str(e["count"]),
                     domain_name(e["domain"]), where, what])
    lines = _columns(["bytes", "%", "count", "domain", "file:line", "function"], rows, {0, 1, 2})
    rest = entries[len(kept):]
    if rest:
        count = sum(e["count"] for e in rest)
        lines.append(f"{INDENT}({_words(len(rest), 'more location')}, "
                     f"{sum(e['bytes'] for e in rest)} bytes in {_words(count, unit)}; "
                     "--top 0 shows all)")
    return lines


def title(what, entries, top):
    cut = f" (top {top} of {len(entries)})" if top and len(entries) > top else ""
    return f"{what}, largest first{cut}:\n"


def domain_lines(entries):
    """Bytes and count by domain, largest first."""
    by_domain = {}
    for e in entries:
        sums = by_domain.setdefault(e["domain"], [0, 0])
        sums[0] += e["bytes"]
        sums[1] += e["count"]
    total = sum(s[0] for s in by_domain.values())
    rows = [[str(b), _share(b, total), str(c), domain_name(d)]
            for d, (b, c) in sorted(by_domain.items(), key=lambda kv: (-kv[1][0], kv[0]))]
    return _columns(["bytes", "%", "count", "domain"], rows, {0, 1, 2})


def histogram_lines(dists, domain_dists, top, quantize):
    """Size histograms per (file, function) and per domain, largest first, the first `top`.
    `dists`: {(file, function): (bytes, buckets)}; `quantize` draws buckets."""
    lines = ["Python malloc byte distributions by Python file and function, largest first:", ""]
    ordered = sorted(dists.items(), key=lambda kv: (-kv[1][0], kv[0]))
    kept = ordered[:top] if top else ordered
    for (file, function), (total, buckets) in kept:
        lines.append(f"{INDENT}{shown(file)}, {shown(function)}, bytes total = {total}")
        lines += quantize(buckets, INDENT) + [""]
    if len(ordered) > len(kept):
        rest = len(ordered) - len(kept)
        lines += [f"{INDENT}({_words(rest, 'more function')}; "
                  "--top 0 shows all)", ""]
    if domain_dists:
        lines += ["Python malloc byte distributions by domain, largest first:", ""]
        for domain, (total, buckets) in sorted(domain_dists.items(),
                                               key=lambda kv: (-kv[1][0], kv[0])):
            lines.append(f"{INDENT}{domain_name(domain)}, bytes total = {total}")
            lines += quantize(buckets, INDENT) + [""]
    return lines


def unlocated_lines(entries):
    """A note on the bytes without a Python location (file "" and line 0), if any: a thread
    without the GIL allocated them, as an extension does that releases it around its C library."""
    unlocated = sum(e["bytes"] for e in entries
                    if all(not file and not line for file, line, _ in stack_of(e)))
    if not unlocated:
        return []
    return [f"\n{INDENT}({unlocated} bytes have no Python location: a thread without the GIL "
            "allocated them; --frames python-probes locates them by CPython's own probes)"]


def write_summary(out, entries, top, histograms=()):
    """The summary: the ranked table, the totals, bytes by domain, then `histograms` (lines)."""
    lines = [title("Allocations by Python location", entries, top)]
    lines += location_lines(entries, top)
    lines.append(f"\nTotal: {sum(e['bytes'] for e in entries)} bytes in "
                 f"{_words(sum(e['count'] for e in entries), 'allocation')}, "
                 f"{_words(len(entries), 'location')}")
    if entries:
        lines += ["", "By domain:", ""] + domain_lines(entries)
    if any(e["domain"] == -1 for e in entries):
        lines.append(f"\n{INDENT}(realloc: reallocs, whose probe carries no domain)")
    lines += unlocated_lines(entries)
    if histograms:
        lines += [""] + list(histograms)
    print("\n".join(lines).rstrip("\n"), file=out)


def write_leaks(out, entries, top, note=""):
    """The leaks: the ranked table of blocks still allocated, then the totals."""
    lines = [title("Still allocated by Python location", entries, top)]
    lines += location_lines(entries, top, unit="block")
    lines.append(f"\nTotal: {sum(e['count'] for e in entries)} blocks, "
                 f"{sum(e['bytes'] for e in entries)} bytes still allocated{note}")
    lines += unlocated_lines(entries)
    print("\n".join(lines), file=out)


def snapshot_lines(entries, top, per_process=False):
    """A snapshot's table (--interval): live bytes, their growth since the first snapshot
    (signed), blocks, by location, largest first, the first `top`; a pid column if
    `per_process`."""
    entries = ranked(entries)
    kept = entries[:top] if top else entries
    rows = []
    for e in kept:
        where, what = _location(stack_of(e))
        rows.append([str(e["bytes"]), f"{e['growth']:+d}", str(e["count"]),
                     domain_name(e["domain"]), *([str(e["pid"])] if per_process else []),
                     where, what])
    header = ["bytes", "growth", "count", "domain", *(["pid"] if per_process else []),
              "file:line", "function"]
    lines = _columns(header, rows, {0, 1, 2, *([4] if per_process else [])})
    rest = entries[len(kept):]
    if rest:
        lines.append(f"{INDENT}({_words(len(rest), 'more location')}, "
                     f"{sum(e['bytes'] for e in rest)} bytes; --top 0 shows all)")
    return lines
