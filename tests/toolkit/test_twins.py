#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Every D script of toolkit/ has a bpftrace twin naming the same probes and printing the same
lines. No root, no tracer: the scripts are read as text."""
import os
import re
import sys

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


def main():
    failures = []
    scripts = sorted(name for name in os.listdir(TOOLKIT) if name.endswith(".d"))
    if len(scripts) < 6:
        failures.append(f"expected at least 6 D scripts, found {scripts}")
    for script in scripts:
        twin = script[:-2] + ".bt"
        d_path, bt_path = os.path.join(TOOLKIT, script), os.path.join(TOOLKIT, twin)
        if not os.path.exists(bt_path):
            failures.append(f"{script}: no bpftrace twin {twin}")
            continue
        d_text, bt_text = open(d_path).read(), open(bt_path).read()
        if not d_text.startswith("#!/usr/sbin/dtrace -Cs\n"):
            failures.append(f"{script}: first line must be #!/usr/sbin/dtrace -Cs")
        if "#pragma D option quiet" not in d_text:
            failures.append(f"{script}: no #pragma D option quiet")
        d_formats, bt_formats = formats(d_text), formats(bt_text)
        if d_formats != bt_formats:
            failures.append(f"{script} and {twin} print different lines:\n"
                            f"  only in D:  {sorted(set(d_formats) - set(bt_formats))}\n"
                            f"  only in bt: {sorted(set(bt_formats) - set(d_formats))}")
        dp, bp = d_probes(d_text), bt_probes(bt_text)
        if dp != bp:
            failures.append(f"{script} and {twin} name different probes:\n"
                            f"  only in D: {sorted(dp - bp)}\n  only in bt: {sorted(bp - dp)}")
        if not d_formats:
            failures.append(f"{script}: no printf found")
        print(f"ok: {script} ~ {twin}: {len(d_formats)} formats, {len(dp)} probes")
    for failure in failures:
        print("FAIL: " + failure)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
