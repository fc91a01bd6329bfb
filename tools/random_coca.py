#!/usr/bin/env python3
"""Writes a CoCa captioner with seeded random weights in OpenCLIP's layout
(open_clip_config.json + open_clip_model.safetensors) for benchmarks.

    random_coca.py OUT_DIR [--small]

The default is coca_ViT-L-14's shape (vision 24 x 1024, patch 14, 256 pooler
queries; text and decoder 12 x 768, 12 heads; vocab 49408; about 640M
parameters, 2.5 GB).  Needs numpy only.  The tensor names and shapes are
OpenCLIP's (open_clip/transformer.py VisionTransformer with attentional_pool,
TextTransformer with embed_cls, MultimodalTransformer).
"""
import json
import os
import struct
import sys

import numpy as np


def config(small):
    if small:
        v, t, e = dict(layers=2, width=128), dict(width=64, heads=2, layers=2), 64
    else:
        v, t, e = dict(layers=24, width=1024), dict(width=768, heads=12, layers=12), 768
    return {
        "model_cfg": {
            "embed_dim": e,
            "vision_cfg": {"image_size": 224, "layers": v["layers"], "width": v["width"], "patch_size": 14,
                           "attentional_pool": True, "attn_pooler_heads": 8, "output_tokens": True},
            "text_cfg": {"context_length": 76, "vocab_size": 49408, "width": t["width"], "heads": t["heads"],
                         "layers": t["layers"], "embed_cls": True, "output_tokens": True},
            "multimodal_cfg": {"context_length": 76, "vocab_size": 49408, "width": t["width"],
                               "heads": t["heads"], "layers": t["layers"], "attn_pooler_heads": t["heads"]},
            "custom_text": True,
        },
        "preprocess_cfg": {"mean": [0.48145466, 0.4578275, 0.40821073],
                           "std": [0.26862954, 0.26130258, 0.27577711],
                           "interpolation": "bicubic", "resize_mode": "shortest"},
    }


def shapes(cfg):
    m = cfg["model_cfg"]
    vc, tc, mc, E = m["vision_cfg"], m["text_cfg"], m["multimodal_cfg"], m["embed_dim"]
    W, P, G = vc["width"], vc["patch_size"], vc["image_size"] // vc["patch_size"]
    out = [("logit_scale", [])]

    def block(pre, d, cross=False):
        r = [(pre + "ln_1.weight", [d]), (pre + "ln_1.bias", [d]),
             (pre + "attn.in_proj_weight", [3 * d, d]), (pre + "attn.in_proj_bias", [3 * d]),
             (pre + "attn.out_proj.weight", [d, d]), (pre + "attn.out_proj.bias", [d])]
        if cross:
            r += [(pre + "ln_1_kv.weight", [d]), (pre + "ln_1_kv.bias", [d])]
        r += [(pre + "ln_2.weight", [d]), (pre + "ln_2.bias", [d]),
              (pre + "mlp.c_fc.weight", [4 * d, d]), (pre + "mlp.c_fc.bias", [4 * d]),
              (pre + "mlp.c_proj.weight", [d, 4 * d]), (pre + "mlp.c_proj.bias", [d])]
        return r

    out += [("visual.class_embedding", [W]), ("visual.positional_embedding", [G * G + 1, W]),
            ("visual.proj", [E, E]), ("visual.conv1.weight", [W, 3, P, P]),
            ("visual.ln_pre.weight", [W]), ("visual.ln_pre.bias", [W])]
    for i in range(vc["layers"]):
        out += block("visual.transformer.resblocks.%d." % i, W)
    out += [("visual.attn_pool.query", [256, E]), ("visual.attn_pool.attn.q_proj_weight", [E, E]),
            ("visual.attn_pool.attn.k_proj_weight", [E, W]), ("visual.attn_pool.attn.v_proj_weight", [E, W]),
            ("visual.attn_pool.attn.in_proj_bias", [3 * E]), ("visual.attn_pool.attn.out_proj.weight", [E, E]),
            ("visual.attn_pool.attn.out_proj.bias", [E]), ("visual.attn_pool.ln_q.weight", [E]),
            ("visual.attn_pool.ln_q.bias", [E]), ("visual.attn_pool.ln_k.weight", [W]),
            ("visual.attn_pool.ln_k.bias", [W]), ("visual.ln_post.weight", [E]), ("visual.ln_post.bias", [E])]
    T = tc["width"]
    out += [("text.cls_emb", [T]), ("text.positional_embedding", [tc["context_length"] + 1, T]),
            ("text.text_projection", [T, E]), ("text.token_embedding.weight", [tc["vocab_size"], T])]
    for i in range(tc["layers"]):
        out += block("text.transformer.resblocks.%d." % i, T)
    out += [("text.ln_final.weight", [T]), ("text.ln_final.bias", [T])]
    D = mc["width"]
    out += [("text_decoder.text_projection", [D, mc["vocab_size"]])]
    for i in range(mc["layers"]):
        out += block("text_decoder.resblocks.%d." % i, D)
    for i in range(mc["layers"]):
        out += block("text_decoder.cross_attn.%d." % i, D, cross=True)
    out += [("text_decoder.ln_final.weight", [D]), ("text_decoder.ln_final.bias", [D])]
    return out


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    out_dir, small = sys.argv[1], "--small" in sys.argv[2:]
    os.makedirs(out_dir, exist_ok=True)
    cfg = config(small)
    rng = np.random.default_rng(0)
    tensors, header, off = shapes(cfg), {}, 0
    for name, shp in tensors:
        n = int(np.prod(shp)) if shp else 1
        header[name] = {"dtype": "F32", "shape": shp, "data_offsets": [off, off + 4 * n]}
        off += 4 * n
    h = json.dumps(header).encode()
    h += b" " * (-len(h) % 8)
    path = os.path.join(out_dir, "open_clip_model.safetensors")
    with open(path + ".tmp", "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for name, shp in tensors:
            n = int(np.prod(shp)) if shp else 1
            if name.endswith(("ln_1.weight", "ln_2.weight", "ln_1_kv.weight", "ln_final.weight", "ln_pre.weight",
                              "ln_post.weight", "ln_q.weight", "ln_k.weight")):
                a = np.ones(n, np.float32)
            elif name.endswith("bias"):
                a = np.zeros(n, np.float32)
            elif name == "logit_scale":
                a = np.array([np.log(1 / 0.07)], np.float32)
            else:
                fan_in = shp[-1] if len(shp) >= 2 else shp[0]
                a = (rng.standard_normal(n, dtype=np.float32) * (fan_in ** -0.5)).astype(np.float32)
            f.write(a.astype("<f4").tobytes())
    os.replace(path + ".tmp", path)
    with open(os.path.join(out_dir, "open_clip_config.json"), "w") as f:
        json.dump(cfg, f, indent=2)
    print("%s: %d tensors, %.1fM parameters" % (out_dir, len(tensors), off / 4e6))


if __name__ == "__main__":
    main()
