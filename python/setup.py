"""Build hook of the mobileclip_c package (the metadata is in pyproject.toml).

The package is pure Python over libmobileclip.so (ctypes).  When a built
library is found at build time it is copied into the package, so that
'pip install ./python' after 'make' needs nothing else: $MOBILECLIP_LIB (the
.so file) when set, else ../build/libmobileclip.so.0 beside this folder.  The
wheel is then tagged for this platform.  Without one, the package finds the
library at run time (see mobileclip_c.library_path).
"""
import os
import shutil

from setuptools import setup
from setuptools.command.build_py import build_py
from setuptools.dist import Distribution

SONAME = "libmobileclip.so.0"
HERE = os.path.dirname(os.path.abspath(__file__))


def built_library():
    env = os.environ.get("MOBILECLIP_LIB")
    if env:
        p = os.path.join(env, SONAME) if os.path.isdir(env) else env
        if not os.path.isfile(p):
            raise SystemExit("MOBILECLIP_LIB=%s: no such library file" % env)
        return p
    p = os.path.join(HERE, "..", "build", SONAME)
    return p if os.path.isfile(p) else None


class BuildPy(build_py):
    def run(self):
        super().run()
        lib = built_library()
        if lib:
            dest = os.path.join(self.build_lib, "mobileclip_c", SONAME)
            shutil.copyfile(os.path.realpath(lib), dest)
            os.chmod(dest, 0o755)


class LibDistribution(Distribution):
    def has_ext_modules(self):
        return built_library() is not None


setup(cmdclass={"build_py": BuildPy}, distclass=LibDistribution)
