"""'pip install ./python' into a fresh virtual environment (made with
--system-site-packages for NumPy; offline: --no-index --no-build-isolation),
then, outside the source tree and without $MOBILECLIP_LIB, embeddings equal
to the CLI's.  The package is copied with a 'build' link beside it, as it
sits in the repository, so that the source tree gets no build files."""
import os
import shutil
import subprocess
import sys

import numpy as np

from conftest import BUILD, MODELS, ROOT, image_paths


def _installed_library():
    """What the package's search finds before its own copy (mobileclip_c._capi)."""
    sys.path.insert(0, os.path.join(ROOT, "python"))
    from mobileclip_c import _capi
    libdir = _capi._pkg_config_libdir()
    for d in ([libdir] if libdir else []) + ["/usr/local/lib"]:
        p = os.path.join(d, _capi.SONAME)
        if os.path.exists(p):
            return os.path.realpath(p)
    return None


def test_pip_install_in_venv(tmp_path, cli_out):
    src = tmp_path / "src"
    src.mkdir()
    shutil.copytree(os.path.join(ROOT, "python"), src / "python",
                    ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__", "tests"))
    os.symlink(BUILD, src / "build")
    venv = tmp_path / "venv"
    env = {k: v for k, v in os.environ.items() if k not in ("MOBILECLIP_LIB", "PYTHONPATH", "PIP_INDEX_URL")}
    p = subprocess.run(["/usr/bin/python3", "-m", "venv", "--system-site-packages", str(venv)],
                       capture_output=True, text=True, env=env)
    assert p.returncode == 0, p.stderr
    py = str(venv / "bin" / "python")
    p = subprocess.run([py, "-m", "pip", "install", "--no-index", "--no-build-isolation", "./python"],
                       capture_output=True, text=True, env=env, cwd=str(src))
    assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-2000:]
    model = "oc_mobileclip2_s0"
    out = tmp_path / "py.npy"
    script = (
        "import sys, numpy as np, mobileclip_c as mc\n"
        "print(mc.__file__); print(mc.library_path())\n"
        "m = mc.load(sys.argv[1])\n"
        "np.save(sys.argv[2], m.encode_image(sys.argv[3:]))\n")
    work = tmp_path / "work"
    work.mkdir()
    p = subprocess.run([py, "-c", script, os.path.join(MODELS, model), str(out)] + image_paths(),
                       capture_output=True, text=True, env=env, cwd=str(work))
    assert p.returncode == 0, p.stderr
    pkg_file, lib = p.stdout.split("\n")[:2]
    assert pkg_file.startswith(str(venv)), pkg_file
    installed = _installed_library()
    if installed:   # an installed library comes first in the search
        assert lib == installed, lib
    else:           # else the package's own copy of build/libmobileclip.so.0
        assert lib.startswith(str(venv)) and lib.endswith("libmobileclip.so.0"), lib
        with open(lib, "rb") as a, open(os.path.realpath(os.path.join(BUILD, "libmobileclip.so.0")), "rb") as b:
            assert a.read() == b.read()
    got = np.load(out)
    assert np.array_equal(got, cli_out(model, "image"))
