# SPDX-License-Identifier: MIT
"""--report html opened in headless Chromium (Debian's `chromium`): the flame graph and the
table render the traced locations, the page works offline, and a hostile name stays text. Real
bpftrace on real processes; run through tests/support/run_pytest.py with
PYTHONPATH=<builddir>/src. Needs chromium and the page's JavaScript (tools/install-deps.sh).

Chromium is driven through its DevTools pipe (tests/support/devtools.py): the DOM and the
screenshot are taken once the page says it is drawn, so that a loaded machine cannot catch it
half painted (--screenshot with a time budget did, in loaded CI runs)."""
import html.parser
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import zlib

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, os.path.join(ROOT, "tests", "support"))
import callers  # noqa: E402
import devtools  # noqa: E402
import tracing  # noqa: E402,F401  (makes pymemtrace.trace importable)
from runner import BUILD_SRC, PYTHON, RUNNER  # noqa: E402
from pymemtrace.trace import flamegraph_html  # noqa: E402
from pymemtrace.trace.errors import Failure  # noqa: E402

DRAWN = "document.documentElement.dataset.drawn"  # set by the page's script once it has drawn


@pytest.fixture(scope="module", autouse=True)
def browser_and_javascript():
    """Both are installed by tools/install-deps.sh: missing is a failure, not a skip."""
    assert shutil.which("chromium"), "chromium is not installed: bash tools/install-deps.sh"
    try:
        flamegraph_html.scripts()
    except Failure as failure:
        pytest.fail(f"{failure} ({failure.fix})")


def html_report(args, page):
    result = subprocess.run([PYTHON, RUNNER, "-o", page, *args], capture_output=True, text=True,
                            timeout=180)
    assert result.returncode == 0 and os.path.exists(page), result.stderr[-500:]


def rendered_dom(page):
    return devtools.render(page, DRAWN)[0]


class Dom(html.parser.HTMLParser):
    """What a test reads of the rendered page: every element's tag and attributes, the flame
    graph's frame labels, the table's rows."""

    def __init__(self, text):
        super().__init__(convert_charrefs=True)
        self.elements, self.labels, self.rows, self.titles = [], [], [], []
        self._label = self._cell = self._title = None
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.elements.append((tag, attrs))
        if tag == "div" and attrs.get("class") == "d3-flame-graph-label":
            self._label = ""
        elif tag == "tr":
            self.rows.append([])
        elif tag == "td":
            self._cell = ""
        elif tag == "title":
            self._title = ""

    def handle_endtag(self, tag):
        if tag == "div" and self._label is not None:
            self.labels.append(self._label)
            self._label = None
        elif tag == "td" and self._cell is not None:
            self.rows[-1].append(self._cell)
            self._cell = None
        elif tag == "title" and self._title is not None:
            self.titles.append(self._title)
            self._title = None

    def handle_data(self, data):
        if self._label is not None:
            self._label += data
        if self._cell is not None:
            self._cell += data
        if self._title is not None:
            self._title += data

    def frames(self):
        """{frame name: its attributes} of the flame graph's <g class="frame">."""
        return {attrs["name"]: attrs for tag, attrs in self.elements
                if tag == "g" and attrs.get("class", "").startswith("frame")}


def png_pixels(path):
    """(width, height, rows of RGB(A) bytes) of an 8-bit RGB or RGBA PNG, unfiltered."""
    data = open(path, "rb").read()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    offset, chunks = 8, {}
    while offset < len(data):
        length, kind = struct.unpack(">I4s", data[offset:offset + 8])
        chunks.setdefault(kind, []).append(data[offset + 8:offset + 8 + length])
        offset += 12 + length
    width, height, depth, color = struct.unpack(">IIBB", chunks[b"IHDR"][0][:10])
    assert depth == 8 and color in (2, 6), (depth, color)
    step = 3 if color == 2 else 4
    raw = zlib.decompress(b"".join(chunks[b"IDAT"]))
    stride, rows, previous = width * step, [], bytearray(width * step)
    for y in range(height):
        kind, line = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for x in range(stride):
            left = line[x - step] if x >= step else 0
            up, corner = previous[x], previous[x - step] if x >= step else 0
            if kind == 1:
                line[x] = (line[x] + left) & 255
            elif kind == 2:
                line[x] = (line[x] + up) & 255
            elif kind == 3:
                line[x] = (line[x] + (left + up) // 2) & 255
            elif kind == 4:
                p = left + up - corner
                pa, pb, pc = abs(p - left), abs(p - up), abs(p - corner)
                line[x] = (line[x] + (left if pa <= pb and pa <= pc else up if pb <= pc
                                      else corner)) & 255
        rows.append(line)
        previous = line
    return width, height, step, rows


def test_the_page_of_three_callers_renders_the_flame_graph_and_the_table(tmp_path):
    script, line = callers.write(str(tmp_path))
    page = str(tmp_path / "report.html")
    html_report(["--report", "html", "--", PYTHON, script, BUILD_SRC], page)
    dom = Dom(rendered_dom(page))
    total = sum(callers.CALLERS.values())
    frame = f"wrapper.py:{line} make"
    frames = dom.frames()
    assert set(frames) == {"all", frame}, frames  # depth 1: every byte at the wrapper
    assert frame in dom.labels, dom.labels  # drawn wide enough to carry its name
    assert f"{frame}: {total} bytes" in dom.titles, dom.titles  # the frame's tooltip
    assert [row for row in dom.rows if row] == [
        [str(total), "100.0%", str(callers.BLOCKS), "C heap", frame]], dom.rows
    assert not [tag for tag, _ in dom.elements if tag in ("img", "iframe", "link")]


def test_at_depth_2_the_page_shows_the_three_callers_above_the_wrapper(tmp_path):
    """--depth 2: each caller is a frame of its own, as wide as the bytes it asked for, and the
    wrapper's frame sits on each of them (a flame graph draws callers below)."""
    script, line = callers.write(str(tmp_path))
    page = str(tmp_path / "report.html")
    html_report(["--report", "html", "--depth", "2", "--", PYTHON, script, BUILD_SRC], page)
    dom = Dom(rendered_dom(page))
    text = open(script).read()
    calls = {name: callers.line_of(text, f"kept.append(wrapper.make({size // count}))")
             for name, size, count in (("alpha", 3000, 3), ("beta", 4000, 2),
                                       ("gamma", 3000, 1))}
    for name, bytes_ in callers.CALLERS.items():
        frame = f"callers.py:{calls[name]} {name}"
        assert frame in dom.frames(), dom.frames()
        assert f"{frame}: {bytes_} bytes" in dom.titles, dom.titles
    assert f"wrapper.py:{line} make" in dom.frames(), dom.frames()


def test_the_screenshot_shows_the_flame_graph(tmp_path):
    script, _line = callers.write(str(tmp_path))
    page = str(tmp_path / "report.html")
    html_report(["--report", "html", "--", PYTHON, script, BUILD_SRC], page)
    shot = tmp_path / "shot.png"
    shot.write_bytes(devtools.render(page, DRAWN)[1])
    width, height, step, rows = png_pixels(str(shot))
    # d3-flame-graph's frames are warm colours (red to yellow); a page without it has none. Its
    # two frames (all, and the wrapper) are rows 18 pixels high, each as wide as the graph: more
    # than one row's worth, 24 lines of the screenshot, are warm over half the width at least.
    # (Frames grow in over 250 ms: taken before they had, loaded runs caught them at 1,943 to
    # 36,953 warm pixels; the page now says when it is drawn, and the shot waits for that.)
    painted = [sum(1 for x in range(0, width * step, step)
                   if row[x] > 180 and row[x + 2] < 90 and row[x] - row[x + 2] > 120)
               for row in rows]
    lines = sum(1 for warm in painted if warm >= width // 2)
    assert lines >= 24, f"{lines} lines warm over half the width in {width}x{height}: " \
                        f"no flame graph, or one not fully drawn ({sum(painted)} warm pixels)"


def test_a_hostile_name_in_the_page_stays_text_and_runs_nothing(tmp_path):
    """A script in a directory named `<`, itself named `script><img src=x onerror=...>.py`: with
    --full-file-path its name holds `</script><img ...>`. Its function's name is hostile too.
    (A short directory: bpftrace reads 128 bytes of a path.)"""
    directory = os.path.join(tempfile.mkdtemp(prefix="h", dir="/tmp"), "<")
    os.mkdir(directory)
    try:
        name = "script><img src=x onerror=document.body.dataset.p=1>.py"
        script, _line = callers.write(directory, name)
        text = open(script).read().replace(
            "alpha()\n", "hostile = '</script><svg onload=document.body.dataset.q=2>'\n"
                         "alpha.__code__ = alpha.__code__.replace(co_name=hostile, "
                         "co_qualname=hostile)\nalpha()\n", 1)  # 3.11+ reports co_qualname
        with open(script, "w") as file:  # alpha() allocates itself, under the hostile name
            file.write(text.replace("kept.append(wrapper.make(1000))",
                                    "kept.append(wrapper.cMemLeak.CMalloc(1000))"))
        page = str(tmp_path / "report.html")
        html_report(["--report", "html", "--full-file-path", "--", PYTHON, script, BUILD_SRC],
                    page)
    finally:
        shutil.rmtree(os.path.dirname(directory))
    dom = Dom(rendered_dom(page))
    injected = [(tag, attrs) for tag, attrs in dom.elements
                if tag == "img" or (tag == "svg" and "d3-flame-graph" not in attrs.get("class", ""))
                or "data-p" in attrs or "data-q" in attrs]
    assert not injected, injected
    hostile = [row for row in dom.rows if row and "</script><img src=x onerror=" in row[4]]
    assert len(hostile) == 1 and hostile[0][4].endswith(
        "</script><svg onload=document.body.dataset.q=2>"), dom.rows
    assert any("</script><img" in frame for frame in dom.frames()), dom.frames()
