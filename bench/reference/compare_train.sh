#!/usr/bin/env bash
# compare_train.sh - training speed and memory of mobileclip.c against PyTorch
# on the same machine, in the same run: `mobileclip bench-train` and
# time_train_torch.py (Apple's reference model, unfused, train mode, the DR
# loss of the patched open_clip, AdamW) on the same model, batch, caption
# counts, loss settings and thread count.  Each engine runs in its own process
# (so that its peak RSS is its own); rounds alternate the engines, the first
# one switching every round, so that a noisy moment on a shared machine hits
# both.  See bench/reference/README.md.
#
# Environment:
#   REF=DIR        checkout of apple/ml-mobileclip (required)
#   MODELS="..."   default "mobileclip_s0 mobileclip_b"
#   GRAD_CKPT="0 1"  without and with gradient checkpointing (bench-train
#                  --grad-checkpointing; PyTorch: every block under
#                  torch.utils.checkpoint, time_train_torch.py GRAD_CKPT=1)
#   BATCH=8  THREADS=2  ROUNDS=3
#   STEPS=2  WARMUP=1   timed and untimed steps per engine per round
#                       (STEPS_<model>, WARMUP_<model> override them per model,
#                       e.g. STEPS_mobileclip_b=1)
#   PYTHON=python3 with torch 1.13 (Debian: python3-torch python3-torchvision)
#   TORCH_BLAS_DIR=DIR  put first on PyTorch's LD_LIBRARY_PATH: Debian's PyTorch runs its
#                  linear layers on whatever libblas.so.3 is (netlib's reference BLAS
#                  unless an optimised one is installed and chosen); default: OpenBLAS's
#                  folder (/usr/lib/<arch>/openblas-pthread, apt-get install
#                  libopenblas0-pthread) where present, whichever BLAS the system has
#                  chosen; empty: the system's libblas.so.3 as it is
#   WORK=DIR       where the log goes (default build/peers)
#   SUMMARY=LOG    measure nothing: print the summary of an earlier run's log
# OMP_WAIT_POLICY defaults to passive for both engines (idle OpenMP threads sleep
# instead of spinning against the other jobs on shared cores).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
MODELS=${MODELS:-"mobileclip_s0 mobileclip_b"}
GRAD_CKPT=${GRAD_CKPT:-"0 1"}
BATCH=${BATCH:-8}
THREADS=${THREADS:-2}
ROUNDS=${ROUNDS:-3}
STEPS=${STEPS:-2}
WARMUP=${WARMUP:-1}
PYTHON=${PYTHON:-python3}
WORK=${WORK:-$root/build/peers}
ours=$root/build/mobileclip
log=${SUMMARY:-$WORK/compare_train.log}
if [ -z "${SUMMARY:-}" ]; then
: "${REF:?set REF to a checkout of apple/ml-mobileclip}"
[ -x "$ours" ] || { echo "compare_train.sh: build $ours first (make bench-train-peers)" >&2; exit 1; }
[ -f "$REF/mobileclip/clip.py" ] || { echo "compare_train.sh: $REF is not a checkout of apple/ml-mobileclip" >&2; exit 1; }
"$PYTHON" -c 'import torch, torchvision' 2>/dev/null ||
    { echo "compare_train.sh: $PYTHON cannot import torch and torchvision (apt-get install python3-torch python3-torchvision, or set PYTHON)" >&2; exit 1; }
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive}
if [ -z "${TORCH_BLAS_DIR+set}" ]; then
    TORCH_BLAS_DIR=
    for d in /usr/lib/*/openblas-pthread /usr/lib/*/openblas-openmp; do
        [ -e "$d/libblas.so.3" ] && { TORCH_BLAS_DIR=$d; break; }
    done
fi
mkdir -p "$WORK"
: > "$log"
cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')
torch_version=$("$PYTHON" -c 'import torch; print(torch.__version__)' 2>/dev/null)
echo "machine cpu=\"$cpu\" cores=$(nproc) torch=$torch_version torch_blas_dir=${TORCH_BLAS_DIR:-system}" \
     "OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-unset} OMP_WAIT_POLICY=$OMP_WAIT_POLICY date=$(date -u +%Y-%m-%dT%H:%MZ)"

# One engine, one process: its key=value lines joined into one log line.
run_ours() {   # model steps warmup round grad_ckpt
    local out gc=
    [ "$5" = 1 ] && gc=--grad-checkpointing
    out=$(OMP_NUM_THREADS=$THREADS OPENBLAS_NUM_THREADS=$THREADS \
          "$ours" bench-train --model "$1" --batch "$BATCH" --threads "$THREADS" --steps "$2" --warmup "$3" $gc 2>/dev/null) ||
        { echo "compare_train.sh: mobileclip bench-train failed for $1" >&2; return 1; }
    echo "run engine=mobileclip.c round=$4 $(printf '%s\n' "$out" | sed 's/^bench-train //' | tr '\n' ' ')"
}
run_torch() {  # model steps warmup round grad_ckpt
    local out
    out=$(LD_LIBRARY_PATH=$TORCH_BLAS_DIR${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH} \
          "$PYTHON" "$here/time_train_torch.py" "$REF" "$1" "$BATCH" "$THREADS" "$2" "$3" "$5" 2>/dev/null) ||
        { echo "compare_train.sh: time_train_torch.py failed for $1" >&2; return 1; }
    case $out in *"blas=/usr/lib/"*"/blas/libblas"*)
        echo "compare_train.sh: warning: PyTorch ran its linear layers on netlib's reference BLAS" \
             "(apt-get install libopenblas0-pthread, or set TORCH_BLAS_DIR)" >&2 ;;
    esac
    echo "run round=$4 $(printf '%s\n' "$out" | sed 's/^bench-train-torch //' | tr '\n' ' ')"
}

for round in $(seq "$ROUNDS"); do
    for model in $MODELS; do
        sv=STEPS_$model wv=WARMUP_$model
        steps=${!sv:-$STEPS} warmup=${!wv:-$WARMUP}
        for gc in $GRAD_CKPT; do
            if [ $((round % 2)) -eq 1 ]; then
                run_ours "$model" "$steps" "$warmup" "$round" "$gc" | tee -a "$log"
                run_torch "$model" "$steps" "$warmup" "$round" "$gc" | tee -a "$log"
            else
                run_torch "$model" "$steps" "$warmup" "$round" "$gc" | tee -a "$log"
                run_ours "$model" "$steps" "$warmup" "$round" "$gc" | tee -a "$log"
            fi
        done
    done
done >&2
fi

# Per model, checkpointing setting and engine: the minimum over rounds of
# s_per_step_min (images/s = batch / that), the largest peak RSS and MB per
# image seen, the largest batch within 24 GiB at that rate ((24 GiB - the RSS
# with the training state) / MB per image, as bench-train computes it), and,
# per phase (and for the process CPU seconds per step), the minimum over rounds
# of its mean per step.  Per model also the speedup within each round
# (PyTorch's s_per_step_min over ours, the two runs next to each other in time)
# and its median.  Logs of runs without grad_checkpointing= count as 0.
awk -v models="$MODELS" -v ckpts="$GRAD_CKPT" '
function val(s, k,   m) { return match(s, " " k "=[^ ]*") ? substr(s, RSTART + length(k) + 2, RLENGTH - length(k) - 2) : "" }
{ m = val($0, "model") "/" (val($0, "grad_checkpointing") == "1" ? 1 : 0)
  e = val($0, "engine") ~ /^pytorch/ ? "torch" : "ours"
  if (e == "torch") { tv = val($0, "engine"); blas = val($0, "blas") }
  s = val($0, "s_per_step_min") + 0
  if (!((m, e) in best) || s < best[m, e]) best[m, e] = s
  batch[m] = val($0, "batch"); threads[m] = val($0, "threads")
  if (e == "ours") kern[m] = val($0, "kernels")
  p = val($0, "peak_rss_mb") + 0; if (p > peak[m, e]) peak[m, e] = p
  q = val($0, "mb_per_image") + 0; if (q > mpi[m, e]) mpi[m, e] = q
  st = val($0, "rss_state_mb") + 0; if (st > state[m, e]) state[m, e] = st
  n = split("forward_s loss_s backward_s optim_s cpu_s_per_step", ph, " ")
  for (i = 1; i <= n; i++) { v = val($0, ph[i]) + 0
    if (!((m, e, ph[i]) in phase) || v < phase[m, e, ph[i]]) phase[m, e, ph[i]] = v }
  r = val($0, "round"); rs[m, e, r] = s; if (r + 0 > maxr) maxr = r + 0
  rounds[m, e]++ }
END {
  nm = split(models, ms, " "); nc = split(ckpts, cs, " ")
  for (jj = 0; jj < nm * nc; jj++) {
    mn = ms[int(jj / nc) + 1]; gc = cs[jj % nc + 1]; m = mn "/" gc
    if (!((m, "ours") in best) || !((m, "torch") in best)) continue
    oi = batch[m] / best[m, "ours"]; ti = batch[m] / best[m, "torch"]
    for (k = 0; k < 2; k++) { e = k == 0 ? "ours" : "torch"
      maxb[e] = mpi[m, e] > 0 ? int((24 * 1024 - state[m, e]) / mpi[m, e]) : 0 }
    printf "compare_train model=%s grad_checkpointing=%s batch=%s threads=%s ours_images_per_s=%.3f torch_images_per_s=%.3f speedup=%.2f ours_peak_rss_mb=%.0f torch_peak_rss_mb=%.0f ours_mb_per_image=%.1f torch_mb_per_image=%.1f ours_max_batch_24gb=%d torch_max_batch_24gb=%d\n",
      mn, gc, batch[m], threads[m], oi, ti, oi / ti, peak[m, "ours"], peak[m, "torch"], mpi[m, "ours"], mpi[m, "torch"],
      maxb["ours"], maxb["torch"]
    for (k = 0; k < 2; k++) {
      e = k == 0 ? "ours" : "torch"
      printf "compare_train_split model=%s grad_checkpointing=%s engine=%s%s rounds=%d s_per_step_min=%.3f forward_s=%.3f loss_s=%.4f backward_s=%.3f optim_s=%.3f cpu_s_per_step=%.3f\n",
        mn, gc, e == "ours" ? "mobileclip.c" : tv, e == "ours" ? " kernels=" kern[m] : " blas=" blas, rounds[m, e], best[m, e],
        phase[m, e, "forward_s"], phase[m, e, "loss_s"], phase[m, e, "backward_s"], phase[m, e, "optim_s"],
        phase[m, e, "cpu_s_per_step"]
    }
    nr = 0; list = ""
    for (r = 1; r <= maxr; r++)
      if ((m, "ours", r) in rs && (m, "torch", r) in rs && rs[m, "ours", r] > 0) {
        x = rs[m, "torch", r] / rs[m, "ours", r]; qq[++nr] = x
        list = list (nr > 1 ? "," : "") sprintf("%.2f", x)
      }
    if (nr > 0) {
      for (a = 2; a <= nr; a++) { v = qq[a]; for (b = a - 1; b >= 1 && qq[b] > v; b--) qq[b + 1] = qq[b]; qq[b + 1] = v }
      med = nr % 2 ? qq[(nr + 1) / 2] : (qq[nr / 2] + qq[nr / 2 + 1]) / 2
      printf "compare_train_rounds model=%s grad_checkpointing=%s speedup_per_round=%s speedup_median=%.2f\n", mn, gc, list, med
    }
  }
}' "$log"
