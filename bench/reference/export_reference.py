#!/usr/bin/env python3
"""
export_reference.py - build a MobileCLIP v1 model with the reference PyTorch
code (a checkout of apple/ml-mobileclip, given with --ref), fill it with
seeded random weights, and write what the peer comparison needs:

  OUT/model.pt            the unfolded state dict (torch.save), as released
  OUT/config.json         the reference's config for the model
  OUT/image.onnx          the re-parameterised image encoder, batch 1
  OUT/text.onnx           the re-parameterised text encoder, batch 1
  OUT/image_input.npy     the image input (1,3,H,W) float32
  OUT/text_input.npy      the tokens (1,77) int64 (SOT, 23 random tokens, EOT)
  OUT/text_tokens_f32.npy the same tokens as float32 (exact below 2^24)
  OUT/image_expected.npy  the reference's L2-normalised image embedding
  OUT/text_expected.npy   the reference's L2-normalised text embedding

Only PyTorch (and torchvision, for the reference's imports) is needed: the
reference's other imports (timm, open_clip) are replaced by the few names it
uses, defined below.  Random weights time exactly like released ones; the
running statistics and scales are randomised too, so folding is not trivial.

usage: export_reference.py --ref DIR [--model mobileclip_s0] [--out DIR] [--seed N]
"""
import argparse
import json
import os
import sys
import types


def install_import_shims():
    """The reference imports a handful of names from timm and open_clip;
    provide them so that neither package is needed."""
    import torch
    import torch.nn as nn

    registry = {}

    def register_model(fn):
        registry[fn.__name__] = fn
        return fn

    def create_model(name, **kwargs):
        if name not in registry:
            raise KeyError("no model %r registered" % name)
        return registry[name](**kwargs)

    class DropPath(nn.Module):
        def __init__(self, p=0.0):
            super().__init__()
            self.p = p

        def forward(self, x):
            if self.p == 0.0 or not self.training:
                return x
            keep = torch.rand(x.shape[0], *([1] * (x.dim() - 1)), device=x.device) >= self.p
            return x * keep / (1.0 - self.p)

    class SqueezeExcite(nn.Module):
        """timm's SEModule as the reference builds it (rd_ratio, divisor 8)."""

        def __init__(self, channels, rd_ratio=1.0 / 16, rd_divisor=8):
            super().__init__()
            rd = max(rd_divisor, int(channels * rd_ratio + rd_divisor / 2) // rd_divisor * rd_divisor)
            self.fc1 = nn.Conv2d(channels, rd, 1, bias=True)
            self.act = nn.ReLU(inplace=True)
            self.fc2 = nn.Conv2d(rd, channels, 1, bias=True)

        def forward(self, x):
            s = self.fc2(self.act(self.fc1(x.mean((2, 3), keepdim=True))))
            return x * torch.sigmoid(s)

    timm = types.ModuleType("timm")
    timm_data = types.ModuleType("timm.data")
    timm_data.IMAGENET_DEFAULT_MEAN = (0.485, 0.456, 0.406)
    timm_data.IMAGENET_DEFAULT_STD = (0.229, 0.224, 0.225)
    timm_models = types.ModuleType("timm.models")
    timm_models.register_model = register_model
    timm_models.create_model = create_model
    timm_layers = types.ModuleType("timm.models.layers")
    timm_layers.DropPath = DropPath
    timm_layers.trunc_normal_ = nn.init.trunc_normal_
    timm_layers.SqueezeExcite = SqueezeExcite
    timm.data, timm.models = timm_data, timm_models
    timm_models.layers = timm_layers
    sys.modules.update({"timm": timm, "timm.data": timm_data, "timm.models": timm_models,
                        "timm.models.layers": timm_layers})

    open_clip = types.ModuleType("open_clip")

    def get_tokenizer(*a, **k):
        raise NotImplementedError("tokenizing is not needed here")

    open_clip.get_tokenizer = get_tokenizer
    sys.modules["open_clip"] = open_clip


def randomise(model, seed):
    """Random weights everywhere, including BatchNorm statistics and layer
    scales, so that every folding rule has something to fold."""
    import torch
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, t in model.state_dict().items():
            if not t.is_floating_point():
                continue
            if name.endswith("running_var"):
                t.copy_(torch.rand(t.shape, generator=g) * 0.5 + 0.75)
            elif name.endswith("running_mean") or name.endswith(".bias"):
                t.copy_(torch.randn(t.shape, generator=g) * 0.05)
            elif name.endswith("logit_scale"):
                continue
            elif "layer_scale" in name or name.endswith("gamma"):
                t.copy_(torch.rand(t.shape, generator=g) * 0.5 + 0.5)
            elif t.dim() <= 1:
                t.copy_(torch.rand(t.shape, generator=g) * 0.5 + 0.75)
            else:
                fan_in = t[0].numel() if t.dim() > 1 else t.numel()
                t.copy_(torch.randn(t.shape, generator=g) * (1.0 / fan_in) ** 0.5)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--ref", required=True, help="checkout of apple/ml-mobileclip")
    ap.add_argument("--model", default="mobileclip_s0")
    ap.add_argument("--out", default=None)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--opset", type=int, default=17)
    args = ap.parse_args()
    out = args.out or args.model + "_ref"
    os.makedirs(out, exist_ok=True)

    install_import_shims()
    sys.path.insert(0, os.path.abspath(args.ref))
    import numpy as np
    import torch
    import torch.nn.functional as F
    from mobileclip.clip import CLIP
    from mobileclip.modules.common.mobileone import reparameterize_model

    cfg_path = os.path.join(args.ref, "mobileclip", "configs", args.model + ".json")
    with open(cfg_path) as f:
        cfg = json.load(f)
    torch.manual_seed(args.seed)
    model = CLIP(cfg=cfg).eval()
    randomise(model, args.seed)
    torch.save(model.state_dict(), os.path.join(out, "model.pt"))
    with open(os.path.join(out, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2)
    folded = reparameterize_model(model).eval()

    size = cfg["image_cfg"]["image_size"]
    g = torch.Generator().manual_seed(args.seed + 1)
    image = torch.rand((1, 3, size, size), generator=g)
    ctx = cfg["text_cfg"]["context_length"]
    tokens = torch.zeros((1, ctx), dtype=torch.int64)
    tokens[0, 0] = 49406
    tokens[0, 1:24] = torch.randint(1, 49406, (23,), generator=g)
    tokens[0, 24] = 49407

    class ImageTower(torch.nn.Module):
        def __init__(self, m):
            super().__init__()
            self.m = m

        def forward(self, x):
            return F.normalize(self.m.encode_image(x), dim=-1)

    class TextTower(torch.nn.Module):
        def __init__(self, m):
            super().__init__()
            self.m = m

        def forward(self, t):
            return F.normalize(self.m.encode_text(t), dim=-1)

    with torch.no_grad():
        img_tower, txt_tower = ImageTower(folded).eval(), TextTower(folded).eval()
        img_emb, txt_emb = img_tower(image), txt_tower(tokens)
        unfolded_img = F.normalize(model.encode_image(image), dim=-1)
        print("reference: folded vs unfolded image embedding max-abs %.3g"
              % (img_emb - unfolded_img).abs().max().item())
        torch.onnx.export(img_tower, (image,), os.path.join(out, "image.onnx"),
                          input_names=["image"], output_names=["embedding"],
                          opset_version=args.opset, do_constant_folding=True)
        torch.onnx.export(txt_tower, (tokens,), os.path.join(out, "text.onnx"),
                          input_names=["tokens"], output_names=["embedding"],
                          opset_version=args.opset, do_constant_folding=True)
    np.save(os.path.join(out, "image_input.npy"), image.numpy())
    np.save(os.path.join(out, "text_input.npy"), tokens.numpy())
    np.save(os.path.join(out, "text_tokens_f32.npy"), tokens.numpy().astype(np.float32))
    np.save(os.path.join(out, "image_expected.npy"), img_emb.numpy())
    np.save(os.path.join(out, "text_expected.npy"), txt_emb.numpy())
    print("wrote %s (torch %s, opset %d)" % (out, torch.__version__, args.opset))


if __name__ == "__main__":
    main()
