# SPDX-License-Identifier: MIT
"""An unmodified extension (ext/) instrumented by build flags alone, through every route: the
builds have probes, the plain one has none, and the extension's own tests pass on each. Also the
installed package: .pc files, `python3 -m pymemtrace`, the runner and the scripts in the prefix.
No root needed."""
import glob
import os
import subprocess
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import routes  # noqa: E402


@pytest.fixture(scope="module")
def prefix(tmp_path_factory):
    return routes.install_prefix(str(tmp_path_factory.mktemp("destdir")))


@pytest.fixture(scope="module")
def builds(prefix, tmp_path_factory):
    found = routes.meson_builds()
    found["cc -include"] = routes.build_with_include(str(tmp_path_factory.mktemp("include")))
    found["pkg-config + pip"] = routes.build_with_pip(prefix, str(tmp_path_factory.mktemp("pip")))
    return found


ROUTES = ["plain", "meson dep", "cc -include", "pkg-config + pip"]


@pytest.mark.parametrize("route", ROUTES)
def test_the_extensions_own_tests_pass_on_every_build(builds, route):
    result = routes.own_tests(builds[route])
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("route", ROUTES)
def test_every_instrumented_build_has_probes_and_the_plain_one_none(builds, route):
    modules = glob.glob(os.path.join(builds[route], "*.so"))
    names = {os.path.basename(m).split(".")[0] for m in modules}
    assert names >= {"redirected"} | ({"cyblocks"} if routes.cython() else set()), modules
    for module in modules:
        assert routes.has_pymemtrace_probes(module) == (route != "plain"), module


@pytest.mark.parametrize("route", ROUTES[1:])
def test_pyobject_new_goes_to_its_twin_and_the_c_heap_to_the_wrappers(builds, route):
    module = glob.glob(os.path.join(builds[route], "redirected*.so"))[0]
    imported = subprocess.run(["nm", "-D", "--undefined-only", module], capture_output=True,
                              text=True).stdout
    defined = subprocess.run(["nm", module], capture_output=True, text=True).stdout
    assert "_PyObject_New" not in imported, "PyObject_New went to libpython, untraced"
    for name in ("__wrap_malloc", "__wrap_calloc", "__wrap_realloc", "__wrap_free"):
        assert name in defined, f"{name} is not in {module}"


@pytest.mark.parametrize("route", ROUTES[1:])
def test_every_operator_new_and_delete_the_flags_wrap_has_a_wrapper_in_the_cxx_extension(
        builds, route):
    """The C++ heap: each name of the flags' list is defined as __wrap_NAME by a C++ translation
    unit (cxxheap.h), so the list and the header agree, and none is left to libstdc++ untraced."""
    module = glob.glob(os.path.join(builds[route], "redirected*.so"))[0]
    defined = set(subprocess.run(["nm", "--defined-only", module], capture_output=True,
                                 text=True).stdout.split())
    missing = [name for name in routes.CXX_WRAPPED if "__wrap_" + name not in defined]
    assert not missing, f"no wrapper for {missing} in {module}"


def test_a_c_only_extension_links_and_imports_with_the_cxx_wraps(tmp_path):
    """A C link has no operator new to wrap: the same flags leave it no undefined __real_ or
    __wrap_ symbol, and it imports."""
    import sysconfig
    module = str(tmp_path / ("conly" + sysconfig.get_config_var("EXT_SUFFIX")))
    source = tmp_path / "conly.c"
    source.write_text("static struct PyModuleDef def = {PyModuleDef_HEAD_INIT, \"conly\"};\n"
                      "PyMODINIT_FUNC PyInit_conly(void) { free(malloc(1));"
                      " return PyModule_Create(&def); }\n")
    routes.run(["gcc", "-O2", "-fPIC", "-shared", "-I" + os.path.join(routes.ROOT, "include"),
                "-I" + sysconfig.get_paths()["include"], "-include", "pymemtrace/redirect.h",
                str(source), *routes.WRAP, "-o", module])
    undefined = subprocess.run(["nm", "-D", "--undefined-only", module], capture_output=True,
                               text=True).stdout
    assert "_Zn" not in undefined and "_Zd" not in undefined, undefined
    routes.run([routes.PYTHON, "-c", "import conly"], cwd=str(tmp_path))


def test_pkg_config_gives_the_include_directory_the_force_include_and_the_wraps(prefix):
    cflags = routes.pkg_config(prefix, "--cflags", "pymemtrace-redirect")
    libs = routes.pkg_config(prefix, "--libs", "pymemtrace-redirect")
    assert f"-I{prefix}/include" in cflags and "pymemtrace/redirect.h" in cflags, cflags
    assert all(flag in libs for flag in routes.WRAP), libs
    assert os.path.isfile(os.path.join(prefix, "include", "pymemtrace", "redirect.h"))
    assert routes.pkg_config(prefix, "--cflags", "pymemtrace") == [f"-I{prefix}/include"]


def installed_package(prefix):
    found = glob.glob(os.path.join(prefix, "lib", "python3*", "*-packages"))
    assert len(found) == 1, found
    return found[0]


def test_python_m_pymemtrace_gives_flags_that_point_into_the_installed_package(prefix):
    packages = installed_package(prefix)
    out = subprocess.run([routes.PYTHON, "-m", "pymemtrace", "--cflags", "--libs"],
                         capture_output=True, text=True,
                         env=dict(os.environ, PYTHONPATH=packages), cwd="/").stdout.split()
    include = os.path.join(packages, "pymemtrace", "include")
    assert out == [f"-I{include}", "-include", "pymemtrace/redirect.h", *routes.WRAP], out
    assert os.path.isfile(os.path.join(include, "pymemtrace", "python.h"))


def test_the_installed_runner_runs_from_the_prefix_and_the_scripts_are_in_share(prefix):
    runner = os.path.join(prefix, "bin", "pymemtrace-trace")
    result = subprocess.run([runner, "--help"], capture_output=True, text=True, cwd="/")
    assert result.returncode == 0 and "COMMAND" in result.stdout, result.stderr
    scripts = os.listdir(os.path.join(prefix, "share", "pymemtrace"))
    assert "pymemtrace_leaks.bt" in scripts and "pymemtrace_leaks.d" in scripts, scripts


def test_python_m_pymemtrace_works_from_the_build_tree():
    """PYTHONPATH=<build>/src, as the README's commands and meson devenv set it: the flags name
    the source tree's headers (it used to say "No module named pymemtrace.__main__")."""
    build_src = os.path.join(os.environ["PYMEMTRACE_BUILD"], "src")
    done = subprocess.run([sys.executable, "-m", "pymemtrace", "--cflags"], capture_output=True,
                          text=True, env=dict(os.environ, PYTHONPATH=build_src), cwd="/")
    include = os.path.join(os.environ["PYMEMTRACE_SOURCE_ROOT"], "include")
    assert done.returncode == 0 and done.stdout.split()[0] == "-I" + include, done
