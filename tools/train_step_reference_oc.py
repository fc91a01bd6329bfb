#!/usr/bin/python3
"""Reference training steps of an OpenCLIP-layout MobileCLIP student, for
`mobileclip train-step-check`.

Runs the reference code itself (OpenCLIP's CustomTextCLIP with a timm trunk,
PyTorch autograd, torch.optim.AdamW) on an OpenCLIP model folder
(open_clip_config.json + open_clip_model.safetensors) in train mode, with the
inputs and settings of a training fixture (train_s0_tiny's pixels, tokens,
teacher embeddings, loss weights and AdamW settings; the pixels centre-cropped
when the tower is smaller, e.g. 224 of 256), and writes a fixture folder in the
same format:

  OUT/open_clip_config.json   copy of the model's config
  OUT/init.safetensors        the starting weights (OpenCLIP names)
  OUT/expected.safetensors    inputs, step1/features/{image,text_real,text_syn}
                              (train-mode features before L2 normalisation),
                              step1/loss, step1/loss_terms, step1/grad/<param>,
                              stepN/state/<name> (parameters and buffers after
                              each step), the settings in the metadata

The loss is the DR loss of MobileCLIP's reinforced training as the fixture
README and docs/training.md describe it, written here from that description:
for the real and for the synthetic captions, w_c * CLIP + w_d * KD, KD the
cross-entropy from the mean over teachers of softmax(scale_k * teacher
similarity) to the student's log-softmax, both directions averaged.

Usage (Debian's python3-torch 1.13; open_clip and timm sources as fetched,
not installed):

  /usr/bin/python3 tools/train_step_reference_oc.py \
      --open-clip /path/to/open_clip/src --timm /path/to/pytorch-image-models \
      --model ../shared/fixtures/models/oc_mobileclip2_s0 \
      --inputs ../shared/fixtures/models/train_s0_tiny/expected.safetensors \
      --out /tmp/oc_s0_train
  ./build/mobileclip train-step-check /tmp/oc_s0_train

Modules the reference imports only for tokenizing or progress bars (ftfy,
regex, tqdm) are replaced by empty stand-ins when they are not installed: the
tokens come from the inputs file.  The fixture models are built by the
official code at reduced widths and depths; the timm trunk is created with the
depths and widths read from the checkpoint (fastvit_mci*: layers, embed_dims,
mlp_ratios; vit_base_mci_224: the ConvStem channels, embed_dim, depth).
"""
import argparse
import json
import math
import os
import re
import shutil
import struct
import sys
import types


def stub_modules():
    """Stand-ins for modules the reference imports but this script does not use."""
    for name in ("ftfy", "regex", "tqdm"):
        try:
            __import__(name)
            continue
        except ImportError:
            pass
        m = types.ModuleType(name)
        if name == "ftfy":
            m.fix_text = lambda s, **k: s
        elif name == "regex":
            m.compile = lambda *a, **k: None
            m.IGNORECASE = 2
        else:
            m.tqdm = lambda *a, **k: None
        sys.modules[name] = m


ST_DTYPES = {"F32": "float32", "F16": "float16", "I64": "int64", "I32": "int32"}


def read_safetensors(path):
    import numpy as np
    import torch
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for k, v in header.items():
        if k == "__metadata__":
            continue
        a, b = v["data_offsets"]
        arr = np.frombuffer(data[a:b], dtype=ST_DTYPES[v["dtype"]]).reshape(v["shape"]).copy()
        out[k] = torch.from_numpy(arr)
    return out, header.get("__metadata__", {})


def write_safetensors(path, tensors, metadata):
    """tensors: name -> torch tensor (float32 or int64), written in order."""
    import numpy as np
    header, blobs, off = {}, [], 0
    for k, t in tensors.items():
        a = t.detach().cpu().contiguous().numpy()
        if a.dtype == np.float32:
            dt = "F32"
        elif a.dtype == np.int64:
            dt = "I64"
        else:
            raise ValueError("%s: dtype %s" % (k, a.dtype))
        b = a.astype(a.dtype.newbyteorder("<")).tobytes()
        header[k] = {"dtype": dt, "shape": list(a.shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    header["__metadata__"] = {k: str(v) for k, v in metadata.items()}
    h = json.dumps(header).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


def fastvit_args(sd):
    depth, width, ratio = {}, {}, {}
    for k, v in sd.items():
        m = re.match(r"visual\.trunk\.stages\.(\d+)\.blocks\.(\d+)\.mlp\.fc1\.weight$", k)
        if m:
            s, b = int(m.group(1)), int(m.group(2))
            depth[s] = max(depth.get(s, 0), b + 1)
            width[s] = v.shape[1]
            ratio[s] = v.shape[0] / v.shape[1]
    n = len(depth)
    return dict(layers=tuple(depth[i] for i in range(n)), embed_dims=tuple(width[i] for i in range(n)),
                mlp_ratios=tuple(ratio[i] for i in range(n)))


def build_model(model_dir):
    import torch.nn as nn
    import timm
    from open_clip.model import CLIP, CustomTextCLIP
    cfg = json.load(open(os.path.join(model_dir, "open_clip_config.json")))["model_cfg"]
    sd, _ = read_safetensors(os.path.join(model_dir, "open_clip_model.safetensors"))
    vc = cfg["vision_cfg"]
    name = vc["timm_model_name"]
    cls = CustomTextCLIP if cfg.pop("custom_text", False) else CLIP
    model = cls(**cfg)   # builds the trunk at the registered size; replaced below by the checkpoint's
    common = dict(pretrained=False, num_classes=cfg["embed_dim"], drop_rate=vc.get("timm_drop", 0.0),
                  drop_path_rate=vc.get("timm_drop_path", 0.0))
    if name.startswith("fastvit_mci"):
        model.visual.trunk = timm.create_model(name, global_pool=vc.get("timm_pool", "avg"), **common,
                                               **fastvit_args(sd))
    elif name == "vit_base_mci_224":
        from timm.models.vision_transformer_hybrid import ConvStem, _create_vision_transformer_hybrid
        ch = tuple(sd["visual.trunk.patch_embed.backbone.%d.conv.weight" % i].shape[0] for i in range(3))
        depth = 1 + max(int(k.split(".")[3]) for k in sd if k.startswith("visual.trunk.blocks."))
        stem = ConvStem(channels=ch, stride=(4, 2, 2), kernel_size=(4, 2, 2), padding=0, in_chans=3,
                        act_layer=nn.GELU)
        model.visual.trunk = _create_vision_transformer_hybrid(
            name, backbone=stem, embed_args=dict(proj=False), embed_dim=ch[-1], depth=depth,
            num_heads=ch[-1] // 64, no_embed_class=True, global_pool=vc.get("timm_pool", "token"), **common)
    else:
        raise SystemExit("unsupported timm tower %s" % name)
    model.load_state_dict(sd, strict=True)
    return model


def dr_loss(img, txt, t_img, t_txt, logit_scale, dims, scales, w):
    """Returns (contrastive, distill) for one caption batch; img/txt L2-normalised."""
    import torch
    import torch.nn.functional as F
    b = img.shape[0]
    s = logit_scale.exp()
    li = s * img @ txt.t()
    lt = li.t()
    labels = torch.arange(b)
    clip = 0.5 * (F.cross_entropy(li, labels) + F.cross_entropy(lt, labels))
    with torch.no_grad():
        pi = torch.zeros(b, b, dtype=torch.float64)
        pt = torch.zeros(b, b, dtype=torch.float64)
        off = 0
        for d, a in zip(dims, scales):
            ti, tt = t_img[:, off:off + d].double(), t_txt[:, off:off + d].double()
            pi += torch.softmax(a * ti @ tt.t(), dim=1) / len(dims)
            pt += torch.softmax(a * tt @ ti.t(), dim=1) / len(dims)
            off += d
        pi, pt = pi.float(), pt.float()
    kd = 0.5 * (-(pi * F.log_softmax(li, dim=1)).sum(1).mean() - (pt * F.log_softmax(lt, dim=1)).sum(1).mean())
    return w[0] * clip, w[1] * kd


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--open-clip", required=True, help="folder holding the open_clip package (open_clip/src)")
    ap.add_argument("--timm", required=True, help="folder holding the timm package (pytorch-image-models)")
    ap.add_argument("--model", required=True, help="OpenCLIP model folder (open_clip_config.json + safetensors)")
    ap.add_argument("--inputs", required=True, help="a training fixture's expected.safetensors (inputs, settings)")
    ap.add_argument("--out", required=True, help="output fixture folder")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    sys.path[:0] = [args.timm, args.open_clip]
    stub_modules()
    import torch
    import torch.nn.functional as F
    import open_clip
    import timm
    torch.set_num_threads(args.threads)

    inp, meta = read_safetensors(args.inputs)
    dims = json.loads(meta["teacher_dims"])
    scales = json.loads(meta["distill_logit_scale"])
    w = json.loads(meta["loss_weights"])
    opt_cfg = json.loads(meta["optimizer_json"])
    steps = int(opt_cfg.get("steps", 2))
    model = build_model(args.model)
    model.train()
    init = {k: v.clone() for k, v in model.state_dict().items()}

    excl = lambda n, p: p.ndim < 2 or "bn" in n or "ln" in n or "bias" in n or "logit_scale" in n
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    groups = [{"params": [p for n, p in named if excl(n, p)], "weight_decay": 0.0},
              {"params": [p for n, p in named if not excl(n, p)], "weight_decay": opt_cfg["weight_decay"]}]
    opt = torch.optim.AdamW(groups, lr=opt_cfg["lr"], betas=tuple(opt_cfg["betas"]), eps=opt_cfg["eps"])
    ls_max = opt_cfg.get("logit_scale_max", math.log(100))

    px = inp["pixels"]
    size = json.load(open(os.path.join(args.model, "open_clip_config.json")))["model_cfg"]["vision_cfg"].get("image_size", 224)
    if px.shape[-1] > size:   # e.g. 256-pixel inputs for a 224-pixel tower: the centre crop
        o = (px.shape[-1] - size) // 2
        px = px[:, :, o:o + size, o:o + size].contiguous()
    tok_r, tok_s = inp["tokens_real"].long(), inp["tokens_syn"].long()
    t_img, t_r, t_s = inp["teacher_image"], inp["teacher_text_real"], inp["teacher_text_syn"]
    out = {}
    out["pixels"] = px
    for k in ("tokens_real", "tokens_syn", "teacher_image", "teacher_text_real", "teacher_text_syn"):
        out[k] = inp[k]
    for step in range(1, steps + 1):
        opt.zero_grad()
        fi = model.encode_image(px)          # image tower, then the text tower on real, then synthetic captions
        fr = model.encode_text(tok_r)
        fs = model.encode_text(tok_s)
        ei, er, es = (F.normalize(f, dim=-1) for f in (fi, fr, fs))
        c_r, d_r = dr_loss(ei, er, t_img, t_r, model.logit_scale, dims, scales, w)
        c_s, d_s = dr_loss(ei, es, t_img, t_s, model.logit_scale, dims, scales, w)
        loss = c_r + d_r + c_s + d_s
        loss.backward()
        out["step%d/loss" % step] = loss.detach().reshape(())
        out["step%d/loss_terms" % step] = torch.stack([c_r, d_r, c_s, d_s]).detach()
        if step == 1:
            out["step1/features/image"] = fi.detach()
            out["step1/features/text_real"] = fr.detach()
            out["step1/features/text_syn"] = fs.detach()
            for n, p in named:
                out["step1/grad/" + n] = p.grad.detach().clone()
        opt.step()
        with torch.no_grad():
            model.logit_scale.clamp_(0, ls_max)
        for k, v in model.state_dict().items():
            out["step%d/state/%s" % (step, k)] = v.detach().clone()
        print("step %d: loss %.6f (terms %s)" % (step, loss.item(), [round(x.item(), 6) for x in (c_r, d_r, c_s, d_s)]))

    os.makedirs(args.out, exist_ok=True)
    shutil.copy(os.path.join(args.model, "open_clip_config.json"), os.path.join(args.out, "open_clip_config.json"))
    write_safetensors(os.path.join(args.out, "init.safetensors"), init, {"format": "pt"})
    m = {k: meta[k] for k in ("teacher_dims", "distill_logit_scale", "loss_weights", "optimizer_json") if k in meta}
    m.update({k: meta[k] for k in ("texts_real", "texts_syn", "images") if k in meta})
    m["reference"] = "open_clip %s, timm %s, torch %s: CustomTextCLIP in train mode, autograd, torch.optim.AdamW" % (
        getattr(open_clip, "__version__", "?"), timm.__version__, torch.__version__)
    m["model"] = os.path.basename(os.path.normpath(args.model))
    m["forward_order"] = "encode_image, encode_text(real), encode_text(synthetic)"
    write_safetensors(os.path.join(args.out, "expected.safetensors"), out, m)
    print("wrote", args.out)


if __name__ == "__main__":
    main()
