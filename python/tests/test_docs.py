"""The documentation works: help(mobileclip_c) covers the API, and the
worked example of python/README.md runs as written (from the project root)."""
import os
import re
import subprocess
import sys

from conftest import ROOT


def test_help_is_useful(mc):
    import pydoc
    text = pydoc.render_doc(mc, renderer=pydoc.plaintext)
    for word in ["Worked example", "encode_image", "encode_text", "classify", "tokenize", "search",
                 "MOBILECLIP_LIB", "Threads", "class Error", "class Model", "load(model"]:
        assert word in text, word
    for fn in [mc.load, mc.Model.encode_image, mc.Model.encode_text, mc.Model.classify, mc.Model.preprocess,
               mc.tokenize, mc.search, mc.library_path]:
        assert fn.__doc__ and len(fn.__doc__) > 60, fn


def test_readme_example_runs():
    with open(os.path.join(ROOT, "python", "README.md"), encoding="utf-8") as f:
        blocks = re.findall(r"```python\n(.*?)```", f.read(), re.S)
    example = next(b for b in blocks if "mobileclip_c.load(" in b and "classify" in b)
    env = dict(os.environ, PYTHONPATH=os.path.join(ROOT, "python"))
    p = subprocess.run([sys.executable, "-c", example], capture_output=True, text=True, cwd=ROOT, env=env)
    assert p.returncode == 0, p.stderr[-3000:]
    assert "mci0 32 256" in p.stdout
