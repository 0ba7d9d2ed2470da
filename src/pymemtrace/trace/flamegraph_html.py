# SPDX-License-Identifier: MIT
"""--report html: one self-contained page (no network fetch) with a flame graph of the bytes
(allocated for summary, still allocated for leaks) drawn by d3-flame-graph, and a sortable
table of the locations.

The JavaScript (d3, d3-flame-graph) comes from npm: `tools/install-deps.sh` runs `npm ci` in
tools/flamegraph/ (its package.json and package-lock.json pin the versions), and the page inlines
the files from $PYMEMTRACE_FLAMEGRAPH_JS (a directory where `npm ci` was run on that
package.json) if set, else from flamegraph/ beside this module (where `meson install` and a wheel
put them), else from the source tree's tools/flamegraph. The runner itself stays
standard-library Python.

Names come from the target and are hostile: they reach the page only as JSON inside a
`<script type="application/json">` with <, > and & escaped (no `</script>` breakout), and the
page's code puts them in the DOM as text (textContent, d3's .text()), never as HTML. A Content
Security Policy allows only the page's own scripts (by hash) and no fetch at all."""
import base64
import hashlib
import json
import os

from .errors import Failure
from .locations import domain_name, frame_label, frames_with_native, ranked

JS_DIR_VARIABLE = "PYMEMTRACE_FLAMEGRAPH_JS"
HERE = os.path.dirname(os.path.abspath(__file__))
INSTALLED_JS_DIR = os.path.join(HERE, "flamegraph")
SOURCE_TREE_JS_DIR = os.path.normpath(os.path.join(HERE, "..", "..", "..", "tools", "flamegraph"))
# The same two files src/pymemtrace/meson.build installs into INSTALLED_JS_DIR.
FILES = ("node_modules/d3/dist/d3.min.js",
         "node_modules/d3-flame-graph/dist/d3-flamegraph.umd.min.js")

TITLES = {"summary": "Allocated bytes by Python location",
          "leaks": "Bytes still allocated (leaked) by Python location"}


def scripts():
    """The JavaScript files' texts, d3 first; a Failure that says how to install them."""
    directory = os.environ.get(JS_DIR_VARIABLE) or (
        INSTALLED_JS_DIR if os.path.isdir(INSTALLED_JS_DIR) else SOURCE_TREE_JS_DIR)
    texts = []
    for name in FILES:
        try:
            with open(os.path.join(directory, name), encoding="utf-8") as file:
                texts.append(file.read())
        except OSError:
            raise Failure(f"--report html needs d3 and d3-flame-graph, which are not installed "
                          f"(no {os.path.join(directory, name)})",
                          "in the source tree, run bash tools/install-deps.sh (it runs npm ci in "
                          "tools/flamegraph) before meson setup and install again; or set "
                          f"{JS_DIR_VARIABLE} to a directory where npm ci installed "
                          "tools/flamegraph/package.json") from None
        if "</script" in texts[-1].lower():
            raise Failure(f"{name} holds '</script': it cannot be inlined in a page",
                          "reinstall it with tools/install-deps.sh")
    return texts


def tree(entries):
    """d3-flame-graph's data: {name, value, children}, the outermost frame at the top of the
    root "all"; a node's value is its bytes and its children's (domains summed)."""
    root = {"name": "all", "value": 0, "children": {}}
    for entry in entries:
        node = root
        node["value"] += entry["bytes"]
        for frame in reversed(frames_with_native(entry)):
            node = node["children"].setdefault(frame_label(frame),
                                               {"name": frame_label(frame), "value": 0,
                                                "children": {}})
            node["value"] += entry["bytes"]

    def listed(node):
        children = sorted(node["children"].values(), key=lambda n: (-n["value"], n["name"]))
        return {"name": node["name"], "value": node["value"],
                "children": [listed(child) for child in children]}
    return listed(root)


def data(wanted, entries, lost, not_seen=()):
    rows = [{"bytes": e["bytes"], "count": e["count"], "domain": e["domain"],
             "domain_name": domain_name(e["domain"]),
             "frames": [frame_label(frame) for frame in frames_with_native(e)]}
            for e in ranked(entries)]
    return {"kind": wanted, "title": TITLES.get(wanted, TITLES["summary"]),
            "unit": "block" if wanted == "leaks" else "allocation",
            "bytes": sum(e["bytes"] for e in entries), "count": sum(e["count"] for e in entries),
            "lost": list(lost), "not_seen": list(not_seen), "rows": rows, "tree": tree(entries)}


def embedded_json(value):
    """JSON that no HTML parser reads as markup: <, > and & as \\u escapes."""
    text = json.dumps(value, ensure_ascii=True, separators=(",", ":"))
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _hash(script):
    return "'sha256-" + base64.b64encode(hashlib.sha256(script.encode()).digest()).decode() + "'"


def page(wanted, entries, lost, libraries, not_seen=()):
    code = [*libraries, PAGE_SCRIPT]
    policy = ("default-src 'none'; style-src 'unsafe-inline'; script-src "
              + " ".join(_hash(script) for script in code))
    title = TITLES.get(wanted, TITLES["summary"])
    return (PAGE_HEAD.format(policy=policy, title=title)
            + '<script type="application/json" id="report-data">'
            + embedded_json(data(wanted, entries, lost, not_seen)) + "</script>\n"
            + "".join(f"<script>{script}</script>\n" for script in code)
            + "</body>\n</html>\n")


def write(out, wanted, entries, lost, libraries, not_seen=()):
    out.write(page(wanted, entries, lost, libraries if libraries is not None else scripts(),
                   not_seen))


# Only constant text here: every name reaches the page through the JSON above.
PAGE_HEAD = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="{policy}">
<title>pymemtrace: {title}</title>
<style>
body {{ font-family: sans-serif; margin: 1em; }}
#incomplete {{ color: #a00; font-weight: bold; }}
#details {{ min-height: 1.5em; font-family: monospace; }}
table {{ border-collapse: collapse; margin-top: 1em; }}
th, td {{ padding: 2px 8px; border-bottom: 1px solid #ddd; font-family: monospace; }}
th {{ cursor: pointer; background: #f4f4f4; user-select: none; text-align: left; }}
td.number {{ text-align: right; }}
</style>
</head>
<body>
<h1 id="title">pymemtrace: {title}</h1>
<p id="totals"></p>
<p id="incomplete" hidden></p>
<div id="chart"></div>
<div id="details"></div>
<table id="locations">
<thead><tr><th data-key="bytes">bytes</th><th data-key="share">%</th><th data-key="count">count</th><th data-key="domain">domain</th><th data-key="location">file:line function (&lt; callers)</th></tr></thead>
<tbody></tbody>
</table>
<p id="not-seen" hidden></p>
"""

PAGE_SCRIPT = """
(function () {
  "use strict";
  var report = JSON.parse(document.getElementById("report-data").textContent);
  function words(number, word) { return number + " " + word + (number === 1 ? "" : "s"); }
  document.getElementById("totals").textContent = report.bytes + " bytes in " +
      words(report.count, report.unit) + ", " + words(report.rows.length, "location");
  if (report.lost.length) {
    var incomplete = document.getElementById("incomplete");
    incomplete.textContent = "INCOMPLETE: " + report.lost.join("; ");
    incomplete.hidden = false;
  }
  if (report.not_seen.length) {
    var notSeen = document.getElementById("not-seen");
    notSeen.textContent = report.not_seen.join("; ");
    notSeen.hidden = false;
  }
  var chart = flamegraph.default()
      .width(Math.max(600, document.getElementById("chart").clientWidth || 1200))
      .cellHeight(18)
      .transitionDuration(0)
      .minFrameSize(1)
      .sort(true)
      .label(function (d) { return d.data.name + ": " + d.value + " bytes"; })
      .setDetailsElement(document.getElementById("details"));
  d3.select("#chart").datum(report.tree).call(chart);

  var rows = report.rows.map(function (row) {
    return {bytes: row.bytes, count: row.count, domain: row.domain_name,
            share: report.bytes ? 100 * row.bytes / report.bytes : 0,
            location: row.frames.join(" < ")};
  });
  var body = document.querySelector("#locations tbody");
  function render() {
    body.replaceChildren();
    rows.forEach(function (row) {
      var tr = document.createElement("tr");
      [String(row.bytes), row.share.toFixed(1) + "%", String(row.count), row.domain,
       row.location].forEach(function (text, index) {
        var td = document.createElement("td");
        td.textContent = text;
        if (index < 3) td.className = "number";
        tr.appendChild(td);
      });
      body.appendChild(tr);
    });
  }
  var order = {key: "bytes", descending: true};
  document.querySelectorAll("#locations th").forEach(function (th) {
    th.addEventListener("click", function () {
      var key = th.dataset.key;
      order = {key: key, descending: order.key === key ? !order.descending : key !== "location"};
      rows.sort(function (a, b) {
        var x = a[key], y = b[key];
        var c = x < y ? -1 : x > y ? 1 : 0;
        return order.descending ? -c : c;
      });
      document.querySelectorAll("#locations th").forEach(function (other) {
        other.removeAttribute("aria-sort");
      });
      th.setAttribute("aria-sort", order.descending ? "descending" : "ascending");
      render();
    });
  });
  document.querySelector('#locations th[data-key="bytes"]').setAttribute("aria-sort",
                                                                          "descending");
  render();
  // Drawn: the signal a reader of the page waits for (tests/support/devtools.py), not a delay.
  // d3-flame-graph grows new frames in over 250 ms whatever transitionDuration says, and d3
  // keeps a node's pending transitions in node.__transition until they have run.
  (function whenDrawn() {
    var moving = Array.prototype.some.call(document.querySelectorAll("#chart *"),
                                           function (node) { return node.__transition; });
    if (moving) requestAnimationFrame(whenDrawn);
    else document.documentElement.dataset.drawn = "1";
  })();
})();
"""
