"""Times the reference's decode + re-application of stored DataCompDR
augmentations: Pillow decodes each image of a shard (convert("RGB") as the
training pipeline does), then Apple's training/dr/transforms.py reapplies
stored augmentation A at the student's size (crop + bicubic resize,
RandAugment ops), to_tensor and normalise, as preprocess_dr does.

usage: python3 time_reapply.py REF SHARD [SIZE] [ROUNDS]
  REF    checkout of apple/ml-mobileclip (its training/dr is imported from there)
  SHARD  a DataCompDR .tar with .jpg/.png and .paug.json members
Prints one line: reference ms_per_sample=... (minimum over rounds of the
mean over every (sample, augmentation) pair), and optionally writes the
re-applied uint8 pixels for comparison (OUT=file.npz in the environment)."""
import io
import json
import os
import sys
import tarfile
import time
import types


def load_dr_transforms(ref):
    """Imports REF/training/dr/transforms.py under the package name it expects."""
    import importlib.util
    try:
        import timm  # noqa: F401  (transforms_base imports it for a config path unused here)
    except ImportError:
        timm = types.ModuleType("timm")
        data = types.ModuleType("timm.data")
        tfs = types.ModuleType("timm.data.transforms")
        tfs.str_to_interp_mode = None
        sys.modules.update({"timm": timm, "timm.data": data, "timm.data.transforms": tfs})
    pkg = types.ModuleType("open_clip_train")
    pkg.__path__ = []
    sub = types.ModuleType("open_clip_train.dr")
    sub.__path__ = [os.path.join(ref, "training", "dr")]
    sys.modules["open_clip_train"] = pkg
    sys.modules["open_clip_train.dr"] = sub
    mods = {}
    for name in ("transforms_base", "transforms"):
        spec = importlib.util.spec_from_file_location("open_clip_train.dr." + name,
                                                      os.path.join(ref, "training", "dr", name + ".py"))
        mod = importlib.util.module_from_spec(spec)
        sys.modules["open_clip_train.dr." + name] = mod
        spec.loader.exec_module(mod)
        mods[name] = mod
    return mods["transforms"]


def main():
    if len(sys.argv) < 3:
        print(__doc__, file=sys.stderr)
        return 2
    ref, shard = sys.argv[1], sys.argv[2]
    size = int(sys.argv[3]) if len(sys.argv) > 3 else 256
    rounds = int(sys.argv[4]) if len(sys.argv) > 4 else 3
    import torch
    from PIL import Image
    torch.set_num_threads(1)
    tr = load_dr_transforms(ref)
    config = {"random_resized_crop": {"interpolation": "bicubic", "size": size},
              "rand_augment": {"enable": True, "p": 1.0},
              "to_tensor": {"enable": True},
              "normalize": {"mean": [0.0, 0.0, 0.0], "std": [1.0, 1.0, 1.0]}}
    compose = tr.compose_from_config(config)
    samples = {}
    with tarfile.open(shard) as t:
        for m in t.getmembers():
            if not m.isfile():
                continue
            key, ext = m.name.split(".", 1)
            samples.setdefault(key, {})[ext] = t.extractfile(m).read()
    work = []
    for key in sorted(samples):
        s = samples[key]
        img = next((s[e] for e in ("jpg", "png", "webp", "jpeg") if e in s), None)
        pa = json.loads(s["paug.json"])["param_aug"]
        if isinstance(pa, str):
            pa = json.loads(pa)
        work.append((key, img, pa))
    best = None
    out = {}
    for _ in range(rounds):
        n = 0
        t0 = time.perf_counter()
        for key, img, pa in work:
            for a, p in enumerate(pa):
                im = Image.open(io.BytesIO(img)).convert("RGB")
                x, _ = compose.reapply(im, compose.decompress(p))
                n += 1
                if os.environ.get("OUT") and best is None:
                    out["%s/aug%d/%d" % (key, a, size)] = (x * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()
        ms = (time.perf_counter() - t0) * 1000.0 / max(n, 1)
        best = ms if best is None else min(best, ms)
    if os.environ.get("OUT"):
        import numpy as np
        np.savez(os.environ["OUT"], **out)
    print("reference ms_per_sample=%.3f size=%d pairs=%d (Pillow %s, torchvision %s, 1 thread)"
          % (best, size, n, Image.__version__, __import__("torchvision").__version__))
    return 0


if __name__ == "__main__":
    sys.exit(main())
