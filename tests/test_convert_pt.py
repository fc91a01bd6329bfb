#!/usr/bin/python3
"""What `mobileclip convert --format pt` and the torch.save writer
(src/io/torchsave.c) write, read by PyTorch itself: Debian 12's python3-torch
(1.13), with torch.load(path, map_location="cpu", weights_only=True).

1. The writer's cases (build/tests/test_torchsave --write-cases): every dtype,
   0-d and empty tensors, sizes and strides past 2^31, a UTF-8 name.  PyTorch
   gives an OrderedDict with the names in order, each tensor's dtype, shape,
   stride, storage offset 0, no gradient and the same bytes (sha256).  Python's
   zipfile finds every CRC right, each entry's data 64-byte aligned, the
   entries under one top folder with data.pkl first, version "3\\n" and
   byteorder "little" (also in the file with ZIP64 records), and the pickle
   uses only opcodes PyTorch 1.13's weights_only unpickler knows.
2. Fixture models (v1_mci_mct, v1_mci_base, v1_vit_causal, oc_mobileclip_s1,
   oc_mobileclip2_b): the converted file holds exactly the original's tensors
   (torch.load of model.pt, or open_clip_model.safetensors read here): the
   same names in the same order, dtypes, shapes and bits; `embed-image` and
   `embed-text` on it give the original's embeddings bit for bit; with --dtype
   f16 / bf16 each tensor equals PyTorch's own .half() / .bfloat16() of the
   original.

Run from the project root after the build (make test).  Without PyTorch or
numpy it fails: a missing oracle is a failure (tools/install-deps.sh installs
python3-torch)."""
import hashlib
import json
import os
import pickletools
import struct
import subprocess
import sys
import tempfile
import zipfile

from harness import CLI, FIXTURES, ROOT, check, missing, summary

try:
    import numpy as np
    import torch
except ImportError as e:  # the oracle is part of the test: its absence fails
    missing("test_convert_pt", e, "python3-torch and python3-numpy")

CASES = os.path.join(ROOT, "build", "tests", "test_torchsave")
VOCAB = os.path.join(FIXTURES, "tokenizer", "bpe_simple_vocab_16e6.txt.gz")
MODELS = ["v1_mci_mct", "v1_mci_base", "v1_vit_causal", "oc_mobileclip_s1", "oc_mobileclip2_b"]
# the opcodes of PyTorch 1.13's weights_only unpickler (torch/_weights_only_unpickler.py)
WEIGHTS_ONLY_OPS = {"GLOBAL", "NEWOBJ", "REDUCE", "BUILD", "APPEND", "APPENDS", "SETITEM", "SETITEMS", "MARK",
                    "TUPLE", "TUPLE1", "TUPLE2", "TUPLE3", "NONE", "NEWFALSE", "NEWTRUE", "EMPTY_TUPLE",
                    "EMPTY_LIST", "EMPTY_DICT", "EMPTY_SET", "BININT", "BININT1", "BININT2", "BINUNICODE",
                    "SHORT_BINSTRING", "BINPERSID", "BINGET", "LONG_BINGET", "BINPUT", "LONG_BINPUT", "LONG1",
                    "PROTO", "STOP"}


def run(args, **kw):
    env = dict(os.environ, MOBILECLIP_OFFLINE="1", MOBILECLIP_NO_PROGRESS="1")
    return subprocess.run(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)


def tensor_bytes(t):
    t = t.contiguous()
    if t.dtype == torch.bfloat16:
        t = t.view(torch.int16)
    return t.numpy().tobytes()


def check_zip(path, label):
    """CRCs, alignment, layout and pickle opcodes of a torch.save zip."""
    with zipfile.ZipFile(path) as z, open(path, "rb") as f:
        check(z.testzip() is None, "%s: a CRC is wrong" % label)
        infos = z.infolist()
        names = [i.filename for i in infos]
        top = names[0].split("/")[0]
        check(names[0] == top + "/data.pkl", "%s: first entry %s" % (label, names[0]))
        check(all(n.startswith(top + "/") for n in names), "%s: entries outside %s/" % (label, top))
        check(z.read(top + "/version") == b"3\n", "%s: version" % label)
        check(z.read(top + "/byteorder") == b"little", "%s: byteorder" % label)
        misaligned = []
        for i in infos:
            f.seek(i.header_offset)
            h = f.read(30)
            nl, xl = struct.unpack("<HH", h[26:30])
            if (i.header_offset + 30 + nl + xl) % 64:
                misaligned.append(i.filename)
            check(i.compress_type == zipfile.ZIP_STORED, "%s: %s compressed" % (label, i.filename))
        check(not misaligned, "%s: data not 64-byte aligned: %s" % (label, misaligned[:3]))
        ops = {op.name for op, _, _ in pickletools.genops(z.read(top + "/data.pkl"))}
        check(ops <= WEIGHTS_ONLY_OPS, "%s: opcodes outside weights_only's: %s" % (label, ops - WEIGHTS_ONLY_OPS))
        return z, top


def test_cases(tmp):
    r = run([CASES, "--write-cases", tmp])
    check(r.returncode == 0, "test_torchsave --write-cases: %s" % r.stderr)
    if r.returncode:
        return
    with open(os.path.join(tmp, "cases.json")) as f:
        cases = json.load(f)["files"]
    for case in cases:
        path = os.path.join(tmp, case["file"])
        want = case["tensors"]
        check_zip(path, case["file"])
        with zipfile.ZipFile(path) as z:  # the storages, through zipfile (ZIP64 fields included)
            top = z.namelist()[0].split("/")[0]
            raw = [hashlib.sha256(z.read("%s/data/%d" % (top, k))).hexdigest() for k in range(len(want))]
            check(raw == [w["sha256"] for w in want], "%s: storages read by zipfile differ" % case["file"])
        if not case["torch"]:
            continue
        sd = torch.load(path, map_location="cpu", weights_only=True)
        check(type(sd).__name__ == "OrderedDict", "%s: loads as %s" % (case["file"], type(sd)))
        check(list(sd) == [w["name"] for w in want], "%s: names %s" % (case["file"], list(sd)[:5]))
        for w in want:
            t = sd.get(w["name"])
            ok = (t is not None and str(t.dtype) == "torch." + w["dtype"] and list(t.shape) == w["shape"]
                  and list(t.stride()) == w["stride"] and t.storage_offset() == 0 and not t.requires_grad
                  and hashlib.sha256(tensor_bytes(t)).hexdigest() == w["sha256"])
            check(ok, "%s: tensor %s: %s" % (case["file"], w["name"],
                                               None if t is None else (t.dtype, tuple(t.shape), t.stride())))


def read_safetensors(path):
    with open(path, "rb") as f:
        data = f.read()
    n = struct.unpack("<Q", data[:8])[0]
    header = json.loads(data[8:8 + n])
    header.pop("__metadata__", None)
    dtypes = {"F32": np.float32, "F16": np.float16, "F64": np.float64, "I64": np.int64}
    out = {}
    for name, v in header.items():  # the file's order
        a, b = v["data_offsets"]
        arr = np.frombuffer(data[8 + n + a:8 + n + b], dtype=dtypes[v["dtype"]]).reshape(v["shape"])
        out[name] = torch.from_numpy(arr.copy())
    return out


def same_tensors(a, b):
    """Names in order, dtypes, shapes and bits."""
    if list(a) != list(b):
        return "names differ (%d vs %d)" % (len(a), len(b))
    for k in a:
        x, y = a[k], b[k]
        if x.dtype != y.dtype or x.shape != y.shape or tensor_bytes(x) != tensor_bytes(y):
            return "tensor %s differs (%s %s vs %s %s)" % (k, x.dtype, tuple(x.shape), y.dtype, tuple(y.shape))
    return None


def embeddings(model, config, tmp, tag):
    images = [os.path.join(FIXTURES, "images", x) for x in ("chelsea.png", "astronaut.png", "coffee.png")]
    texts = ["a photo of a cat", "a diagram", "A photo of a dog.", ""]
    cfg = ["--config", config] if config else []
    out = []
    for cmd, extra in (("embed-image", images), ("embed-text", ["--vocab", VOCAB, "--"] + texts)):
        npy = os.path.join(tmp, "%s-%s.npy" % (tag, cmd))
        r = run([CLI, cmd, "-m", model, "-o", npy] + cfg + extra)
        check(r.returncode == 0, "%s %s: %s" % (cmd, model, r.stderr))
        out.append(np.load(npy) if r.returncode == 0 else None)
    return out


def test_models(tmp):
    for m in MODELS:
        d = os.path.join(FIXTURES, "models", m)
        v1 = m.startswith("v1_")
        config = os.path.join(d, "config.json" if v1 else "open_clip_config.json")
        if v1:
            orig = torch.load(os.path.join(d, "model.pt"), map_location="cpu", weights_only=True)
        else:
            orig = read_safetensors(os.path.join(d, "open_clip_model.safetensors"))
        pt = os.path.join(tmp, m + ".pt")
        r = run([CLI, "convert", d, "--format", "pt", "-o", pt])
        check(r.returncode == 0, "convert %s: %s" % (m, r.stderr))
        if r.returncode:
            continue
        check_zip(pt, m)
        sd = torch.load(pt, map_location="cpu", weights_only=True)
        diff = same_tensors(orig, sd)
        check(diff is None, "%s: %s" % (m, diff))
        a = embeddings(d, None, tmp, m + "-orig")
        b = embeddings(pt, config, tmp, m + "-pt")
        for what, x, y in zip(("image", "text"), a, b):
            check(x is not None and y is not None and x.shape == y.shape and x.tobytes() == y.tobytes(),
                  "%s: %s embeddings of the .pt differ from the original's" % (m, what))
    # reduced precision: PyTorch's own rounding of each tensor
    m = "v1_mci_mct"
    d = os.path.join(FIXTURES, "models", m)
    orig = torch.load(os.path.join(d, "model.pt"), map_location="cpu", weights_only=True)
    for dt, torch_dt in (("f16", torch.float16), ("bf16", torch.bfloat16)):
        pt = os.path.join(tmp, "%s-%s.pt" % (m, dt))
        r = run([CLI, "convert", d, "--format", "pt", "--dtype", dt, "-o", pt])
        check(r.returncode == 0, "convert %s --dtype %s: %s" % (m, dt, r.stderr))
        if r.returncode:
            continue
        sd = torch.load(pt, map_location="cpu", weights_only=True)
        want = {k: (v.to(torch_dt) if v.is_floating_point() else v) for k, v in orig.items()}
        diff = same_tensors(want, sd)
        check(diff is None, "%s --dtype %s vs PyTorch's rounding: %s" % (m, dt, diff))


def main():
    with tempfile.TemporaryDirectory(prefix="mc-test-convert-pt-") as tmp:
        test_cases(tmp)
        test_models(tmp)
    return summary("test_convert_pt")


if __name__ == "__main__":
    sys.exit(main())
