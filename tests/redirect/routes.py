# SPDX-License-Identifier: MIT
"""Builds of tests/redirect/ext through each route of docs/extensions.md, outside meson: plain
`-include` with cc, and pkg-config + pip (setuptools) from a `meson install --destdir` prefix.
Meson's own two builds (plain/, meson_dep/) come from the environment meson gives the tests."""
import glob
import importlib.util
import os
import shutil
import subprocess
import sysconfig

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.environ.get("PYMEMTRACE_SOURCE_ROOT", os.path.dirname(os.path.dirname(HERE)))
EXT = os.path.join(HERE, "ext")
PYTHON = "/usr/bin/python3"  # the one meson built for (Debian's)


def _package_ldflags():
    """The source tree's pymemtrace.redirect_ldflags(): what pkg-config and `python3 -m pymemtrace`
    must give (test_builds checks both against it, and the built .so against its C++ list)."""
    spec = importlib.util.spec_from_file_location(
        "pymemtrace_source", os.path.join(ROOT, "src", "pymemtrace", "__init__.py"))
    package = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(package)
    return package.redirect_ldflags()


# The C heap, then every replaceable global operator new and delete (sized, aligned, nothrow).
WRAP = _package_ldflags()
CXX_WRAPPED = [name.rstrip(",") for name in WRAP[1].split("--wrap=")[1:]]


def run(command, **kwargs):
    result = subprocess.run(command, capture_output=True, text=True, **kwargs)
    assert result.returncode == 0, f"{command} failed:\n{result.stdout}\n{result.stderr}"
    return result


def meson_builds():
    """{route: directory} of the builds meson made."""
    return {"plain": os.environ["PYMEMTRACE_REDIRECT_PLAIN"],
            "meson dep": os.environ["PYMEMTRACE_REDIRECT_MESON"]}


def cython():
    return os.environ.get("PYMEMTRACE_CYTHON") or shutil.which("cython3")


def build_with_include(out):
    """The plain route: `cc -include pymemtrace/redirect.h` and the --wrap flags, by hand."""
    suffix = sysconfig.get_config_var("EXT_SUFFIX")
    flags = ["-O2", "-fPIC", "-Wall", "-Werror", "-I" + os.path.join(ROOT, "include"),
             "-I" + sysconfig.get_paths()["include"], "-include", "pymemtrace/redirect.h"]
    os.makedirs(out, exist_ok=True)
    c_obj, cxx_obj = os.path.join(out, "redirected.o"), os.path.join(out, "cxx_part.o")
    run(["gcc", "-std=c99", *flags, "-c", os.path.join(EXT, "redirected.c"), "-o", c_obj])
    run(["g++", "-std=c++17", *flags, "-c", os.path.join(EXT, "cxx_part.cpp"), "-o", cxx_obj])
    run(["g++", "-shared", c_obj, cxx_obj, *WRAP, "-o", os.path.join(out, "redirected" + suffix)])
    if cython():
        generated = os.path.join(out, "cyblocks.c")
        run([cython(), "-3", os.path.join(EXT, "cyblocks.pyx"), "-o", generated])
        run(["gcc", *[f for f in flags if f != "-Werror"], "-shared", generated, *WRAP,
             "-o", os.path.join(out, "cyblocks" + suffix)])
    return out


def install_prefix(destdir):
    """`meson install --destdir` of this build; returns the prefix inside destdir."""
    build = os.environ["PYMEMTRACE_BUILD"]
    run(["meson", "install", "-C", build, "--no-rebuild", "--quiet", "--destdir", destdir])
    prefix = run(["meson", "introspect", "--buildoptions", build]).stdout
    import json
    value = next(o["value"] for o in json.loads(prefix) if o["name"] == "prefix")
    return destdir + value


def pkg_config(prefix, *args):
    """pkg-config of the prefix's .pc files, their prefix moved to where they are."""
    dirs = glob.glob(os.path.join(prefix, "lib", "**", "pkgconfig"), recursive=True)
    env = dict(os.environ, PKG_CONFIG_PATH=":".join(dirs))
    return run(["pkg-config", f"--define-variable=prefix={prefix}", *args], env=env).stdout.split()


def build_with_pip(prefix, out):
    """The setuptools route: CFLAGS/LDFLAGS from pkg-config, pip install --no-build-isolation."""
    source = os.path.join(out, "source")
    shutil.copytree(EXT, source, ignore=shutil.ignore_patterns("__pycache__", "*.so", "build"))
    env = dict(os.environ,
               CFLAGS=" ".join(pkg_config(prefix, "--cflags", "pymemtrace-redirect")),
               LDFLAGS=" ".join(pkg_config(prefix, "--libs", "pymemtrace-redirect")))
    target = os.path.join(out, "target")
    run([PYTHON, "-m", "pip", "install", "--quiet", "--no-build-isolation", "--no-index",
         "--no-cache-dir", "--target", target, source], env=env, cwd=out)
    return target


def own_tests(directory):
    """Runs the extension's own tests against the build in `directory`."""
    env = dict(os.environ, PYTHONPATH=directory, PYTHONDONTWRITEBYTECODE="1")
    return subprocess.run([PYTHON, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                           os.path.join(EXT, "test_ext.py")],
                          capture_output=True, text=True, env=env, cwd=directory)


def has_pymemtrace_probes(path):
    out = subprocess.run(["readelf", "-n", path], capture_output=True, text=True).stdout
    return "Provider: pymemtrace" in out
