"""The ctypes structs of mobileclip_c._capi against the C compiler's view of
include/mobileclip.h: sizeof, and every field's offset and size, from a small C program
built here; and every prototype names a function the header declares."""
import os
import re
import shutil
import subprocess

from conftest import ROOT


def test_struct_layouts(mc, tmp_path):
    from mobileclip_c import _capi
    cc = shutil.which(os.environ.get("CC", "cc")) or shutil.which("gcc")
    assert cc, "no C compiler (cc) to check the struct layouts with"
    lines = ['#include <stddef.h>', '#include <stdio.h>', '#include "mobileclip.h"', 'int main(void) {']
    want = {}
    for name, cls in _capi.STRUCTS.items():
        lines.append('printf("%s sizeof %%zu\\n", sizeof(%s));' % (name, name))
        want["%s sizeof" % name] = str(__import__("ctypes").sizeof(cls))
        for field, _ in cls._fields_:
            lines.append('printf("%s %s %%zu+%%zu\\n", offsetof(%s, %s), sizeof(((%s *)0)->%s));'
                         % (name, field, name, field, name, field))
            want["%s %s" % (name, field)] = "%d+%d" % (getattr(cls, field).offset, getattr(cls, field).size)
    lines += ["return 0;", "}"]
    src = tmp_path / "layout.c"
    src.write_text("\n".join(lines) + "\n")
    exe = tmp_path / "layout"
    p = subprocess.run([cc, "-std=gnu11", "-Wall", "-I" + os.path.join(ROOT, "include"), "-o", str(exe), str(src)],
                       capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    out = subprocess.run([str(exe)], capture_output=True, text=True, check=True).stdout
    got = {}
    for line in out.splitlines():
        key, _, val = line.rpartition(" ")
        got[key] = val
    assert len(got) == len(want) and len(want) > 30
    diff = {k: (want[k], got.get(k)) for k in want if want[k] != got.get(k)}
    assert not diff, "ctypes vs C (ctypes, C): %s" % diff


def test_prototypes_name_public_functions():
    from mobileclip_c import _capi
    with open(os.path.join(ROOT, "include", "mobileclip.h")) as f:
        header = f.read()
    declared = set(re.findall(r"\b(mc_[a-z0-9_]+)\s*\(", header))
    missing = [n for n in _capi.PROTOTYPES if n not in declared]
    assert not missing, "not in mobileclip.h: %s" % missing
