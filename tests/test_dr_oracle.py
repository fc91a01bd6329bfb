#!/usr/bin/python3
"""DataCompDR shards this project has not seen, checked against the reference
libraries themselves: Pillow 9.4 and torchvision 0.14 (Debian 12's
python3-pil and python3-torchvision, the versions the reference data was
made with).

Makes, in a temporary folder, shards of random images (PNG and JPEG, odd
sizes) with random stored augmentations drawn the way the reference's
reproducible transforms draw them (RandomResizedCrop boxes from torchvision's
get_params, horizontal flips, RandAugment ops at any magnitude bin, random
erasing), in both embedding layouts (DataCompDR: npz float32, text_emb =
caption then synthetic captions; DFNDR: pth.gz bfloat16 with two synthetic
keys and a "<key>_emb" each) and other teacher widths.  The expected pixels
are what torchvision's functional ops on Pillow images give for the stored
parameters, in the order Apple's training/dr/transforms.py re-applies them
(crop + bicubic resize, flip, RandAugment ops with nearest resampling and
black fill, to_tensor, erasing).  Then `mobileclip augment` must give the
same bytes and `mobileclip shard ls --json` the right contents.

Run from the project root after the build (make test).  Without python3-pil,
python3-torchvision or numpy it fails: a missing oracle is a failure."""
import io
import json
import math
import os
import subprocess
import sys
import tarfile
import tempfile

from harness import CLI, check, missing, summary

try:
    import numpy as np
    import torch
    from PIL import Image
    import torchvision.transforms as T
    import torchvision.transforms.functional as F
    from torchvision.transforms.autoaugment import _apply_op
except ImportError as e:  # the oracle is part of the test: its absence fails
    missing("test_dr_oracle", e, "python3-pil, python3-torchvision, python3-numpy")
OP_NAMES = ["Identity", "ShearX", "ShearY", "TranslateX", "TranslateY", "Rotate", "Brightness",
            "Color", "Contrast", "Sharpness", "Posterize", "Solarize", "AutoContrast", "Equalize"]

rng = np.random.default_rng(20261204)
torch.manual_seed(1234)


def random_image(w, h):
    """Smooth colour fields plus noise: every op (histograms, blends, edges) has work."""
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    img = np.empty((h, w, 3), np.float64)
    for c in range(3):
        fx, fy, ph = rng.uniform(0.01, 0.2), rng.uniform(0.01, 0.2), rng.uniform(0, 6.28)
        img[..., c] = 128 + 90 * np.sin(fx * x + ph) * np.cos(fy * y) + rng.normal(0, 20, (h, w))
    lo, hi = rng.integers(0, 60), rng.integers(190, 256)   # not always the full range
    return np.clip(img, lo, hi).astype(np.uint8)


def draw_params(img, cfg):
    """One compressed parameter list, positional over cfg's transforms with parameters."""
    out = []
    if "random_resized_crop" in cfg:
        out.append(list(T.RandomResizedCrop.get_params(img, [0.08, 1.0], [3 / 4, 4 / 3])))
    if "random_horizontal_flip" in cfg:
        out.append(bool(rng.integers(0, 2)))
    if "rand_augment" in cfg:
        space = T.RandAugment()._augmentation_space(31, (224, 224))
        ops = []
        for _ in range(2):
            k = int(rng.integers(0, 14))
            mags, signed = space[OP_NAMES[k]]
            m = float(mags[int(rng.integers(0, 31))].item()) if mags.ndim > 0 else 0.0
            if signed and rng.integers(0, 2):
                m = -m
            ops.append([k, m])
        out.append(ops)
    if "random_erase" in cfg:
        if rng.integers(0, 4) == 0:
            out.append(None)                      # skipped at generation (p < 1)
        else:
            s = cfg["random_erase"].get("size", 224)
            h, w = int(rng.integers(1, s // 2)), int(rng.integers(1, s // 2))
            out.append([int(rng.integers(0, s - h)), int(rng.integers(0, s - w)), h, w])
    return out


def reapply(pil, params, cfg, size):
    """The reference's re-application, through torchvision's functional ops on Pillow."""
    p = list(params)
    img = pil.convert("RGBA").convert("RGB")
    if "random_resized_crop" in cfg:
        i, j, h, w = p.pop(0)
        img = F.resized_crop(img, i, j, h, w, [size, size], T.InterpolationMode.BICUBIC)
    if "random_horizontal_flip" in cfg:
        if p.pop(0):
            img = F.hflip(img)
    if "rand_augment" in cfg:
        for k, m in p.pop(0):
            img = _apply_op(img, OP_NAMES[k], m, interpolation=T.InterpolationMode.NEAREST, fill=None)
    arr = np.array(img, dtype=np.uint8)
    if "random_erase" in cfg:
        e = p.pop(0)
        if e is not None and e[0] != -1:
            x, y, h, w = e
            arr[x:x + h, y:y + w, :] = 0
    return arr


def add(tar, name, data):
    ti = tarfile.TarInfo(name)
    ti.size = len(data)
    ti.mtime = 1700000000
    tar.addfile(ti, io.BytesIO(data))


def npz_bytes(arrays):
    b = io.BytesIO()
    np.savez_compressed(b, **arrays)
    return b.getvalue()


def pthgz_bytes(tensors):
    import gzip
    b = io.BytesIO()
    torch.save(tensors, b)
    return gzip.compress(b.getvalue())


def make_shard(path, cfg, layout, n_samples, dims, syn_keys):
    """Writes a shard; returns {key: (pil image, [params], n_captions per syn key)}."""
    info = {}
    D = sum(dims)
    with tarfile.open(path, "w", format=tarfile.USTAR_FORMAT) as tar:
        for s in range(n_samples):
            key = "%09d" % (int(rng.integers(0, 10 ** 9)))
            w, h = int(rng.integers(40, 420)), int(rng.integers(40, 420))
            arr = random_image(w, h)
            pil = Image.fromarray(arr, "RGB")
            b = io.BytesIO()
            if s % 2:
                pil.save(b, format="JPEG", quality=int(rng.integers(60, 96)))
                ext = "jpg"
            else:
                pil.save(b, format="PNG")
                ext = "png"
            data = b.getvalue()
            pil = Image.open(io.BytesIO(data))
            pil.load()
            A = int(rng.integers(2, 7))
            params = [draw_params(pil, cfg) for _ in range(A)]
            caps = {k: ["a synthetic caption %d of %s" % (c, k) for c in range(int(rng.integers(2, 6)))]
                    for k in syn_keys}
            add(tar, "%s.%s" % (key, ext), data)
            add(tar, key + ".txt", ("a photo number %d" % s).encode())
            add(tar, key + ".json", json.dumps({"uid": key, "width": w, "height": h}).encode())
            add(tar, key + ".url.txt", ("http://example.invalid/%s.jpg" % key).encode())
            add(tar, key + ".syn.json", json.dumps(caps).encode())
            pa = {"param_aug": json.dumps(params)} if s % 3 == 0 else {"param_aug": params}
            add(tar, key + ".paug.json", json.dumps(pa).encode())
            image_emb = rng.standard_normal((A, D)).astype(np.float32)
            if layout == "datacompdr":
                n_text = 1 + sum(len(v) for v in caps.values())
                embs = {"image_emb": image_emb,
                        "text_emb": rng.standard_normal((n_text, D)).astype(np.float32)}
                add(tar, key + ".npz", npz_bytes(embs))
            else:
                embs = {"image_emb": torch.from_numpy(image_emb).to(torch.bfloat16),
                        "text_emb": torch.randn(1, D).to(torch.bfloat16)}
                for k, v in caps.items():
                    embs[k + "_emb"] = torch.randn(len(v), D).to(torch.bfloat16)
                add(tar, key + ".pth.gz", pthgz_bytes(embs))
            info[key] = (pil, params, {k: len(v) for k, v in caps.items()}, A)
    return info


def run_cli(*args):
    p = subprocess.run([CLI] + list(args), capture_output=True)
    return p.returncode, p.stdout, p.stderr.decode(errors="replace")


def read_npy_u8(path):
    return np.load(path)


tmp = tempfile.mkdtemp(prefix="dr-oracle-")
cases = [
    # name, config (transforms as the DR config names them), layout, teacher dims, synthetic keys
    ("dcdr", {"random_resized_crop": {"size": 224}, "rand_augment": {"p": 1.0}},
     "datacompdr", [24, 16], ["syn_text"]),
    ("dfndr", {"random_resized_crop": {"size": 224}, "random_horizontal_flip": {"p": 0.5},
               "rand_augment": {"p": 1.0}, "random_erase": {"p": 0.25, "size": 224}},
     "dfndr", [8, 12, 20], ["syn_text_dfn_mscoco38k", "syn_text_other"]),
]
for name, cfg, layout, dims, syn_keys in cases:
    shard = os.path.join(tmp, name + ".tar")
    info = make_shard(shard, cfg, layout, 8, dims, syn_keys)
    conf = os.path.join(tmp, name + ".config.json")
    aug_cfg = {k: dict(v) for k, v in cfg.items()}
    aug_cfg["to_tensor"] = {"enable": True}
    aug_cfg["normalize"] = {"mean": [0.48145466, 0.4578275, 0.40821073],
                            "std": [0.26862954, 0.26130258, 0.27577711]}
    aug_cfg["rand_augment"]["enable"] = True
    with open(conf, "w") as f:
        json.dump({"reinforce": {"image_augmentation": aug_cfg}}, f)

    rc, out, err = run_cli("shard", "ls", "--json", shard)
    check(rc == 0, "%s: shard ls runs: %s" % (name, err))
    try:
        listing = json.loads(out)
    except ValueError:
        listing = None
    check(listing is not None, "%s: shard ls --json prints JSON: %r" % (name, out[:200]))
    text = out.decode(errors="replace")
    check(str(len(info)) in text and all(k in text for k in syn_keys),
          "%s: shard ls names the samples and the synthetic keys:\n%s" % (name, text[:600]))

    n_eq = n_all = 0
    for key, (pil, params, ncap, A) in sorted(info.items()):
        for a in range(A):
            for size in (224, 256) if a % 2 == 0 else (224,):
                want = reapply(pil, params[a], cfg, size)
                out_path = os.path.join(tmp, "%s_%s_%d_%d.npy" % (name, key, a, size))
                args = ["augment", shard, "--key", key, "--aug", str(a), "--size", str(size), "-o", out_path]
                if name != "dcdr":
                    args += ["--dr-config", conf]
                rc, _, err = run_cli(*args)
                n_all += 1
                if rc != 0:
                    check(False, "%s %s aug %d size %d: augment failed: %s" % (name, key, a, size, err))
                    continue
                got = read_npy_u8(out_path)
                same = got.shape == want.shape and got.dtype == np.uint8 and np.array_equal(got, want)
                if not same and got.shape == want.shape:
                    d = np.abs(got.astype(int) - want.astype(int))
                    detail = "%d pixels differ, max %d; params %s" % ((d.max(axis=2) > 0).sum(), d.max(),
                                                                    json.dumps(params[a]))
                else:
                    detail = "shape %s vs %s" % (got.shape, want.shape)
                check(same, "%s %s aug %d size %d: not byte-equal to torchvision/Pillow (%s)"
                      % (name, key, a, size, detail))
                n_eq += same
    print("%s: %d of %d re-applied augmentations byte-equal" % (name, n_eq, n_all))

    # An augmentation index past the stored ones is an error, not a crash.
    key = sorted(info)[0]
    rc, _, err = run_cli("augment", shard, "--key", key, "--aug", "99", "--size", "224",
                         "-o", os.path.join(tmp, "x.npy"), *(["--dr-config", conf] if name != "dcdr" else []))
    check(rc != 0 and "99" in err, "%s: --aug 99 is refused with a message: %s" % (name, err))

sys.exit(summary("test_dr_oracle"))
