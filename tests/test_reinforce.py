#!/usr/bin/python3
"""'mobileclip reinforce' (docs/reinforce.md) on the DataCompDR fixture:

  reuse     the fixture shard reinforced with --reuse-params from itself and
            the two fixture teachers reproduces its stored embeddings within
            1e-4 (npz), and with --bf16 its bf16 twin (00000000_bf16.tar,
            read with torch.load) within bf16 rounding; paug.json is the
            stored one byte for byte and every other member is kept;
  fresh     --num-augs draws augmentations: each crop lies in its image,
            every RandAugment magnitude is torchvision's for its op at bin
            9 of 31 (signed where torchvision signs it), two ops each; the
            shard is read back by 'shard ls' and 'augment', trains a few
            steps with 'train', and reinforcing it again with --reuse-params
            from itself gives the same embeddings; the same seed gives the
            same bytes, another seed other parameters;
  held-out  a teacher of other widths, depth, head width, MLP ratio and a
            smaller input (112: the reference resizes the 224 crops with
            torch's bicubic F.interpolate) against an independent torch
            forward of OpenCLIP's ViT and text transformer written here, on
            augmentations 'mobileclip augment' re-applies: within 1e-4;
  layouts   --layout dfndr on samples with two syn.json lists writes text_emb
            [1, D] and one KEY_emb per list, row for row the DataCompDR
            layout's embeddings of the same captions; --reuse-params keeps
            the reused shards' layout (npz and bf16);
  resume    runs killed with SIGKILL at random moments and started again
            end with shards byte-equal to an uninterrupted run, never leave
            a partial shard under a final name, and skip finished shards;
  settings  other settings in the same folder, --captioner, a config the
            teachers do not fit are refused with a message;
  MPI       (when the build has MPI and mpirun is there) 2 ranks write the
            same shards as one process, whole shards each.

Run from the project root after the build (make test)."""
import gzip
import io
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tarfile
import tempfile
import time

from harness import CLI, FIXTURES, ROOT, check, missing, summary

NAME = "test_reinforce"
try:
    import numpy as np
    import torch
    from torchvision.transforms import RandAugment
except ImportError as e:
    missing(NAME, e, "python3-numpy python3-torch python3-torchvision")

SHARD = os.path.join(FIXTURES, "datacompdr", "shards", "00000000.tar")
SHARD_BF16 = os.path.join(FIXTURES, "datacompdr", "shards", "00000000_bf16.tar")
TEACHERS = ",".join(os.path.join(FIXTURES, "datacompdr", "teachers", t)
                    for t in ("teacher_openai_like", "teacher_datacomp_like"))
ENV = dict(os.environ, MOBILECLIP_VOCAB=os.path.join(FIXTURES, "tokenizer", "bpe_simple_vocab_16e6.txt.gz"),
           MOBILECLIP_NO_PROGRESS="1")
CONFIG = {"model_name": "ViT-L-14,ViT-L-14", "num_samples": 30, "pretrained": "openai,datacomp_xl_s13b_b90k",
          "reinforce": {"image_augmentation": {
              "normalize": {"mean": [0.48145466, 0.4578275, 0.40821073],
                            "std": [0.26862954, 0.26130258, 0.27577711]},
              "rand_augment": {"enable": True, "p": 1.0},
              "random_resized_crop": {"interpolation": "bicubic", "size": 224},
              "to_rgb": {"enable": True}, "to_tensor": {"enable": True}}}}


def run(args, **kw):
    return subprocess.run([CLI] + args, env=ENV, capture_output=True, text=True, **kw)


def members(path):
    """{key: {ext: bytes}} of a webdataset tar, in order."""
    out = {}
    with tarfile.open(path) as t:
        for m in t.getmembers():
            if m.isfile():
                base = os.path.basename(m.name)
                key, ext = base.split(".", 1)
                out.setdefault(os.path.join(os.path.dirname(m.name), key), {})[ext] = t.extractfile(m).read()
    return out


def npz(b):
    z = np.load(io.BytesIO(b))
    return {k: z[k] for k in z.files}


def pthgz(b):
    d = torch.load(io.BytesIO(gzip.decompress(b)), map_location="cpu")
    return {k: v for k, v in d.items()}


def reinforce(out, inputs, *extra):
    return run(["reinforce"] + inputs + ["-o", out, "--teachers", TEACHERS, "--config", CFG] + list(extra))


def test_reuse(tmp):
    ref = members(SHARD)
    out = os.path.join(tmp, "reuse")
    r = reinforce(out, [SHARD], "--reuse-params", SHARD, "--threads", "2")
    check(r.returncode == 0, "reuse (npz) failed: %s" % r.stderr[-500:])
    got = members(os.path.join(out, "00000000.tar"))
    check(sorted(got) == sorted(ref), "keys %s, want %s" % (sorted(got), sorted(ref)))
    worst = 0.0
    for key, m in ref.items():
        g = got.get(key, {})
        check(sorted(g) == sorted(m), "%s: members %s, want %s" % (key, sorted(g), sorted(m)))
        for ext in m:
            if ext != "npz":
                check(g.get(ext) == m[ext], "%s.%s is not the input's" % (key, ext))
        if "npz" in g:
            a, b = npz(g["npz"]), npz(m["npz"])
            check(sorted(a) == ["image_emb", "text_emb"], "%s: arrays %s" % (key, sorted(a)))
            for name in ("image_emb", "text_emb"):
                check(a[name].dtype == np.float32 and a[name].shape == b[name].shape,
                      "%s %s: %s %s, want %s" % (key, name, a[name].dtype, a[name].shape, b[name].shape))
                if a[name].shape == b[name].shape:
                    worst = max(worst, float(np.abs(a[name] - b[name]).max()))
    print("reuse npz: max |ours - stored| = %.3g" % worst)
    check(worst <= 1e-4, "npz embeddings differ from the fixture by %g" % worst)
    man = open(os.path.join(out, "manifest.jsonl")).read().splitlines()
    check(len(man) == 1 and json.loads(man[0])["num_samples"] == 3, "manifest: %s" % man)
    check(open(os.path.join(out, "config.json")).read() == open(CFG).read(), "config.json is not the config")

    # bf16: against the bf16 twin of the fixture
    ref16 = members(SHARD_BF16)
    out16 = os.path.join(tmp, "reuse16")
    r = reinforce(out16, [SHARD], "--reuse-params", SHARD, "--bf16")
    check(r.returncode == 0, "reuse (bf16) failed: %s" % r.stderr[-500:])
    got16 = members(os.path.join(out16, "00000000.tar"))
    worst, exact, total = 0.0, 0, 0
    for key, m in ref16.items():
        g = got16.get(key, {})
        check("pth.gz" in g and "npz" not in g, "%s: members %s" % (key, sorted(g)))
        if "pth.gz" not in g:
            continue
        a, b = pthgz(g["pth.gz"]), pthgz(m["pth.gz"])
        for name in ("image_emb", "text_emb"):
            check(a[name].dtype == torch.bfloat16 and a[name].shape == b[name].shape,
                  "%s %s: %s %s" % (key, name, a[name].dtype, tuple(a[name].shape)))
            x, y = a[name].float().numpy(), b[name].float().numpy()
            # one bf16 step of the larger magnitude at most (roundings on either side of a tie)
            step = np.maximum(np.abs(x), np.abs(y)) * 2.0 ** -7
            worst = max(worst, float((np.abs(x - y) / np.maximum(step, 1e-30)).max()))
            exact += int((x == y).sum())
            total += x.size
    print("reuse bf16: %d of %d values equal, the others within %.2f bf16 steps" % (exact, total, worst))
    check(worst <= 1.0, "bf16 embeddings differ by %.2f bf16 steps" % worst)
    check(exact >= 0.98 * total, "only %d of %d bf16 values equal" % (exact, total))


def torchvision_magnitudes():
    space = RandAugment(num_ops=2, magnitude=9, num_magnitude_bins=31)._augmentation_space(31, (224, 224))
    out = []
    for name, (mags, signed) in space.items():
        out.append((float(mags[9].item()) if mags.ndim > 0 else 0.0, bool(signed)))
    return out


def test_fresh(tmp):
    out = os.path.join(tmp, "fresh")
    r = reinforce(out, [SHARD], "--num-augs", "5", "--seed", "3")
    check(r.returncode == 0, "fresh failed: %s" % r.stderr[-500:])
    shard = os.path.join(out, "00000000.tar")
    got, ref = members(shard), members(SHARD)
    mags = torchvision_magnitudes()
    sizes = {k: json.loads(m["json"]) for k, m in ref.items()}
    n_ops = 0
    for key, m in got.items():
        paug = json.loads(m["paug.json"])["param_aug"]
        check(len(paug) == 5, "%s: %d augmentations" % (key, len(paug)))
        w, h = sizes[key]["width"], sizes[key]["height"]
        for (i, j, ch, cw), ops in paug:
            check(0 <= i and 0 <= j and ch > 0 and cw > 0 and i + ch <= h and j + cw <= w,
                  "%s: crop %s outside %dx%d" % (key, (i, j, ch, cw), w, h))
            check(len(ops) == 2, "%s: %d ops" % (key, len(ops)))
            for op, mag in ops:
                want, signed = mags[op]
                check(mag == want or (signed and mag == -want), "%s: op %d magnitude %r (torchvision %r)"
                      % (key, op, mag, want))
                n_ops += 1
        e = npz(m["npz"])
        check(e["image_emb"].shape == (5, 40) and e["text_emb"].shape == (6, 40),
              "%s: shapes %s %s" % (key, e["image_emb"].shape, e["text_emb"].shape))
        norms = np.linalg.norm(e["image_emb"][:, :24], axis=1), np.linalg.norm(e["text_emb"][:, 24:], axis=1)
        check(all(abs(n - 1) < 1e-5 for v in norms for n in v), "%s: teacher slices not unit length" % key)
    check(n_ops == 30, "%d ops" % n_ops)

    # read back: shard ls, augment, train
    r = run(["shard", "ls", "--json", shard])
    check(r.returncode == 0, "shard ls failed: %s" % r.stderr[-300:])
    if r.returncode == 0:
        d = json.loads(r.stdout.splitlines()[0])
        check(d.get("samples") == 3, "shard ls: %s" % r.stdout[:300])
    png = os.path.join(tmp, "aug.png")
    r = run(["augment", shard, "--key", "000000001", "--aug", "4", "--size", "224", "--dr-config",
             os.path.join(out, "config.json"), "-o", png])
    check(r.returncode == 0 and os.path.getsize(png) > 1000, "augment failed: %s" % r.stderr[-300:])
    model = os.path.join(FIXTURES, "models", "train_s0_tiny")
    r = run(["train", "--train-data", shard, "--model", model, "--pretrained", os.path.join(model, "init.pt"),
             "--dataset-reinforcement", "--distill-teacher-dimension", "24", "16", "--distill-logit-scale", "100",
             "100", "--distill-loss-weights", "0.25", "0.75", "--distill-average-after-softmax", "--batch-size",
             "3", "--epochs", "2", "--lr", "1e-3", "--warmup", "1", "--seed", "1", "--workers", "1", "--threads",
             "2", "--logs", tmp, "--name", "train_fresh", "--log-every-n-steps", "0"])
    check(r.returncode == 0, "train on the fresh shard failed: %s" % r.stderr[-500:])
    log = os.path.join(tmp, "train_fresh", "train.jsonl")
    steps = [json.loads(l) for l in open(log)] if os.path.exists(log) else []
    check(len(steps) == 2 and all(np.isfinite(s["loss"]) for s in steps), "train steps: %s" % steps)

    # the same embeddings when its own parameters are re-used
    again = os.path.join(tmp, "fresh_again")
    r = reinforce(again, [shard], "--reuse-params", shard)
    check(r.returncode == 0, "reuse of the fresh shard failed: %s" % r.stderr[-300:])
    got2 = members(os.path.join(again, "00000000.tar"))
    for key in got:
        a, b = npz(got[key]["npz"]), npz(got2.get(key, {}).get("npz", got[key]["npz"]))
        check(all(np.array_equal(a[n], b[n]) for n in a), "%s: re-embedding differs" % key)
    # the seed decides
    same = os.path.join(tmp, "fresh_same")
    other = os.path.join(tmp, "fresh_other")
    r1 = reinforce(same, [SHARD], "--num-augs", "5", "--seed", "3")
    r2 = reinforce(other, [SHARD], "--num-augs", "5", "--seed", "4")
    check(r1.returncode == 0 and r2.returncode == 0, "seeded runs failed")
    check(open(shard, "rb").read() == open(os.path.join(same, "00000000.tar"), "rb").read(),
          "the same seed wrote other bytes")
    check(members(os.path.join(other, "00000000.tar"))["000000000"]["paug.json"] != got["000000000"]["paug.json"],
          "another seed drew the same parameters")


def test_layouts(tmp):
    ref = members(SHARD)
    d = os.path.join(tmp, "two_keys")
    os.makedirs(d)
    keys = sorted(ref)
    src = os.path.join(d, "k.tar")
    with tarfile.open(src, "w", format=tarfile.USTAR_FORMAT) as t:
        for n, key in enumerate(keys):
            m = dict(ref[key])
            syn = json.loads(m["syn.json"])
            other = json.loads(ref[keys[(n + 1) % len(keys)]]["syn.json"])["syn_text"][:3]
            syn["syn_text_dfn"] = other
            m["syn.json"] = json.dumps(syn).encode()
            for ext, data in m.items():
                if ext in ("npz", "paug.json"):
                    continue
                info = tarfile.TarInfo("%s.%s" % (key, ext))
                info.size = len(data)
                t.addfile(info, io.BytesIO(data))
    outs = {}
    for name, extra in (("dfndr", ["--layout", "dfndr"]), ("dc", []), ("dc_b", ["--syn-key", "syn_text_dfn"])):
        out = os.path.join(tmp, "layout_" + name)
        r = reinforce(out, [src], "--num-augs", "3", "--seed", "9", *extra)
        check(r.returncode == 0, "layout %s failed: %s" % (name, r.stderr[-300:]))
        outs[name] = members(os.path.join(out, "k.tar"))
    for key in keys:
        a, dc, dcb = npz(outs["dfndr"][key]["npz"]), npz(outs["dc"][key]["npz"]), npz(outs["dc_b"][key]["npz"])
        check(sorted(a) == ["image_emb", "syn_text_dfn_emb", "syn_text_emb", "text_emb"], "%s: %s" % (key, sorted(a)))
        if "syn_text_emb" not in a:
            continue
        check(a["text_emb"].shape == (1, 40) and a["syn_text_emb"].shape == (5, 40) and
              a["syn_text_dfn_emb"].shape == (3, 40), "%s: DFNDR shapes" % key)
        check(np.array_equal(a["image_emb"], dc["image_emb"]) and np.array_equal(a["text_emb"], dc["text_emb"][:1]),
              "%s: image / caption rows differ between layouts" % key)
        check(np.array_equal(a["syn_text_emb"], dc["text_emb"][1:]), "%s: syn_text rows differ" % key)
        # (another batch of captions: the same rows up to the summation order of a shorter forward)
        check(np.abs(a["syn_text_dfn_emb"] - dcb["text_emb"][1:]).max() <= 1e-6, "%s: syn_text_dfn rows differ by %g"
              % (key, np.abs(a["syn_text_dfn_emb"] - dcb["text_emb"][1:]).max()))
    shard = os.path.join(tmp, "layout_dfndr", "k.tar")
    r = run(["shard", "ls", "--json", shard])
    check(r.returncode == 0 and '"dfndr"' in r.stdout, "shard ls of the DFNDR shard: %s" % (r.stdout + r.stderr)[-300:])
    # --reuse-params keeps the layout, in npz and in bf16
    for extra in ([], ["--bf16"]):
        out = os.path.join(tmp, "layout_reuse%s" % "".join(extra))
        r = reinforce(out, [shard], "--reuse-params", shard, *extra)
        check(r.returncode == 0, "reuse of the DFNDR shard failed: %s" % r.stderr[-300:])
        got = members(os.path.join(out, "k.tar"))
        for key in keys:
            want = npz(outs["dfndr"][key]["npz"])
            if extra:
                have = {k: v.float().numpy() for k, v in pthgz(got[key]["pth.gz"]).items()}
                ok = sorted(have) == sorted(want) and all(
                    np.abs(have[k] - want[k]).max() <= 2.0 ** -8 * np.abs(want[k]).max() for k in want)
            else:
                have = npz(got[key]["npz"])
                ok = sorted(have) == sorted(want) and all(np.array_equal(have[k], want[k]) for k in want)
            check(ok, "%s: reused DFNDR layout%s differs: %s" % (key, " ".join(extra), sorted(have)))


# ---------------------------------------------------------------- held-out

HO = dict(embed=20, width=96, head_width=32, layers=3, patch=16, size=112, mlp=3.0,
          twidth=48, theads=3, tlayers=2)


def write_safetensors(path, tensors):
    hdr, off = {}, 0
    for k, v in tensors.items():
        hdr[k] = {"dtype": "F32", "shape": list(v.shape), "data_offsets": [off, off + v.nbytes]}
        off += v.nbytes
    h = json.dumps(hdr).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(len(h).to_bytes(8, "little"))
        f.write(h)
        for v in tensors.values():
            f.write(np.ascontiguousarray(v, np.float32).tobytes())


def make_heldout(d):
    rng = np.random.default_rng(11)
    t = {}
    rnd = lambda *s, sc=0.05: (rng.standard_normal(s) * sc).astype(np.float32)
    W, T = HO["width"], (HO["size"] // HO["patch"]) ** 2 + 1

    def blocks(pre, w, n, hidden):
        for l in range(n):
            p = "%stransformer.resblocks.%d." % (pre, l)
            t[p + "ln_1.weight"], t[p + "ln_1.bias"] = 1 + rnd(w, sc=0.1), rnd(w)
            t[p + "attn.in_proj_weight"], t[p + "attn.in_proj_bias"] = rnd(3 * w, w, sc=w ** -0.5), rnd(3 * w)
            t[p + "attn.out_proj.weight"], t[p + "attn.out_proj.bias"] = rnd(w, w, sc=w ** -0.5), rnd(w)
            t[p + "ln_2.weight"], t[p + "ln_2.bias"] = 1 + rnd(w, sc=0.1), rnd(w)
            t[p + "mlp.c_fc.weight"], t[p + "mlp.c_fc.bias"] = rnd(hidden, w, sc=w ** -0.5), rnd(hidden)
            t[p + "mlp.c_proj.weight"], t[p + "mlp.c_proj.bias"] = rnd(w, hidden, sc=hidden ** -0.5), rnd(w)
    t["visual.conv1.weight"] = rnd(W, 3, HO["patch"], HO["patch"], sc=0.02)
    t["visual.class_embedding"] = rnd(W, sc=0.5)
    t["visual.positional_embedding"] = rnd(T, W, sc=0.5)
    t["visual.ln_pre.weight"], t["visual.ln_pre.bias"] = 1 + rnd(W, sc=0.1), rnd(W)
    blocks("visual.", W, HO["layers"], int(W * HO["mlp"]))
    t["visual.ln_post.weight"], t["visual.ln_post.bias"] = 1 + rnd(W, sc=0.1), rnd(W)
    t["visual.proj"] = rnd(W, HO["embed"], sc=W ** -0.5)
    TW = HO["twidth"]
    t["token_embedding.weight"] = rnd(49408, TW, sc=0.3)
    t["positional_embedding"] = rnd(77, TW, sc=0.1)
    blocks("", TW, HO["tlayers"], 4 * TW)
    t["ln_final.weight"], t["ln_final.bias"] = 1 + rnd(TW, sc=0.1), rnd(TW)
    t["text_projection"] = rnd(TW, HO["embed"], sc=TW ** -0.5)
    t["logit_scale"] = np.array(np.log(100.0), np.float32)
    os.makedirs(d, exist_ok=True)
    write_safetensors(os.path.join(d, "open_clip_model.safetensors"), t)
    cfg = {"model_cfg": {"embed_dim": HO["embed"],
                         "vision_cfg": {"image_size": HO["size"], "layers": HO["layers"], "width": W,
                                        "head_width": HO["head_width"], "mlp_ratio": HO["mlp"], "patch_size": HO["patch"]},
                         "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": TW, "heads": HO["theads"],
                                      "layers": HO["tlayers"]}},
           "preprocess_cfg": {"mean": CONFIG["reinforce"]["image_augmentation"]["normalize"]["mean"],
                              "std": [0.5, 0.5, 0.5], "interpolation": "bicubic", "resize_mode": "shortest"}}
    json.dump(cfg, open(os.path.join(d, "open_clip_config.json"), "w"))
    return {k: torch.from_numpy(v) for k, v in t.items()}


def oracle_blocks(x, t, pre, n, heads, causal):
    F = torch.nn.functional
    L, w = x.shape[1], x.shape[2]
    mask = torch.full((L, L), float("-inf")).triu(1) if causal else None
    for l in range(n):
        p = "%stransformer.resblocks.%d." % (pre, l)
        h = F.layer_norm(x, (w,), t[p + "ln_1.weight"], t[p + "ln_1.bias"], 1e-5)
        qkv = h @ t[p + "attn.in_proj_weight"].T + t[p + "attn.in_proj_bias"]
        q, k, v = [z.reshape(x.shape[0], L, heads, w // heads).transpose(1, 2) for z in qkv.split(w, dim=-1)]
        a = (q @ k.transpose(-1, -2)) / (w // heads) ** 0.5
        if mask is not None:
            a = a + mask
        o = (a.softmax(-1) @ v).transpose(1, 2).reshape(x.shape[0], L, w)
        x = x + o @ t[p + "attn.out_proj.weight"].T + t[p + "attn.out_proj.bias"]
        h = F.layer_norm(x, (w,), t[p + "ln_2.weight"], t[p + "ln_2.bias"], 1e-5)
        h = F.gelu(h @ t[p + "mlp.c_fc.weight"].T + t[p + "mlp.c_fc.bias"])
        x = x + h @ t[p + "mlp.c_proj.weight"].T + t[p + "mlp.c_proj.bias"]
    return x


def oracle_image(t, x):
    """OpenCLIP's VisionTransformer forward (class token, ln_pre, blocks, ln_post on the token, proj)."""
    F = torch.nn.functional
    W = HO["width"]
    x = F.conv2d(x, t["visual.conv1.weight"], stride=HO["patch"]).flatten(2).transpose(1, 2)
    x = torch.cat([t["visual.class_embedding"].expand(x.shape[0], 1, W), x], dim=1) + t["visual.positional_embedding"]
    x = F.layer_norm(x, (W,), t["visual.ln_pre.weight"], t["visual.ln_pre.bias"], 1e-5)
    x = oracle_blocks(x, t, "visual.", HO["layers"], W // HO["head_width"], False)
    x = F.layer_norm(x[:, 0], (W,), t["visual.ln_post.weight"], t["visual.ln_post.bias"], 1e-5) @ t["visual.proj"]
    return F.normalize(x, dim=-1)


def oracle_text(t, ids):
    F = torch.nn.functional
    TW = HO["twidth"]
    x = t["token_embedding.weight"][ids] + t["positional_embedding"]
    x = oracle_blocks(x, t, "", HO["tlayers"], HO["theads"], True)
    x = F.layer_norm(x, (TW,), t["ln_final.weight"], t["ln_final.bias"], 1e-5)
    x = x[torch.arange(x.shape[0]), ids.argmax(-1)] @ t["text_projection"]
    return F.normalize(x, dim=-1)


def test_heldout(tmp):
    d = os.path.join(tmp, "heldout_teacher")
    t = make_heldout(d)
    first = os.path.join(FIXTURES, "datacompdr", "teachers", "teacher_openai_like")
    out = os.path.join(tmp, "heldout")
    r = run(["reinforce", SHARD, "-o", out, "--teachers", first + "," + d, "--config", CFG, "--reuse-params", SHARD])
    check(r.returncode == 0, "reinforce with the held-out teacher failed: %s" % r.stderr[-400:])
    if r.returncode:
        return
    got = members(os.path.join(out, "00000000.tar"))
    mean = np.array(CONFIG["reinforce"]["image_augmentation"]["normalize"]["mean"], np.float32)
    std = np.array(CONFIG["reinforce"]["image_augmentation"]["normalize"]["std"], np.float32)
    worst_i = worst_t = 0.0
    n_i = 0
    for key in ("000000000", "000000002"):
        e = npz(got[key]["npz"])
        check(e["image_emb"].shape == (30, 44), "%s: image_emb %s" % (key, e["image_emb"].shape))
        for a in (0, 7, 13, 29):
            npy = os.path.join(tmp, "ho_%s_%d.npy" % (key, a))
            r = run(["augment", SHARD, "--key", key, "--aug", str(a), "--size", "224", "-o", npy])
            check(r.returncode == 0, "augment: %s" % r.stderr[-200:])
            if r.returncode:
                continue
            px = np.load(npy).astype(np.float32) / np.float32(255.0)
            x = torch.from_numpy(((px - mean) / std).transpose(2, 0, 1).copy()).unsqueeze(0)
            x = torch.nn.functional.interpolate(x, size=(HO["size"], HO["size"]), mode="bicubic")
            want = oracle_image(t, x)[0].numpy()
            worst_i = max(worst_i, float(np.abs(e["image_emb"][a, 24:] - want).max()))
            n_i += 1
        texts = [json.loads(got[key]["syn.json"])["syn_text"][i] for i in range(5)]
        texts = [got[key]["txt"].decode()] + texts
        r = run(["tokenize"] + texts)
        ids = torch.tensor([[int(v) for v in l.split()] for l in r.stdout.splitlines()])
        want = oracle_text(t, ids).numpy()
        worst_t = max(worst_t, float(np.abs(e["text_emb"][:, 24:] - want).max()))
    print("held-out teacher (112 px, width 96, 3 heads of 32, MLP x3; text width 48): %d images max err %.3g, "
          "captions max err %.3g" % (n_i, worst_i, worst_t))
    check(n_i == 8 and worst_i <= 1e-4, "held-out teacher: image embeddings differ by %g" % worst_i)
    check(worst_t <= 1e-4, "held-out teacher: text embeddings differ by %g" % worst_t)
    # the first teacher's columns are still the fixture's
    ref = npz(members(SHARD)["000000000"]["npz"])
    e = npz(got["000000000"]["npz"])
    check(np.abs(e["image_emb"][:, :24] - ref["image_emb"][:, :24]).max() <= 1e-4, "first teacher's columns moved")


def make_shards(tmp, n_shards, per_shard):
    """Shards of per_shard samples each, made of the fixture's (renamed keys)."""
    ref = members(SHARD)
    keys = sorted(ref)
    d = os.path.join(tmp, "in")
    os.makedirs(d, exist_ok=True)
    k = 0
    for s in range(n_shards):
        with tarfile.open(os.path.join(d, "%08d.tar" % s), "w", format=tarfile.USTAR_FORMAT) as t:
            for _ in range(per_shard):
                src = ref[keys[k % len(keys)]]
                for ext, data in src.items():
                    if ext in ("npz", "paug.json"):
                        continue
                    info = tarfile.TarInfo("%09d.%s" % (k, ext))
                    info.size = len(data)
                    t.addfile(info, io.BytesIO(data))
                k += 1
    return d


def test_resume(tmp):
    src = make_shards(tmp, 4, 6)
    spec = os.path.join(src, "{00000000..00000003}.tar")
    ref = os.path.join(tmp, "resume_ref")
    r = reinforce(ref, [spec], "--num-augs", "6", "--threads", "1")
    check(r.returncode == 0, "reference run failed: %s" % r.stderr[-300:])
    out = os.path.join(tmp, "resume")
    done_dir = os.path.join(out, ".reinforce")
    n_done = lambda: len([f for f in os.listdir(done_dir) if f.endswith(".tar.json")]) if os.path.isdir(done_dir) else 0
    rnd = random.Random(5)
    kills = runs = 0
    finished = False
    while runs < 12 and not finished:
        runs += 1
        # the first run is killed at once (inside the first shard or before); each later one
        # after its next shard is recorded, plus a random delay (inside the shard after it)
        target = 0 if runs == 1 else n_done() + 1
        p = subprocess.Popen([CLI, "reinforce", spec, "-o", out, "--teachers", TEACHERS, "--config", CFG,
                              "--num-augs", "6", "--threads", "1"], env=ENV, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE)
        while n_done() < target and p.poll() is None:
            time.sleep(0.01)
        time.sleep(rnd.uniform(0.0, 0.4))
        if p.poll() is None:
            p.send_signal(signal.SIGKILL)
            p.wait()
            kills += 1
            # what is there under a final name is a whole shard
            for f in os.listdir(out) if os.path.isdir(out) else []:
                if f.endswith(".tar"):
                    try:
                        n = len(members(os.path.join(out, f)))
                    except Exception as e:
                        n = "unreadable: %s" % e
                    check(n == 6, "after a kill %s holds %s samples" % (f, n))
        else:
            _, err = p.communicate()
            finished = p.returncode == 0
            check(finished, "a resumed run failed: %s" % err.decode()[-300:])
            if finished and kills and runs > 2:
                check(b"already done" in err, "the last run did not skip finished shards")
    print("resume: %d kills in %d runs" % (kills, runs))
    check(finished, "the killed run did not complete")
    check(kills >= 1, "no run was killed")
    for s in range(4):
        name = "%08d.tar" % s
        a, b = os.path.join(ref, name), os.path.join(out, name)
        check(os.path.exists(b) and open(a, "rb").read() == open(b, "rb").read(), "%s differs after resume" % name)
    left = [f for f in os.listdir(out) if ".tmp-" in f]
    check(not left, "temporary files left: %s" % left)
    check(open(os.path.join(ref, "manifest.jsonl")).read().count("\n") == 4, "manifest lines")
    return spec, ref


def test_refusals(tmp):
    out = os.path.join(tmp, "reuse")   # made by test_reuse with --reuse-params
    r = reinforce(out, [SHARD], "--num-augs", "4")
    check(r.returncode != 0 and "other settings" in r.stderr, "other settings accepted: %s" % r.stderr[-300:])
    r = reinforce(os.path.join(tmp, "cap"), [SHARD], "--num-augs", "2", "--captioner", "coca_ViT-L-14",
                  "--num-syn", "5")
    check(r.returncode != 0 and "captioner" in r.stderr, "--captioner: %s" % r.stderr[-300:])
    bad = os.path.join(tmp, "cfg192.json")
    cfg = json.loads(open(CFG).read())
    cfg["reinforce"]["image_augmentation"]["random_resized_crop"]["size"] = 192
    json.dump(cfg, open(bad, "w"))
    r = run(["reinforce", SHARD, "-o", os.path.join(tmp, "bad"), "--teachers", TEACHERS, "--config", bad,
             "--num-augs", "2"])
    check(r.returncode != 0 and "224" in r.stderr and "192" in r.stderr, "crop below a teacher's size: %s"
          % r.stderr[-300:])
    cfg["reinforce"]["image_augmentation"]["random_resized_crop"]["size"] = 224
    cfg["reinforce"]["image_augmentation"]["normalize"]["mean"] = [0.5, 0.5, 0.5]
    json.dump(cfg, open(bad, "w"))
    r = run(["reinforce", SHARD, "-o", os.path.join(tmp, "bad2"), "--teachers", TEACHERS, "--config", bad,
             "--num-augs", "2"])
    check(r.returncode != 0 and "mean" in r.stderr, "another mean accepted: %s" % r.stderr[-300:])
    # an undecodable image and a sample without caption are skipped and counted
    d = os.path.join(tmp, "broken")
    os.makedirs(d)
    ref = members(SHARD)
    with tarfile.open(os.path.join(d, "x.tar"), "w", format=tarfile.USTAR_FORMAT) as t:
        for key, m in sorted(ref.items()):
            for ext, data in m.items():
                if key == "000000001" and ext == "jpg":
                    data = data[:200]
                if key == "000000002" and ext == "txt":
                    continue
                info = tarfile.TarInfo("%s.%s" % (key, ext))
                info.size = len(data)
                t.addfile(info, io.BytesIO(data))
    out = os.path.join(tmp, "broken_out")
    r = reinforce(out, [os.path.join(d, "x.tar")], "--num-augs", "2")
    check(r.returncode == 0 and "1 samples, 2 skipped" in r.stdout, "skips: %s %s" % (r.stdout, r.stderr[-300:]))
    check(list(members(os.path.join(out, "x.tar"))) == ["000000000"], "the good sample is not alone")


def test_mpi(tmp, spec, ref):
    mpirun = shutil.which("mpirun")
    ldd = subprocess.run(["ldd", CLI], capture_output=True, text=True).stdout
    if not mpirun or "libmpi" not in ldd:
        print("MPI part not run: the build has no MPI or mpirun is missing")
        return
    env = dict(ENV, OMPI_MCA_btl="self,tcp", OMPI_MCA_btl_tcp_if_include="lo", OMPI_MCA_oob_tcp_if_include="lo")
    out = os.path.join(tmp, "mpi")
    cmd = [mpirun, "-np", "2", "--oversubscribe"] + (["--allow-run-as-root"] if os.getuid() == 0 else [])
    r = subprocess.run(cmd + [CLI, "reinforce", spec, "-o", out, "--teachers", TEACHERS, "--config", CFG,
                              "--num-augs", "6", "--threads", "1"], env=env, capture_output=True, text=True)
    check(r.returncode == 0, "mpirun -np 2 failed: %s" % r.stderr[-500:])
    check(r.stdout.count("2 shards written") == 2, "each rank wrote 2 shards: %s" % r.stdout)
    for s in range(4):
        name = "%08d.tar" % s
        b = os.path.join(out, name)
        check(os.path.exists(b) and open(os.path.join(ref, name), "rb").read() == open(b, "rb").read(),
              "%s from 2 ranks differs" % name)
    check(open(os.path.join(ref, "manifest.jsonl")).read().count("\n") ==
          open(os.path.join(out, "manifest.jsonl")).read().count("\n"), "manifest of 2 ranks")


def main():
    global CFG
    tmp = tempfile.mkdtemp(prefix="mc_reinforce.")
    CFG = os.path.join(tmp, "datacompdr12m.json")
    with open(CFG, "w") as f:
        json.dump(CONFIG, f)
    test_reuse(tmp)
    test_fresh(tmp)
    test_layouts(tmp)
    test_heldout(tmp)
    spec, ref = test_resume(tmp)
    test_refusals(tmp)
    test_mpi(tmp, spec, ref)
    status = summary(NAME)
    if not status:
        shutil.rmtree(tmp, ignore_errors=True)
    return status


if __name__ == "__main__":
    sys.exit(main())
