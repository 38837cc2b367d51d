"""Builds hyprof with setuptools, for ``pip install``.

The autotools build (configure.ac, Makefile.am) is the reference; this file
compiles the same C core and extension with the same flags, so that
``pip install .`` and ``pip install hyprof`` from an sdist work on a machine
with the Debian -dev packages (libmsgpack-dev, libpfm4-dev, python3-dev).

The source list is taken from the tree (core/*.c, pyext/*.c) so it cannot
drift from Makefile.am, and the version from include/hyprof/common.h. As
there, the core is a library of its own and the extension is compiled
without core/ on its include path.
"""

import os
import re
import shlex
import subprocess
import sys
import sysconfig
from glob import glob

from setuptools import Extension, find_packages, setup
from setuptools.command.build_clib import build_clib
from setuptools.command.build_ext import build_ext
from setuptools.command.build_py import build_py
from setuptools.errors import CompileError, LinkError

HERE = os.path.dirname(os.path.abspath(__file__))


def _rel(pattern):
    """Sorted paths matching pattern, relative to this file (setuptools
    refuses absolute source paths)."""
    return sorted(os.path.relpath(p, HERE) for p in glob(os.path.join(HERE, pattern)))


def _version():
    path = os.path.join(HERE, "include", "hyprof", "common.h")
    with open(path, encoding="utf-8") as f:
        m = re.search(r'#define\s+HYP_VERSION_STRING\s+"([^"]+)"', f.read())
    if not m:
        sys.exit(f"setup.py: HYP_VERSION_STRING not found in {path}")
    return m.group(1)


def _pkg_config(*names):
    """(cflags, libs) of the first pkg-config module found among names, or
    None when pkg-config or every module is missing."""
    for name in names:
        try:
            cflags = subprocess.run(["pkg-config", "--cflags", name], capture_output=True,
                                    text=True, check=True).stdout
            libs = subprocess.run(["pkg-config", "--libs", name], capture_output=True,
                                  text=True, check=True).stdout
        except (OSError, subprocess.CalledProcessError):
            continue
        return shlex.split(cflags), shlex.split(libs)
    return None


# header, library, Debian package
REQUIRED = (
    ("msgpack.h", "msgpackc", "libmsgpack-dev"),
    ("perfmon/pfmlib_perf_event.h", "pfm", "libpfm4-dev"),
)


def _check_deps(cc):
    """Compiles and links a one-line program against each C dependency, so a
    missing -dev package gives one sentence naming it instead of a screen of
    compiler errors."""
    import tempfile

    ext = EXTENSION
    for header, lib, package in REQUIRED:
        with tempfile.TemporaryDirectory() as tmp:
            src = os.path.join(tmp, "check.c")
            with open(src, "w") as f:
                f.write(f"#include <{header}>\nint main(void) {{ return 0; }}\n")
            try:
                objs = cc.compile([src], output_dir=tmp, include_dirs=ext.include_dirs,
                                  extra_preargs=[a for a in ext.extra_compile_args
                                                 if a.startswith("-I")])
                cc.link_executable(objs, os.path.join(tmp, "check"), libraries=[lib],
                                   library_dirs=ext.library_dirs)
            except (CompileError, LinkError):
                sys.exit(f"hyprof: cannot compile against <{header}> and -l{lib}: "
                         f"install the Debian package {package}")


class BuildClib(build_clib):
    """The core library, built first: the dependency checks run here."""

    def build_libraries(self, libraries):
        # build_clib.run() creates the compiler object just before this.
        _check_deps(self.compiler)
        super().build_libraries(libraries)


class BuildPy(build_py):
    """The package, and hyprof-autostart.pth at the top of site-packages,
    where Python reads it at every start (hyprof/_autostart.py)."""

    PTH = "hyprof-autostart.pth"

    def run(self):
        super().run()
        self.copy_file(os.path.join("pyext", self.PTH), os.path.join(self.build_lib, self.PTH))

    def get_outputs(self, include_bytecode=1):
        return super().get_outputs(include_bytecode) + [os.path.join(self.build_lib, self.PTH)]


class BuildExt(build_ext):
    def run(self):
        include = sysconfig.get_paths()["include"]
        if not os.path.exists(os.path.join(include, "Python.h")):
            sys.exit(f"hyprof: Python.h not found in {include}: install the Debian package "
                     "python3-dev (or use an interpreter that ships its headers)")
        super().run()


def _build():
    """The C core as a static library of its own (compiled with core/ on the
    include path) and the extension module (compiled without it, as in the
    autotools build, so that it uses the public headers and
    include/hyprof/internal/ only), linked together."""
    core = _rel("core/*.c")
    pyext = _rel("pyext/*.c")
    if not core or not pyext:
        sys.exit("setup.py: no C sources found under core/ and pyext/")
    compile_args = ["-std=gnu11", "-fvisibility=hidden", "-pthread"]
    link_args = ["-pthread"]
    libraries = ["pfm"]
    msgpack = _pkg_config("msgpack-c", "msgpack")
    if msgpack:
        compile_args += msgpack[0]
        link_args += [a for a in msgpack[1] if not a.startswith("-l")]
        libraries += [a[2:] for a in msgpack[1] if a.startswith("-l")]
    else:
        libraries.append("msgpackc")
    # configure adds -lrt for timer_create/clock_gettime where the C library
    # lacks them; glibc >= 2.17 has them, and linking librt is harmless.
    libraries.append("rt")
    macros = [("HYP_BUILDING", None)]
    core_lib = ("hyprofcore", {"sources": core, "include_dirs": ["include", "core"],
                               "macros": macros, "cflags": compile_args})
    ext = Extension(
        "hyprof._hyprof",
        sources=pyext,
        include_dirs=["include", "pyext"],
        define_macros=macros,
        extra_compile_args=compile_args,
        extra_link_args=link_args,
        # The core first: a static library's symbols are taken only for what
        # is still undefined, and the core itself needs libpfm and msgpack.
        libraries=["hyprofcore"] + libraries,
    )
    return core_lib, ext


CORE_LIB, EXTENSION = _build()

setup(
    version=_version(),
    package_dir={"": "pyext"},
    packages=find_packages(where="pyext"),
    # The HTML report's script and style sheet, read when a report is made.
    package_data={"hyprof.render": ["*.js", "*.css"]},
    libraries=[CORE_LIB],
    ext_modules=[EXTENSION],
    cmdclass={"build_clib": BuildClib, "build_ext": BuildExt, "build_py": BuildPy},
)
