# SPDX-License-Identifier: MIT
"""Every D script of toolkit/ has a bpftrace twin naming the same probes and printing the same
lines. No root, no tracer: the scripts are read as text."""
import os
import re

import pytest

TOOLKIT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "toolkit")

PRINTF = re.compile(r'\bprintf\("((?:[^"\\]|\\.)*)"')


def without_comments(text):
    text = re.sub(r"/\*.*?\*/", "", text, flags=re.S)
    return re.sub(r"^\s*//.*$", "", text, flags=re.M)


def formats(text):
    return sorted(set(PRINTF.findall(without_comments(text))))


def d_probes(text):
    """(provider, name) of each probe a D script enables, in bpftrace's spelling."""
    found = set()
    for provider, name in re.findall(r"^\s*(?:[^/{]*?,\s*)?(\w+)\$target:::([\w-]+)", text, re.M):
        found.add((provider, name.replace("-", "__")))
    for provider, name in re.findall(r"(\w+)\$target:::([\w-]+)", text):
        found.add((provider, name.replace("-", "__")))
    for function, where in re.findall(r"pid\$target:[\w*.]*:(\w+):(entry|return)", text):
        found.add(("uprobe" if where == "entry" else "uretprobe", function))
    return found


def bt_probes(text):
    found = set()
    for provider, name in re.findall(r"^usdt:[^:\s]+:(\w+):(\w+)", text, re.M):
        found.add((provider, name))
    for kind, function in re.findall(r"^(uprobe|uretprobe):[^:\s]+:(\w+)", text, re.M):
        found.add((kind, function))
    return found


SCRIPTS = sorted(name for name in os.listdir(TOOLKIT) if name.endswith(".d"))


def test_there_are_the_d_scripts_of_the_seed():
    assert len(SCRIPTS) >= 6, SCRIPTS


@pytest.mark.parametrize("script", SCRIPTS)
def test_a_d_script_and_its_bpftrace_twin_name_the_same_probes_and_lines(script):
    twin = script[:-2] + ".bt"
    bt_path = os.path.join(TOOLKIT, twin)
    assert os.path.exists(bt_path), f"{script}: no bpftrace twin {twin}"
    d_text, bt_text = open(os.path.join(TOOLKIT, script)).read(), open(bt_path).read()
    assert d_text.startswith("#!/usr/sbin/dtrace -Cs\n"), "first line: #!/usr/sbin/dtrace -Cs"
    assert "#pragma D option quiet" in d_text
    d_formats, bt_formats = formats(d_text), formats(bt_text)
    assert d_formats, f"{script}: no printf found"
    assert d_formats == bt_formats, (f"only in D: {sorted(set(d_formats) - set(bt_formats))}, "
                                     f"only in bt: {sorted(set(bt_formats) - set(d_formats))}")
    dp, bp = d_probes(d_text), bt_probes(bt_text)
    assert dp == bp, f"only in D: {sorted(dp - bp)}, only in bt: {sorted(bp - dp)}"
