# SPDX-License-Identifier: MIT
"""The summary and leaks reports in each form (text, JSON, folded, html), from maps as bpftrace
gives them: ranked first, cut to --top in text only, domains in words, hostile names escaped.
No root, no tracer: the reports know nothing of how the maps were collected."""
import io
import json
import os
import re
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))
import tracing  # noqa: E402,F401  (makes pymemtrace.trace importable)
from pymemtrace.trace import cli, flamegraph_html, folded, reports  # noqa: E402
from pymemtrace.trace.errors import Failure  # noqa: E402
from pymemtrace.trace.programs import Plan  # noqa: E402

PID = 4242  # the process the maps below are of
SUMMARY = Plan("pymemtrace_summary", [], "summary", -1)
LEAKS = Plan("pymemtrace_leaks", [], "leaks", -1)


def alloc_maps(locations):
    """@alloc from (file, function, line, domain, count, bytes), all in one size bucket, of
    process PID."""
    return {"@alloc": {f"{PID},{f},{fn},{line},{domain},6": {"count": count, "total": total}
                       for f, fn, line, domain, count, total in locations}}


# 25 locations, location n allocating n * 100 bytes in n blocks, domains 0 to 4 in turn.
MANY = [(f"/src/app/mod{n}.py", f"work{n}", n, n % 5, n, n * 100) for n in range(1, 26)]


def render(plan, maps, full_path=False, **view):
    out = io.StringIO()
    reports.report(out, plan, plan.kind, False, maps, [], reports.Shortener(not full_path, 128),
                   reports.View(**view))
    return out.getvalue()


def table_rows(text):
    """The rows of the first table: (bytes, count, domain, file:line, function)."""
    rows = []
    for line in text.splitlines()[3:]:
        match = re.match(r"^\s+(\d+)\s+[\d.]+%\s+(\d+)\s+(.+?)\s{2,}(\S+:\d+)\s+(.*)$", line)
        if not match:
            break
        rows.append((int(match[1]), int(match[2]), match[3], match[4], match[5]))
    return rows


def test_the_summary_opens_with_the_top_20_locations_largest_first():
    text = render(SUMMARY, alloc_maps(MANY))
    assert text.startswith("Allocations by Python location, largest first (top 20 of 25):"), text
    rows = table_rows(text)
    assert [r[0] for r in rows] == [n * 100 for n in range(25, 5, -1)], rows
    assert rows[0] == (2500, 25, "C heap", "mod25.py:25", "work25"), rows[0]


def test_what_the_top_cut_left_out_and_the_totals_are_said_under_the_table():
    text = render(SUMMARY, alloc_maps(MANY))
    left = sum(n * 100 for n in range(1, 6))
    assert (f"(5 more locations, {left} bytes in 15 allocations; --top 0 shows all)"
            in text), text
    total = sum(n * 100 for n in range(1, 26))
    assert f"Total: {total} bytes in 325 allocations, 25 locations" in text, text


@pytest.mark.parametrize("top, shown", [(0, 25), (3, 3), (30, 25)])
def test_top_n_shows_n_locations_and_0_shows_all(top, shown):
    text = render(SUMMARY, alloc_maps(MANY), top=top)
    assert len(table_rows(text)) == shown, text
    assert ("more location" in text) == (shown < 25), text


def test_the_summary_fits_a_screen_without_histograms_which_come_when_asked_largest_first():
    text = render(SUMMARY, alloc_maps(MANY))
    assert "Distribution" not in text and len(text.splitlines()) < 40, text
    text = render(SUMMARY, alloc_maps(MANY), histograms=True, top=3)
    titles = re.findall(r"^   mod(\d+)\.py, work\d+, bytes total = (\d+)$", text, re.M)
    assert titles == [("25", "2500"), ("24", "2400"), ("23", "2300")], titles
    assert "(22 more functions; --top 0 shows all)" in text, text
    assert text.index("Total:") < text.index("Distribution"), "the table comes first"


def test_columns_widen_to_the_longest_name():
    long = "/srv/" + "very_long_directory_name/" * 3 + "module_with_a_long_name.py"  # < --strlen
    maps = alloc_maps([(long, "f", 7, 0, 1, 10), ("/a/b.py", "g", 12345, 2, 1, 5)])
    lines = render(SUMMARY, maps, full_path=True).splitlines()
    header, first, second = lines[2], lines[3], lines[4]
    column = header.index("function")
    assert first[column:] == "f" and second[column:] == "g", "\n".join(lines[2:5])
    assert first[column - 2 - len(long) - 2:column - 2].strip() == f"{long}:7", first


def test_domains_are_shown_in_words_and_kept_as_numbers_in_json():
    maps = alloc_maps([("/a.py", "f", n, domain, 1, 100 - n)
                       for n, domain in enumerate([0, 1, 2, 3, 4, 16, 21], 1)])
    words = ["C heap", "PyMem_Raw", "PyMem", "PyObject", "C++", "user 16", "user 21"]
    assert [r[2] for r in table_rows(render(SUMMARY, maps))] == words
    by_domain = render(SUMMARY, maps).split("By domain:")[1]
    assert re.findall(r"\d+\s+[\d.]+%\s+\d+\s+(.+)$", by_domain, re.M) == words
    entries = json.loads(render(SUMMARY, maps, form="json"))
    assert [(e["domain"], e["domain_name"]) for e in entries] == list(
        zip([0, 1, 2, 3, 4, 16, 21], words))


def test_json_keeps_every_location_whatever_the_top():
    entries = json.loads(render(SUMMARY, alloc_maps(MANY), form="json", top=3))
    assert len(entries) == 25 and [e["bytes"] for e in entries][:2] == [2500, 2400]
    assert entries[0]["stack"] == [{"file": "mod25.py", "line": 25, "function": "work25"}]


def test_leaks_are_ranked_cut_to_the_top_and_total_every_block():
    live = {f"{PID},{n}": [n * 10, n % 22 % 5, f"/src/leak{n % 22}.py", "keep", n % 22]
            for n in range(1, 45)}
    text = render(LEAKS, {"@live": live})
    assert text.startswith("Still allocated by Python location, largest first (top 20 of 22):")
    rows = table_rows(text)
    assert len(rows) == 20 and rows == sorted(rows, key=lambda r: -r[0]), rows
    assert "(2 more locations, " in text, text
    assert f"Total: 44 blocks, {sum(n * 10 for n in range(1, 45))} bytes still allocated" in text


def test_folded_stacks_sum_to_the_summary_with_domains_merged():
    maps = alloc_maps(MANY + [("/src/app/mod3.py", "work3", 3, 4, 2, 50)])
    lines = render(SUMMARY, maps, form="folded").splitlines()
    stacks = dict(line.rsplit(" ", 1) for line in lines)
    assert len(lines) == 25 and stacks["mod3.py:3 work3"] == "350", lines
    assert sum(map(int, stacks.values())) == sum(
        e["bytes"] for e in json.loads(render(SUMMARY, maps, form="json")))


def test_folded_frames_escape_semicolons_and_newlines_of_hostile_names():
    maps = alloc_maps([("/a/x;y\nz.py", "f;g\n99 1", 4, 0, 1, 10)])
    assert render(SUMMARY, maps, form="folded") == "x\\x3by\\nz.py:4 f\\x3bg\\n99 1 10\n"


def test_a_stack_of_several_frames_is_folded_outermost_first():
    entry = {"stack": [("wrap.py", 3, "make"), ("app.py", 10, "alpha"), ("app.py", 20, "main")],
             "domain": 0, "count": 2, "bytes": 64}
    assert folded.stacks([entry]) == {"app.py:20 main;app.py:10 alpha;wrap.py:3 make": 64}
    tree = flamegraph_html.tree([entry])
    assert (tree["children"][0]["name"], tree["children"][0]["children"][0]["name"]) == \
        ("app.py:20 main", "app.py:10 alpha")


HOSTILE = "/tmp/</script><img src=x onerror=alert(1)>.py"


def test_the_page_holds_names_only_as_escaped_json_that_parses_back():
    page = render(SUMMARY, alloc_maps([(HOSTILE, "</script>&<b>", 1, 0, 1, 8)]), full_path=True,
                  form="html", scripts=["/* d3 */", "/* d3-flame-graph */"])
    assert "<img" not in page and page.count("</script>") == 4, "names only in the JSON"
    data = re.search(r'<script type="application/json" id="report-data">(.*?)</script>',
                     page, re.S)[1]
    assert json.loads(data)["rows"][0]["frames"] == [f"{HOSTILE}:1 </script>&<b>"]
    policy = re.search(r'Content-Security-Policy" content="([^"]*)"', page)[1]
    assert "default-src 'none'" in policy and "unsafe-inline'" not in policy.split("script-src")[1]


def test_html_without_its_javascript_fails_saying_how_to_install_it(tmp_path, monkeypatch):
    monkeypatch.setenv(flamegraph_html.JS_DIR_VARIABLE, str(tmp_path))
    with pytest.raises(Failure) as failure:
        flamegraph_html.scripts()
    assert "not installed" in str(failure.value) and "install-deps.sh" in failure.value.fix


@pytest.mark.parametrize("argv, report, form", [
    (["--report", "folded"], "summary", "folded"),
    (["--report", "html", "-o", "x.html"], "summary", "html"),
    (["--report", "leaks", "--format", "html", "-o", "x.html"], "leaks", "html"),
    (["--report", "leaks", "--json"], "leaks", "json"),
    ([], "summary", "text")])
def test_report_folded_and_html_are_the_summary_in_that_format(argv, report, form):
    args = cli.parse_args(argv + ["--", "python3"])
    assert (args.report, args.format) == (report, form)


@pytest.mark.parametrize("argv", [["--report", "html"], ["--report", "flow", "--json"],
                                  ["--report", "folded", "--json"], ["--top", "-1"]])
def test_report_forms_that_cannot_be_written_are_usage_errors(argv, capsys):
    with pytest.raises(SystemExit):
        cli.parse_args(argv + ["--", "python3"])
    assert "usage:" in capsys.readouterr().err


def test_bytes_without_a_python_location_are_said_with_the_option_that_locates_them():
    maps = alloc_maps([("", "", 0, 0, 3, 3000), ("/src/app/a.py", "f", 7, 2, 1, 100)])
    text = render(SUMMARY, maps)
    assert "(3000 bytes have no Python location: a thread without the GIL allocated them; " \
           "--frames python-probes locates them" in text, text
    assert "no Python location" not in render(SUMMARY, alloc_maps(MANY)), "a false note"
