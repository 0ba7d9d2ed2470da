# SPDX-License-Identifier: MIT
"""Every py* report says what it cannot see in the traced libraries (unseen.not_seen): text after
the totals, JSON lines in a "not_seen" list (a JSON list of entries, and folded, on standard
error), html in the page as text. On the built cMemLeak and tests/redirect's plain build, with
real bpftrace. Run through tests/support/run_pytest.py with PYTHONPATH=<builddir>/src."""
import html
import io
import json
import os
import re
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, os.path.join(ROOT, "tests", "support"))
from runner import BUILD_SRC, LIB, PYTHON, RUNNER  # noqa: E402
import tracing  # noqa: E402,F401  (makes pymemtrace.trace importable)
from pymemtrace.trace import flamegraph_html, reports, unseen  # noqa: E402
from pymemtrace.trace.programs import Plan  # noqa: E402

MESON_BUILT = os.environ.get("PYMEMTRACE_REDIRECT_MESON", "")  # redirect flags, C++ ones too
CPYTHON_MADE = "not seen: what CPython allocates for the traced extensions"
CMEMLEAK = ["--lib", [os.path.join(LIB, name) for name in sorted(os.listdir(LIB))
                      if name.startswith("cMemLeak") and name.endswith(".so")][0]]
KEEP = "import sys; sys.path.insert(0, sys.argv[1]); from pymemtrace import cMemLeak; " \
       "kept = cMemLeak.CMalloc(1234)"


def run(args, pythonpath=""):
    """(report, standard error) of a run of the runner with `args`, which must succeed; the
    command's PYTHONPATH is `pythonpath` (none by default: only what --lib names is traced)."""
    with tempfile.TemporaryDirectory() as directory:
        path = os.path.join(directory, "report")
        env = {name: value for name, value in os.environ.items() if name != "PYTHONPATH"}
        if pythonpath:
            env["PYTHONPATH"] = pythonpath
        result = subprocess.run([PYTHON, RUNNER, "-o", path, *args], capture_output=True,
                                text=True, timeout=180, cwd=directory, env=env)
        report = open(path).read() if os.path.exists(path) else ""
    assert result.returncode == 0, result.stderr[-800:]
    return report, result.stderr


def test_the_text_summary_and_leaks_of_cmemleak_say_after_their_totals_what_they_cannot_see():
    for report in ("summary", "leaks"):
        text, _ = run(["--report", report, *CMEMLEAK, "--", PYTHON, "-c", KEEP, BUILD_SRC])
        total = re.search(r"^Total: .*$", text, re.M)
        assert total and ("1234" in text or report == "leaks"), text  # freed at exit
        after = text[total.end():]
        assert CPYTHON_MADE in after and "pymemtrace._hooks.install()" in after, text
        # cMemLeak's C++ part calls operator new, and it is not built with the C++ flags
        assert re.search(r"not seen: the C\+\+ heap \(operator new/delete\) of "
                         r"cMemLeak\.\S+\.so, built without the C\+\+ flags", after), text


def test_a_json_list_and_folded_say_it_on_stderr_and_json_lines_in_a_not_seen_list():
    listed, err = run(["--json", *CMEMLEAK, "--", PYTHON, "-c", KEEP, BUILD_SRC])
    assert isinstance(json.loads(listed), list)
    assert f"pymemtrace-trace: {CPYTHON_MADE}" in err, err
    stacks, err = run(["--format", "folded", *CMEMLEAK, "--", PYTHON, "-c", KEEP, BUILD_SRC])
    assert CPYTHON_MADE not in stacks and f"pymemtrace-trace: {CPYTHON_MADE}" in err, err
    line = render("json", json_lines=True, not_seen=("not seen: this",))
    assert json.loads(line)["not_seen"] == ["not seen: this"], line


def test_a_redirect_built_extension_found_on_sys_path_says_what_cpython_made_is_not_seen():
    workload = os.path.join(ROOT, "tests", "redirect", "workload.py")
    text, _ = run(["--", PYTHON, "-c", "import workload; workload.main()"],
                  pythonpath=os.pathsep.join([MESON_BUILT, os.path.dirname(workload)]))
    total = re.search(r"^Total: .*$", text, re.M)
    assert total and "workload.py" in text, text
    assert CPYTHON_MADE in text[total.end():], text
    assert "C++ heap (operator new/delete) of redirected" not in text, text  # built with them


def render(form, **view):
    """A summary of one location in `form`, as reports.report writes it."""
    out = io.StringIO()
    maps = {"@alloc": {"4242,/app/a.py,f,3,0,6": {"count": 1, "total": 64}}}
    plan = Plan("pymemtrace_summary", [], "summary", -1)
    reports.report(out, plan, "summary", False, maps, [], reports.Shortener(True, 128),
                   reports.View(form=form, **view))
    return out.getvalue()


def test_the_html_page_states_what_it_cannot_see_as_escaped_text(tmp_path):
    """Rendered by headless Chromium (tools/install-deps.sh installs it and the page's
    libraries): the sentence is the paragraph's text, its markup never an element."""
    hostile = "not seen: the C++ heap of <b id=forged>x</b>.so"
    page = tmp_path / "report.html"
    page.write_text(render("html", scripts=flamegraph_html.scripts(), not_seen=(hostile,)))
    with tempfile.TemporaryDirectory() as profile:
        dom = subprocess.run(
            ["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
             "--virtual-time-budget=3000", f"--user-data-dir={profile}", "--dump-dom",
             f"file://{page}"], capture_output=True, text=True, timeout=120).stdout
    shown = re.search(r'<p id="not-seen">(.*?)</p>', dom, re.S)
    assert shown and shown[1] == html.escape(hostile, quote=False), dom[-2000:]
    assert 'id="forged"' not in dom


def test_copies_of_one_extension_in_several_builds_are_each_named_by_path_once(tmp_path):
    """A scan of sys.path may find the same extension built in several places: each copy's
    sentence names its whole path (four identical lines naming cMemLeak.so were printed, seen),
    and a file traced through two names is said once."""
    built = CMEMLEAK[1]
    copies = []
    for place in ("one", "two"):
        (tmp_path / place).mkdir()
        copies.append(str(tmp_path / place / os.path.basename(built)))
        with open(built, "rb") as source, open(copies[-1], "wb") as copy:
            copy.write(source.read())
    lines = unseen.not_seen(copies + [copies[0]])
    heap = [line for line in lines if "C++ heap" in line]
    assert len(heap) == 2 and all(any(path in line for line in heap) for path in copies), lines
    assert unseen.not_seen([built]) == unseen.not_seen([built, built])
    assert [line for line in unseen.not_seen([built]) if "C++ heap" in line] == [
        f"not seen: the C++ heap (operator new/delete) of {os.path.basename(built)}, built "
        "without the C++ flags; rebuild it with `pkg-config --libs pymemtrace-redirect`"]
