#!/usr/bin/env python3
"""
time_torch.py - PyTorch's side of the peer comparison (compare.sh): rebuilds
the reference model from OUT/model.pt and OUT/config.json (export_reference.py),
re-parameterises it as the reference does for inference, and times each
encoder at batch 1 in eager mode on the given number of threads:
  peer engine=pytorch-1.13 tower=image threads=2 ms_min=.. ms_median=.. max_abs=..

usage: time_torch.py --ref DIR OUT THREADS [RUNS]
"""
import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from export_reference import install_import_shims  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ref", required=True)
    ap.add_argument("out")
    ap.add_argument("threads", type=int)
    ap.add_argument("runs", type=int, nargs="?", default=20)
    args = ap.parse_args()
    # PyTorch's linear layers go through the system BLAS (OpenBLAS on Debian), which
    # keeps its own thread pool and ignores torch.set_num_threads: pin it before import.
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(args.threads)
    # Spinning OpenMP workers and OpenBLAS's own threads then compete for the same cores
    # (B image on 2 threads: 780 ms spinning, 273 ms passive); let idle OpenMP threads sleep.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    install_import_shims()
    sys.path.insert(0, os.path.abspath(args.ref))
    import numpy as np
    import torch
    import torch.nn.functional as F
    from mobileclip.clip import CLIP
    from mobileclip.modules.common.mobileone import reparameterize_model

    torch.set_num_threads(args.threads)
    with open(os.path.join(args.out, "config.json")) as f:
        cfg = json.load(f)
    model = CLIP(cfg=cfg).eval()
    model.load_state_dict(torch.load(os.path.join(args.out, "model.pt"), map_location="cpu"))
    model = reparameterize_model(model).eval()
    version = torch.__version__.split("a")[0].split("+")[0]
    for tower in ("image", "text"):
        x = torch.from_numpy(np.load(os.path.join(args.out, tower + "_input.npy")))
        expected = np.load(os.path.join(args.out, tower + "_expected.npy"))
        fn = model.encode_image if tower == "image" else model.encode_text
        times = []
        with torch.inference_mode():
            out = F.normalize(fn(x), dim=-1).numpy()
            for _ in range(args.runs):
                t0 = time.perf_counter()
                F.normalize(fn(x), dim=-1)
                times.append((time.perf_counter() - t0) * 1e3)
        times.sort()
        print("peer engine=pytorch-%s tower=%s threads=%d ms_min=%.2f ms_median=%.2f max_abs=%.3g"
              % (version, tower, args.threads, times[0], times[len(times) // 2],
                 float(np.abs(out - expected).max())), flush=True)


if __name__ == "__main__":
    main()
