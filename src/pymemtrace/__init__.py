# SPDX-License-Identifier: MIT
"""pymemtrace: USDT probes for the allocations of Python C extensions.

cMemLeak (`from pymemtrace import cMemLeak`) holds blocks of memory from each allocator domain,
for watching the probes fire. get_include(), redirect_cflags() and redirect_ldflags() give a
build what it needs to trace an unmodified extension (docs/extensions.md); from a shell:
`python3 -m pymemtrace --cflags --libs`.
"""
import json
import os

__version__ = "0.1.0"

_HERE = os.path.dirname(os.path.abspath(__file__))


def _build_tree_include():
    """The source tree's include/ when this package is a meson build tree's (<build>/src/)."""
    info = os.path.join(os.path.dirname(os.path.dirname(_HERE)), "meson-info", "meson-info.json")
    try:
        with open(info, encoding="utf-8") as meson_info:
            return os.path.join(json.load(meson_info)["directories"]["source"], "include")
    except (OSError, ValueError, KeyError, TypeError):
        return None


def get_include():
    """The directory that holds pymemtrace/*.h: the copy installed inside this package, the
    source tree's include/ (run from src/), or that of the build tree this package is in."""
    for candidate in (os.path.join(_HERE, "include"),
                      os.path.join(os.path.dirname(os.path.dirname(_HERE)), "include"),
                      _build_tree_include()):
        if candidate and os.path.isfile(os.path.join(candidate, "pymemtrace", "redirect.h")):
            return candidate
    raise FileNotFoundError("pymemtrace's headers are not installed with this package")


def redirect_cflags():
    """Compiler flags that send every allocation of a translation unit to the traced twins."""
    return ["-I" + get_include(), "-include", "pymemtrace/redirect.h"]


# Every replaceable global operator new and delete (x86-64 and aarch64 names), whose wrappers
# include/pymemtrace/cxxheap.h defines; the same list as meson.build's.
CXX_WRAPPED = ["_Znwm", "_Znam", "_ZnwmRKSt9nothrow_t", "_ZnamRKSt9nothrow_t",
                "_ZnwmSt11align_val_t", "_ZnamSt11align_val_t",
                "_ZnwmSt11align_val_tRKSt9nothrow_t", "_ZnamSt11align_val_tRKSt9nothrow_t",
                "_ZdlPv", "_ZdaPv", "_ZdlPvm", "_ZdaPvm", "_ZdlPvRKSt9nothrow_t",
                "_ZdaPvRKSt9nothrow_t", "_ZdlPvSt11align_val_t", "_ZdaPvSt11align_val_t",
                "_ZdlPvmSt11align_val_t", "_ZdaPvmSt11align_val_t",
                "_ZdlPvSt11align_val_tRKSt9nothrow_t", "_ZdaPvSt11align_val_tRKSt9nothrow_t"]


def redirect_ldflags():
    """Linker flags that send the extension's own malloc/calloc/realloc/free and C++ operator
    new/delete to traced wrappers (a C-only link has no operator to wrap)."""
    return ["-Wl,--wrap=malloc,--wrap=calloc,--wrap=realloc,--wrap=free",
            "-Wl,--wrap=" + ",--wrap=".join(CXX_WRAPPED)]
