#!/usr/bin/env python3
"""The layer checker (tools/check_layers.py) on the real tree, and on copies
of it with an upward include, an include circle, a flat include and an
upward call planted: each must be found and named.  Run from the project
root (make test); build/obj must hold the library's objects."""
import os
import shutil
import subprocess
import sys
import tempfile

ROOT = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
CHECKER = os.path.join(ROOT, "tools", "check_layers.py")
passed = failed = 0


def check(cond, what):
    global passed, failed
    if cond:
        passed += 1
    else:
        failed += 1
        print("FAIL: " + what, file=sys.stderr)


def run(*args):
    p = subprocess.run([sys.executable, CHECKER] + list(args), capture_output=True, text=True)
    return p.returncode, p.stdout + p.stderr


def planted(edit):
    """A copy of src/ with edit(copy_root) applied; returns the copy's src path."""
    tmp = tempfile.mkdtemp(prefix="layers-")
    shutil.copytree(os.path.join(ROOT, "src"), os.path.join(tmp, "src"))
    edit(os.path.join(tmp, "src"))
    return tmp


def append_include(src, rel, header):
    with open(os.path.join(src, rel), "a") as f:
        f.write('\n#include "%s"\n' % header)


# The real tree: includes and, over the built objects, calls.
rc, out = run("--src", os.path.join(ROOT, "src"), "--objects", os.path.join(ROOT, "build", "obj"))
check(rc == 0 and out.strip().endswith("ok"), "the tree passes the checker:\n" + out)

# An upward include: io may not use model.
tmp = planted(lambda s: append_include(s, "io/config.c", "model/model.h"))
rc, out = run("--src", os.path.join(tmp, "src"))
check(rc == 1, "a planted upward include fails the check")
check("src/io/config.c includes model/model.h: upward include" in out, "the message names the files:\n" + out)
shutil.rmtree(tmp)

# A circle inside one layer.
def circle(s):
    append_include(s, "core/json.h", "core/arena.h")
    append_include(s, "core/arena.h", "core/json.h")
tmp = planted(circle)
rc, out = run("--src", os.path.join(tmp, "src"))
check(rc == 1, "a planted include circle fails the check")
check("include circle" in out and "core/arena" in out and "core/json" in out,
      "the circle is named with its files:\n" + out)
shutil.rmtree(tmp)

# A header named without its layer folder.
tmp = planted(lambda s: append_include(s, "model/vit.c", "tblock.h"))
rc, out = run("--src", os.path.join(tmp, "src"))
check(rc == 1 and 'src/model/vit.c includes "tblock.h"' in out, "a flat include is refused:\n" + out)
shutil.rmtree(tmp)

# A folder without a README saying what it may use.
tmp = planted(lambda s: os.makedirs(os.path.join(s, "extra")))
rc, out = run("--src", os.path.join(tmp, "src"))
check(rc == 1 and "src/extra: no README.md" in out, "a layer without its README is refused:\n" + out)
shutil.rmtree(tmp)

# An upward call that no include shows (through a declaration of its own):
# core/low.o calls a function of model/high.o.
cc = os.environ.get("CC", "cc")
tmp = tempfile.mkdtemp(prefix="layers-obj-")
srcs = {"core/low.c": "int high_fn(void);\nint low_fn(void) { return high_fn(); }\n",
        "model/high.c": "int high_fn(void) { return 1; }\n"}
ok = True
for rel, text in srcs.items():
    os.makedirs(os.path.join(tmp, os.path.dirname(rel)), exist_ok=True)
    with open(os.path.join(tmp, rel), "w") as f:
        f.write(text)
    r = subprocess.run([cc, "-c", os.path.join(tmp, rel), "-o", os.path.join(tmp, rel[:-2] + ".o")])
    ok = ok and r.returncode == 0
check(ok, "the two objects compile")
rc, out = run("--src", os.path.join(ROOT, "src"), "--objects", tmp)
check(rc == 1 and "core/low.o calls high_fn of model/high.o: upward call" in out,
      "an upward call between objects is found:\n" + out)
shutil.rmtree(tmp)

print("test_layers: %d passed, %d failed" % (passed, failed))
sys.exit(1 if failed else 0)
