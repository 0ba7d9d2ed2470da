# SPDX-License-Identifier: MIT
"""pymemtrace.trace.unseen: the sentences a report adds for what it cannot see in the traced
libraries, read from real builds (tests/redirect's, and one linking zlib). No root needed."""
import glob
import os
import shutil
import subprocess
import sys
import sysconfig

BUILD = os.environ["PYMEMTRACE_BUILD"]
sys.path.insert(0, os.path.join(os.environ["PYMEMTRACE_SOURCE_ROOT"], "src"))
from pymemtrace.trace.unseen import not_seen  # noqa: E402


def module(directory, name):
    return glob.glob(os.path.join(directory, name + ".*so"))[0]


PLAIN = module(os.environ["PYMEMTRACE_REDIRECT_PLAIN"], "redirected")
REDIRECTED = module(os.environ["PYMEMTRACE_REDIRECT_MESON"], "redirected")
HOOKS = module(os.path.join(BUILD, "src", "pymemtrace"), "_hooks")


def test_every_report_says_that_cpython_made_objects_are_not_seen_and_names_the_hooks():
    lines = not_seen([REDIRECTED])
    assert len(lines) == 1 and "tp_alloc" in lines[0], lines
    assert "pymemtrace._hooks.install()" in lines[0], lines


def others(lines):
    """The lines about anything but CPython-made objects."""
    return [line for line in lines if "tp_alloc" not in line]


def test_with_the_hooks_traced_cpython_made_objects_are_unseen_unless_the_program_installed_them():
    """The hooks library is attached whenever it is importable (the scan finds it), installed by
    the program or not: the report cannot tell, so it says which case would see them."""
    lines = not_seen([REDIRECTED, HOOKS])
    assert len(lines) == 1 and lines[0].startswith("not seen unless the traced program "
                                                   "installed the hooks"), lines


def test_a_cxx_extension_built_without_the_cxx_flags_is_named_with_the_fix():
    lines = others(not_seen([PLAIN, HOOKS]))
    assert lines == [f"not seen: the C++ heap (operator new/delete) of {os.path.basename(PLAIN)}, "
                     "built without the C++ flags; rebuild it with "
                     "`pkg-config --libs pymemtrace-redirect`"], lines


def test_the_shared_libraries_an_extension_links_are_named(tmp_path):
    source = tmp_path / "zext.c"
    source.write_text("#include <zlib.h>\nunsigned long crc(void) { return crc32(0, 0, 0); }\n")
    built = str(tmp_path / ("zext" + sysconfig.get_config_var("EXT_SUFFIX")))
    subprocess.run(["gcc", "-shared", "-fPIC", str(source), "-lz", "-o", built], check=True)
    lines = others(not_seen([built, HOOKS]))
    assert len(lines) == 1 and "(libz.so.1)" in lines[0] and "zext" in lines[0], lines


def test_a_hostile_file_name_is_escaped_and_a_file_that_is_not_elf_tells_nothing(tmp_path):
    hostile = str(tmp_path / "x\x1b[2Jy.so")
    shutil.copy(PLAIN, hostile)
    lines = others(not_seen([hostile, HOOKS]))
    assert len(lines) == 1 and "\x1b" not in lines[0] and "x\\x1b[2Jy.so" in lines[0], lines
    junk = tmp_path / "junk.so"
    junk.write_bytes(b"\x7fELF\x02\x01" + b"\xff" * 100)
    assert others(not_seen([str(junk), str(tmp_path / "missing.so"), HOOKS])) == []
