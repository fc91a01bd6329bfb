#!/usr/bin/env python3
"""Builds a CoCa captioner of other sizes with OpenCLIP's own code and writes it
with reference outputs, in the layout of ../shared/fixtures/datacompdr/captioner,
for a cross-check of src/model/coca.c beyond the fixture's sizes:

    /usr/bin/python3 tools/coca_reference.py OPEN_CLIP_SRC OUT_DIR [--no-pool | --packed-pool | --bin]
    MC_COCA_EXTRA=OUT_DIR build/tests/test_coca

OPEN_CLIP_SRC is the src/ folder of an mlfoundations/open_clip checkout (3.x;
imported without its package __init__, so neither timm nor transformers is
needed). Needs torch and numpy. Writes open_clip_config.json,
open_clip_model.safetensors and expected.safetensors (pixels, tokens,
image_features, text_features, logits_first1024, logits_argmax,
logits_logsumexp, greedy_tokens; the fixture README's definitions).
--no-pool: no attentional pooler (the patch tokens go to the decoder);
--packed-pool: vision width = embed_dim, so the pooler's q, k, v projections
are one in_proj_weight; --bin: the weights as open_clip_pytorch_model.bin
(torch.save) instead of safetensors
(text_cfg cannot carry correct_cls_mask in OpenCLIP 3.2).
"""
import json
import os
import struct
import sys
import types

import numpy as np
import torch

CFG = {
    "embed_dim": 48,
    "quick_gelu": True,
    "vision_cfg": {"image_size": 112, "layers": 3, "width": 96, "patch_size": 16, "head_width": 32,
                   "mlp_ratio": 2.5, "attentional_pool": True, "attn_pooler_heads": 3,
                   "attn_pooler_queries": 17, "output_tokens": True},
    "text_cfg": {"context_length": 76, "vocab_size": 49408, "width": 48, "heads": 4, "layers": 3,
                 "mlp_ratio": 3.0, "embed_cls": True, "output_tokens": True},
    "multimodal_cfg": {"context_length": 76, "vocab_size": 49408, "width": 48, "heads": 6, "layers": 4,
                       "mlp_ratio": 2.0, "attn_pooler_heads": 3},
    "custom_text": True,
}


def save_safetensors(path, tensors):
    header, blobs, off = {}, [], 0
    for name, a in tensors.items():
        a = np.ascontiguousarray(a)
        dt = {np.dtype("float32"): "F32", np.dtype("int64"): "I64"}[a.dtype]
        b = a.astype(a.dtype.newbyteorder("<")).tobytes()
        header[name] = {"dtype": dt, "shape": list(a.shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    h = json.dumps(header).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


def main():
    if len(sys.argv) not in (3, 4):
        sys.exit(__doc__)
    src, out = sys.argv[1], sys.argv[2]
    pkg = types.ModuleType("open_clip")
    pkg.__path__ = [os.path.join(src, "open_clip")]
    sys.modules["open_clip"] = pkg
    from open_clip.coca_model import CoCa

    torch.manual_seed(0)
    cfg = json.loads(json.dumps(CFG))
    if sys.argv[3:] == ["--no-pool"]:
        cfg["vision_cfg"].update(width=48, head_width=16, attentional_pool=False)
    elif sys.argv[3:] == ["--packed-pool"]:
        cfg["vision_cfg"].update(width=48, head_width=16)
    model = CoCa(cfg["embed_dim"], cfg["multimodal_cfg"], cfg["text_cfg"], cfg["vision_cfg"],
                 quick_gelu=cfg["quick_gelu"]).eval()
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.ndim == 1 and ("ln" in name) and name.endswith("weight"):
                p.copy_(1 + 0.1 * torch.randn(p.shape, generator=g))
            elif p.ndim <= 1:
                p.copy_(0.1 * torch.randn(p.shape, generator=g))
            else:
                p.copy_(torch.randn(p.shape, generator=g) * p.shape[-1] ** -0.5)
    os.makedirs(out, exist_ok=True)
    if sys.argv[3:] == ["--bin"]:
        torch.save(model.state_dict(), os.path.join(out, "open_clip_pytorch_model.bin"))
    else:
        save_safetensors(os.path.join(out, "open_clip_model.safetensors"),
                         {k: v.detach().float().numpy() for k, v in model.state_dict().items()})
    with open(os.path.join(out, "open_clip_config.json"), "w") as f:
        json.dump({"model_cfg": cfg, "preprocess_cfg": {"interpolation": "bicubic", "resize_mode": "shortest"}},
                  f, indent=2)

    n, S, L = 3, cfg["vision_cfg"]["image_size"], cfg["text_cfg"]["context_length"]
    pixels = torch.randn(n, 3, S, S, generator=g)
    tokens = torch.zeros(n, L, dtype=torch.long)
    for i, k in enumerate([9, 14, 30]):   # SOT, k random ids, EOT, zero padding
        tokens[i, 0] = 49406
        tokens[i, 1:k + 1] = torch.randint(1, 49406, (k,), generator=g)
        tokens[i, k + 1] = 49407
    with torch.no_grad():
        o = model(pixels, tokens)   # output_labels: logits of tokens[:, :-1]
        logits = o["logits"]
        img = o["image_features"]
        txt = model.encode_text(tokens)
        greedy = torch.full((n, 1), 49406, dtype=torch.long)
        done = torch.zeros(n, dtype=torch.bool)
        for _ in range(20):
            nxt = model(pixels, greedy, output_labels=False)["logits"][:, -1].argmax(-1)
            nxt = torch.where(done, torch.zeros_like(nxt), nxt)
            greedy = torch.cat([greedy, nxt[:, None]], 1)
            done |= nxt == 49407
            if done.all():
                break
    save_safetensors(os.path.join(out, "expected.safetensors"), {
        "pixels": pixels.numpy(), "tokens": tokens.numpy(),
        "image_features": img.numpy(), "text_features": txt.numpy(),
        "logits_first1024": logits[..., :1024].contiguous().numpy(),
        "logits_argmax": logits.argmax(-1).numpy(), "logits_logsumexp": logits.logsumexp(-1).numpy(),
        "greedy_tokens": greedy.numpy()})
    print("%s: CoCa %s, greedy %s" % (out, json.dumps(cfg)[:80], greedy.tolist()))


if __name__ == "__main__":
    main()
