#!/usr/bin/env python3
"""
time_train_torch.py - PyTorch's side of the training-speed comparison
(compare_train.sh): the reference training step of multi-modal reinforced
training, timed the way `mobileclip bench-train` times ours.

The model is Apple's reference code (a checkout of apple/ml-mobileclip, REF),
built from REF/mobileclip/configs/MODEL.json as constructed, that is with the
re-parameterisable branches unfused (MobileOne, RepMixer, RepCPE, BatchNorm),
in train mode (batch statistics), with seeded random weights.  The inputs are
made once, as bench-train makes them: random images at the model's size,
2 x BATCH random captions (SOT, 10-39 random tokens, EOT, padding) and, for
the images, the real and the synthetic captions, two 512-d teachers each
(random, each half L2-normalised).

One step is the step of Apple's patched open_clip (training/open_clip_v2.patch)
with --dataset-reinforcement: the image tower on the images, the text tower on
the real and the synthetic captions concatenated (2 x BATCH texts, one call),
split into the two halves; DRClipLoss (DistillClipLoss on the real and on the
synthetic captions, summed) with --distill-average-after-softmax, teacher
logit scales 100 100, --distill-loss-weights 0.25 0.75; backward; AdamW with
open_clip's two parameter groups (no decay for ndim < 2 and names holding
bn, ln, bias or logit_scale) at lr 1e-3, betas (0.9, 0.95), eps 1e-6, weight
decay 0.2; the logit_scale clamp to [0, ln 100]; zero_grad.  No gradient
clipping, float32 (no autocast on the CPU), as bench-train.

Timed per phase with time.perf_counter: forward (both towers, the
L2 normalisation), loss, backward, optimizer (step, clamp, zero_grad);
cpu_s_per_step is the process's CPU time (time.process_time, all threads)
per timed step.

Memory (Linux): rss_build_mb is the resident set after building the model;
rss_state_mb after also making the gradients and the AdamW moments resident
(allocated as zeros, exactly as the first backward and the first step would;
it changes no value); peak_rss_mb is getrusage's ru_maxrss after the steps;
mb_per_image = (peak_rss_mb - rss_state_mb) / BATCH, the memory that a step
needs on top of the model and its training state (activations, saved
tensors, workspaces), per image.

Prints (key=value, one line each):
  bench-train-torch engine=pytorch-1.13.0 model=.. batch=.. image=.. params=.. threads=.. steps=..
      s_per_step_mean=.. s_per_step_min=.. images_per_s=.. images_per_s_best=.. loss=.. blas=LIBRARY
  bench-train-torch forward_s=.. loss_s=.. backward_s=.. optim_s=.. other_s=.. cpu_s_per_step=..   (mean per step)
  bench-train-torch rss_build_mb=.. rss_state_mb=.. peak_rss_mb=.. mb_per_image=..

With GRAD_CKPT=1 (argument 7), gradient checkpointing as open_clip's
--grad-checkpointing does it for these towers: every block (MCi RepMixerBlock
and AttentionBlock, the text tower's RepMixer blocks and TransformerEncoder
layers, the ViT's transformer layers) runs under
torch.utils.checkpoint.checkpoint (non-reentrant), keeping only its input.

usage: time_train_torch.py REF MODEL BATCH THREADS STEPS WARMUP [GRAD_CKPT]
"""
import json
import math
import os
import resource
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

TEACHER_DIMS = [512, 512]
TEACHER_SCALES = [100.0, 100.0]
LOSS_WEIGHTS = [0.25, 0.75]          # contrastive, distillation (bench-train's)
LR, BETAS, EPS, WD = 1e-3, (0.9, 0.95), 1e-6, 0.2
SOT, EOT = 49406, 49407


def rss_mb():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def blas_library():
    """The BLAS library this process loaded (Debian's PyTorch links libblas.so.3:
    netlib's reference BLAS, or OpenBLAS where installed; see compare_train.sh)."""
    with open("/proc/self/maps") as f:
        paths = {line.split()[-1] for line in f if "/" in line}
    for key in ("openblas", "libmkl", "libblis", "libblas"):
        hit = sorted(p for p in paths if key in os.path.basename(p))
        if hit:
            return hit[0]
    return "none"


def peak_rss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0   # KiB on Linux


def main():
    if len(sys.argv) not in (7, 8):
        sys.exit("usage: time_train_torch.py REF MODEL BATCH THREADS STEPS WARMUP [GRAD_CKPT]")
    ref, name = sys.argv[1], sys.argv[2]
    batch, threads, steps, warmup = (int(v) for v in sys.argv[3:7])
    grad_ckpt = len(sys.argv) == 8 and sys.argv[7] == "1"
    if batch < 2 or threads < 1 or steps < 1 or warmup < 0:
        sys.exit("time_train_torch.py: BATCH >= 2, THREADS >= 1, STEPS >= 1, WARMUP >= 0")
    # Debian's PyTorch sends linear layers to OpenBLAS, whose own pool ignores
    # torch.set_num_threads: pin every pool before the import (as time_torch.py).
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(threads)
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    from export_reference import install_import_shims, randomise
    install_import_shims()
    sys.path.insert(0, os.path.abspath(ref))
    import torch
    import torch.nn.functional as F
    from mobileclip.clip import CLIP

    torch.set_num_threads(threads)
    with open(os.path.join(ref, "mobileclip", "configs", name + ".json")) as f:
        cfg = json.load(f)
    torch.manual_seed(1234)
    model = CLIP(cfg=cfg, output_dict=True)
    randomise(model, 1234)
    model.train()
    if grad_ckpt:
        from torch.utils.checkpoint import checkpoint

        def wrap(m):
            inner = m.forward
            m.forward = lambda *a, **k: checkpoint(inner, *a, use_reentrant=False, **k)

        blocks = [m for m in model.modules()
                  if type(m).__name__ in ("RepMixerBlock", "AttentionBlock", "TransformerEncoder")]
        if not blocks:
            sys.exit("time_train_torch.py: no blocks to checkpoint in %s" % name)
        for m in blocks:
            wrap(m)
    rss_build = rss_mb()

    # open_clip's parameter groups (open_clip_train/main.py)
    def exclude(n, p):
        return p.ndim < 2 or "bn" in n or "ln" in n or "bias" in n or "logit_scale" in n

    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    no_decay = [p for n, p in named if exclude(n, p)]
    decay = [p for n, p in named if not exclude(n, p)]
    opt = torch.optim.AdamW([{"params": no_decay, "weight_decay": 0.0},
                             {"params": decay, "weight_decay": WD}], lr=LR, betas=BETAS, eps=EPS)
    # The training state resident before the first step (the same zeros that the
    # first backward and AdamW's lazy initialisation would make).
    for _, p in named:
        p.grad = torch.zeros_like(p)
        st = opt.state[p]
        st["step"] = torch.tensor(0.0)
        st["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
        st["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
    rss_state = rss_mb()
    nparam = sum(p.numel() for _, p in named)

    # Inputs, made once.
    g = torch.Generator().manual_seed(4321)
    size = cfg["image_cfg"]["image_size"]
    ctx = cfg["text_cfg"]["context_length"]
    images = torch.rand((batch, 3, size, size), generator=g)
    tokens = torch.zeros((2 * batch, ctx), dtype=torch.int64)
    for i in range(2 * batch):
        n = int(torch.randint(10, 40, (1,), generator=g))       # 10..39 words, as bench-train
        tokens[i, 0] = SOT
        tokens[i, 1:n + 1] = torch.randint(256, 49256, (n,), generator=g)
        tokens[i, n + 1] = EOT

    def teachers():
        t = torch.rand((batch, sum(TEACHER_DIMS)), generator=g) - 0.5
        return torch.cat([F.normalize(c, dim=-1) for c in t.split(TEACHER_DIMS, dim=1)], dim=1)

    t_img, t_txt, t_syn = teachers(), teachers(), teachers()

    # The DR loss, written from its definition in Apple's patched open_clip:
    # DistillClipLoss with average-after-softmax teacher ensembles, applied to
    # the real and to the synthetic captions, terms summed.
    bounds = [0]
    for d in TEACHER_DIMS:
        bounds.append(bounds[-1] + d)

    def ensemble_target(a, b):
        probs = [F.softmax(TEACHER_SCALES[k] * (a[:, bounds[k]:bounds[k + 1]] @ b[:, bounds[k]:bounds[k + 1]].T), dim=1)
                 for k in range(len(TEACHER_DIMS))]
        return sum(probs) / len(probs)

    def distill_clip_loss(img, txt, scale, d_img, d_txt):
        per_image = scale * img @ txt.T
        per_text = scale * txt @ img.T
        target_image, target_text = ensemble_target(d_img, d_txt), ensemble_target(d_txt, d_img)
        labels = torch.arange(img.shape[0])
        contrastive = (F.cross_entropy(per_image, labels) + F.cross_entropy(per_text, labels)) / 2 * LOSS_WEIGHTS[0]
        distill = (-(target_image * per_image.log_softmax(dim=1)).sum(dim=1).mean(dim=0)
                   - (target_text * per_text.log_softmax(dim=1)).sum(dim=1).mean(dim=0)) / 2 * LOSS_WEIGHTS[1]
        return contrastive, distill

    def dr_clip_loss(img, txt, syn, scale):
        c_real, d_real = distill_clip_loss(img, txt, scale, t_img, t_txt)
        c_syn, d_syn = distill_clip_loss(img, syn, scale, t_img, t_syn)
        return {"contrastive_loss": c_real + c_syn, "distill_loss": d_real + d_syn}

    phases = [0.0, 0.0, 0.0, 0.0]
    times = []
    cpu0 = 0.0
    loss = float("nan")
    for s in range(warmup + steps):
        if s == warmup:
            cpu0 = time.process_time()
        c0 = time.perf_counter()
        out = model(images, tokens)
        img = out["image_features"]
        txt, syn = out["text_features"][:batch], out["text_features"][batch:]
        c1 = time.perf_counter()
        losses = dr_clip_loss(img, txt, syn, out["logit_scale"])
        total = sum(losses.values())
        c2 = time.perf_counter()
        total.backward()
        c3 = time.perf_counter()
        opt.step()
        with torch.no_grad():
            model.logit_scale.clamp_(0, math.log(100))
        opt.zero_grad()
        c4 = time.perf_counter()
        loss = total.item()
        print("bench-train-torch: step %d/%d %.2f s loss %.5f" % (s + 1, warmup + steps, c4 - c0, loss),
              file=sys.stderr, flush=True)
        if s >= warmup:
            times.append(c4 - c0)
            for k, v in enumerate((c1 - c0, c2 - c1, c3 - c2, c4 - c3)):
                phases[k] += v
    mean, best = sum(times) / steps, min(times)
    cpu = (time.process_time() - cpu0) / steps
    version = torch.__version__.split("a")[0].split("+")[0]
    print("bench-train-torch engine=pytorch-%s model=%s batch=%d image=%d context=%d params=%d threads=%d "
          "steps=%d grad_checkpointing=%d s_per_step_mean=%.3f s_per_step_min=%.3f images_per_s=%.3f "
          "images_per_s_best=%.3f loss=%.5f blas=%s"
          % (version, name, batch, size, ctx, nparam, threads, steps, int(grad_ckpt), mean, best, batch / mean,
                       batch / best, loss, blas_library()))
    ph = [v / steps for v in phases]
    print("bench-train-torch forward_s=%.3f loss_s=%.4f backward_s=%.3f optim_s=%.3f other_s=%.4f cpu_s_per_step=%.3f"
          % (ph[0], ph[1], ph[2], ph[3], mean - sum(ph), cpu))
    peak = peak_rss_mb()
    per_image = (peak - rss_state) / batch
    # the largest batch within 24 GiB when all that a step adds grows with the
    # batch (bench-train's formula)
    print("bench-train-torch rss_build_mb=%.1f rss_state_mb=%.1f peak_rss_mb=%.1f mb_per_image=%.1f max_batch_24gb=%d"
          % (rss_build, rss_state, peak, per_image, int((24 * 1024 - rss_state) / per_image) if per_image > 0 else 0),
          flush=True)


if __name__ == "__main__":
    main()
