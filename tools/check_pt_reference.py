#!/usr/bin/python3
"""check_pt_reference.py - does Apple's own PyTorch code load what
`mobileclip convert --format pt` writes, and give our embeddings?

For each mobileclip-repo (v1) fixture folder given (config.json, model.pt,
expected.safetensors):
  1. `mobileclip convert FIXTURE -o OUT.pt` (or --pt: a file converted already);
  2. the reference model class, mobileclip.clip.CLIP(config) from a checkout
     of apple/ml-mobileclip (REF), unfused as built, loads it with
     torch.load(OUT.pt, map_location="cpu", weights_only=True) and
     load_state_dict(..., strict=True), and embeds the fixture's stored
     pixels and tokens (eval mode, L2-normalised);
  3. our CLI embeds the same images and texts from OUT.pt (embed-image,
     embed-text), after checking that our preprocessing and tokens are the
     fixture's;
  4. prints the max-abs differences: reference on OUT.pt vs ours on OUT.pt
     (the figure; it must stay within --tol, default 1e-5), and reference on
     OUT.pt vs the fixture's stored reference embeddings.

Needs PyTorch (Debian 12's python3-torch 1.13 is enough: the reference's
timm / open_clip imports are stood in for by bench/reference/export_reference.py)
and a build (make).  Exit status 0 when every figure is within --tol.

usage: tools/check_pt_reference.py REF FIXTURE_DIR... [--pt OUT.pt] [--cli build/mobileclip] [--tol 1e-5]
e.g.   tools/check_pt_reference.py /tmp/ml-mobileclip ../shared/fixtures/models/v1_mci_mct
"""
import argparse
import functools
import json
import os
import re
import struct
import subprocess
import sys
import tempfile

ROOT = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))


def read_safetensors(path):
    """Tensors (numpy) and metadata of a safetensors file."""
    import numpy as np
    with open(path, "rb") as f:
        data = f.read()
    n = struct.unpack("<Q", data[:8])[0]
    header = json.loads(data[8:8 + n])
    meta = header.pop("__metadata__", {})
    dtypes = {"F32": np.float32, "F16": np.float16, "F64": np.float64, "I64": np.int64, "I32": np.int32}
    out = {}
    for name, v in header.items():
        a, b = v["data_offsets"]
        out[name] = np.frombuffer(data[8 + n + a:8 + n + b], dtype=dtypes[v["dtype"]]).reshape(v["shape"])
    return out, meta


def sized_create_model(sd):
    """The reference's timm create_model for image towers at the size of the
    state dict sd: the fixtures keep the official architectures (mci0's stage
    layout, vit_b16's conv stem and 64-channel heads) at smaller depths and
    widths, which the reference's constructors (mci0(), vit_b16()) fix at full
    size.  The classes built are the reference's own (FastViT, VisionTransformer)."""
    from mobileclip.models import mci, vit
    keys = list(sd)
    pre = "image_encoder.model."

    def create_model(name, **kwargs):
        if name.startswith("mci"):
            blocks = {}
            for k in keys:
                m = re.match(re.escape(pre) + r"network\.(\d+)\.(\d+)\.", k)
                if m:
                    blocks.setdefault(int(m.group(1)), set()).add(int(m.group(2)))
            stages = sorted(blocks)
            n = len(stages)
            fc1 = [sd["%snetwork.%d.0.convffn.fc1.weight" % (pre, i)].shape for i in stages]
            dims = [int(w[1]) for w in fc1]
            ratios = [w[0] / w[1] for w in fc1]
            return mci.FastViT([len(blocks[i]) for i in stages],
                               token_mixers=("repmixer",) * (n - 1) + ("attention",),
                               embed_dims=dims, mlp_ratios=ratios,
                               pos_embs=[None] * (n - 1) + [functools.partial(mci.RepCPE, spatial_shape=(7, 7))],
                               downsamples=[True] * n, se_downsamples=[False] * (n - 2) + [True, True], **kwargs)
        if name == "vit_b16":
            width = int(sd[pre + "cls_token"].shape[-1])
            depth = len({k.split(".")[3] for k in keys if k.startswith(pre + "transformer.")})
            cfg = {"norm_layer": "layer_norm_fp32", "act_layer": "gelu", "embed_dim": width,
                   "n_transformer_layers": depth, "n_attn_heads": width // 64}
            return vit.VisionTransformer(cfg=cfg, **kwargs)
        raise KeyError("no reference image tower %r" % name)

    return create_model


def run(cmd):
    env = dict(os.environ, MOBILECLIP_OFFLINE="1", MOBILECLIP_NO_PROGRESS="1")
    r = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if r.returncode != 0:
        sys.exit("failed (%d): %s\n%s" % (r.returncode, " ".join(cmd), r.stderr))
    return r.stdout


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("ref", help="checkout of apple/ml-mobileclip")
    ap.add_argument("fixtures", nargs="+", help="v1 fixture folders (config.json, model.pt, expected.safetensors)")
    ap.add_argument("--pt", help="an already converted .pt (one fixture only)")
    ap.add_argument("--cli", default=os.path.join(ROOT, "build", "mobileclip"))
    ap.add_argument("--tol", type=float, default=1e-5)
    args = ap.parse_args()
    if args.pt and len(args.fixtures) != 1:
        sys.exit("--pt goes with one fixture folder")

    sys.path.insert(0, os.path.join(ROOT, "bench", "reference"))
    from export_reference import install_import_shims
    install_import_shims()
    sys.path.insert(0, os.path.abspath(args.ref))
    import numpy as np
    import torch
    import torch.nn.functional as F
    import mobileclip.image_encoder
    from mobileclip.clip import CLIP

    worst = 0.0
    with tempfile.TemporaryDirectory(prefix="mc-pt-ref-") as tmp:
        for fx in args.fixtures:
            fx = os.path.abspath(fx)
            name = os.path.basename(fx.rstrip("/"))
            cfg_path = os.path.join(fx, "config.json")
            with open(cfg_path) as f:
                cfg = json.load(f)
            expected, meta = read_safetensors(os.path.join(fx, "expected.safetensors"))
            pt = args.pt or os.path.join(tmp, name + ".pt")
            if not args.pt:
                run([args.cli, "convert", fx, "--format", "pt", "-o", pt])

            # the reference, unfused, strictly loading the converted file
            sd = torch.load(pt, map_location="cpu", weights_only=True)
            mobileclip.image_encoder.create_model = sized_create_model(sd)
            torch.manual_seed(0)
            model = CLIP(cfg=cfg).eval()
            model.load_state_dict(sd, strict=True)
            pixels = torch.from_numpy(expected["pixels"].copy())
            tokens = torch.from_numpy(expected["tokens"].copy())
            with torch.no_grad():
                ref_img = F.normalize(model.encode_image(pixels), dim=-1).numpy()
                ref_txt = F.normalize(model.encode_text(tokens), dim=-1).numpy()

            # ours, from the converted file, on the same images and texts
            fixtures_root = os.path.dirname(os.path.dirname(fx))
            images = [os.path.join(fixtures_root, "images", x) for x in meta["images"].split(",")]
            texts = json.loads(meta["texts"])
            vocab = os.path.join(fixtures_root, "tokenizer", "bpe_simple_vocab_16e6.txt.gz")
            size = cfg["image_cfg"]["image_size"]
            px_diff = 0.0
            for i, im in enumerate(images):
                out = os.path.join(tmp, "px.npy")
                run([args.cli, "preprocess", "--size", str(size), "--interp", "bilinear", im, "-o", out])
                px_diff = max(px_diff, float(np.abs(np.load(out) - expected["pixels"][i]).max()))
            ids = [[int(x) for x in line.split()]
                   for line in run([args.cli, "tokenize", "--vocab", vocab, "--"] + texts).splitlines()]
            tok_same = np.array_equal(np.array(ids, dtype=np.int64), expected["tokens"])
            img_npy, txt_npy = os.path.join(tmp, "img.npy"), os.path.join(tmp, "txt.npy")
            run([args.cli, "embed-image", "-m", pt, "--config", cfg_path, "-o", img_npy] + images)
            run([args.cli, "embed-text", "-m", pt, "--config", cfg_path, "--vocab", vocab, "-o", txt_npy, "--"]
                + texts)
            our_img, our_txt = np.load(img_npy), np.load(txt_npy)

            d_img = float(np.abs(ref_img - our_img).max())
            d_txt = float(np.abs(ref_txt - our_txt).max())
            s_img = float(np.abs(ref_img - expected["image_embeddings"]).max())
            s_txt = float(np.abs(ref_txt - expected["text_embeddings"]).max())
            print("%s: reference loads %s strictly (%d tensors); max-abs reference vs ours on it: "
                  "image %.3g, text %.3g; reference on it vs the fixture's reference: image %.3g, text %.3g; "
                  "our pixels vs the fixture's: %.3g, tokens %s; torch %s"
                  % (name, os.path.basename(pt), len(sd), d_img, d_txt, s_img, s_txt, px_diff,
                     "identical" if tok_same else "DIFFER", torch.__version__))
            worst = max(worst, d_img, d_txt)
            if not tok_same or px_diff > 0:
                worst = float("inf")
    print("worst max-abs %.3g (tolerance %g): %s" % (worst, args.tol, "ok" if worst <= args.tol else "FAILED"))
    return 0 if worst <= args.tol else 1


if __name__ == "__main__":
    sys.exit(main())
