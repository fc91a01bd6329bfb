#!/usr/bin/env bash
# compare.sh - mobileclip.c against ONNX Runtime and PyTorch on the same
# machine, in the same run, on the same re-parameterised reference model
# (apple/ml-mobileclip built with seeded random weights by export_reference.py
# and exported by torch.onnx).  Rounds alternate the engines so that a noisy
# moment hits all of them; each figure is the minimum over rounds of
# ms_min (ms per call, batch 1).  See bench/reference/README.md.
#
# Environment:
#   REF=DIR        checkout of apple/ml-mobileclip (required)
#   MODELS="..."   default "mobileclip_s0 mobileclip_s2 mobileclip_b"
#   THREADS="1 2"  thread counts      ROUNDS=3  rounds      RUNS=15  calls per round
#   PYTHON=python3 with torch 1.13 (Debian: python3-torch python3-torchvision)
#   ORT_MODULES=DIR  node_modules holding onnxruntime-node (default build/peers/node_modules,
#                    installed there with npm on first use)   ORT_VERSION=1.22.0
#   WORK=DIR       where the exported models go (default build/peers)
#   NO_TORCH=1     leave PyTorch out
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
: "${REF:?set REF to a checkout of apple/ml-mobileclip}"
MODELS=${MODELS:-"mobileclip_s0 mobileclip_s2 mobileclip_b"}
THREADS=${THREADS:-"1 2"}
ROUNDS=${ROUNDS:-3}
RUNS=${RUNS:-15}
PYTHON=${PYTHON:-python3}
WORK=${WORK:-$root/build/peers}
ORT_VERSION=${ORT_VERSION:-1.22.0}
ORT_MODULES=${ORT_MODULES:-$WORK/node_modules}
ours=$root/build/peer_ours
[ -x "$ours" ] || { echo "compare.sh: build $ours first (make bench-peers)" >&2; exit 1; }
[ -f "$REF/mobileclip/clip.py" ] || { echo "compare.sh: $REF is not a checkout of apple/ml-mobileclip" >&2; exit 1; }
"$PYTHON" -c 'import torch, torchvision' 2>/dev/null ||
    { echo "compare.sh: $PYTHON cannot import torch and torchvision (apt-get install python3-torch python3-torchvision, or set PYTHON)" >&2; exit 1; }
command -v node >/dev/null || { echo "compare.sh: node not found (apt-get install nodejs npm)" >&2; exit 1; }
mkdir -p "$WORK"
if [ ! -d "$ORT_MODULES/onnxruntime-node" ]; then
    echo "installing onnxruntime-node@$ORT_VERSION into $WORK (npm, CPU binaries only)" >&2
    (cd "$WORK" && npm install --no-save --ignore-scripts "onnxruntime-node@$ORT_VERSION" >&2)
fi
log=$WORK/compare.log
: > "$log"
cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')
flags=$(grep -m1 '^flags' /proc/cpuinfo)
isa=avx2; [[ $flags == *avx512f* ]] && isa=avx512; [[ $flags == *avx2* ]] || isa=other
echo "machine cpu=\"$cpu\" cores=$(nproc) isa=$isa ort=$ORT_VERSION OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-unset}"
for model in $MODELS; do
    dir=$WORK/$model
    if [ ! -f "$dir/text.onnx" ]; then
        echo "exporting $model with the reference code" >&2
        "$PYTHON" "$here/export_reference.py" --ref "$REF" --model "$model" --out "$dir" >&2 2>"$WORK/export.log" ||
            { cat "$WORK/export.log" >&2; exit 1; }
    fi
    for round in $(seq "$ROUNDS"); do
        for t in $THREADS; do
            "$ours" "$dir" "$t" "$RUNS" | sed "s/^peer /peer model=$model /" | tee -a "$log"
            NODE_PATH=$ORT_MODULES node "$here/run_ort.js" "$dir" "$t" "$RUNS" |
                sed "s/^peer /peer model=$model /" | tee -a "$log"
            if [ -z "${NO_TORCH:-}" ]; then
                "$PYTHON" "$here/time_torch.py" --ref "$REF" "$dir" "$t" "$RUNS" 2>/dev/null |
                    sed "s/^peer /peer model=$model /" | tee -a "$log"
            fi
        done
    done
done >&2
# Minimum over rounds per (model, engine, tower, threads); ratios against mobileclip.c.
awk '
function val(s, k,   m) { return match(s, " " k "=[^ ]*") ? substr(s, RSTART + length(k) + 2, RLENGTH - length(k) - 2) : "" }
{ key = val($0, "model") SUBSEP val($0, "tower") SUBSEP val($0, "threads"); e = val($0, "engine")
  ms = val($0, "ms_min") + 0
  if (!((key, e) in best) || ms < best[key, e]) best[key, e] = ms
  diff[key, e] = val($0, "max_abs"); engines[e] = 1; keys[key] = 1 }
END {
  n = 0; for (k in keys) order[++n] = k
  for (i = 2; i <= n; i++) { v = order[i]; for (j = i - 1; j >= 1 && order[j] > v; j--) order[j + 1] = order[j]; order[j + 1] = v }
  for (i = 1; i <= n; i++) {
    split(order[i], p, SUBSEP); us = best[order[i], "mobileclip.c"]
    ne = 0; for (e in engines) if (e != "mobileclip.c") names[++ne] = e
    for (a = 2; a <= ne; a++) { v = names[a]; for (b = a - 1; b >= 1 && names[b] > v; b--) names[b + 1] = names[b]; names[b + 1] = v }
    names[0] = "mobileclip.c"
    for (j = 0; j <= ne; j++) {
      e = names[j]
      if (!((order[i], e) in best)) continue
      line = sprintf("compare model=%s tower=%s threads=%s engine=%s ms=%.2f max_abs=%s", p[1], p[2], p[3], e, best[order[i], e], diff[order[i], e])
      if (e != "mobileclip.c" && us > 0) line = line sprintf(" speedup_of_mobileclip.c=%.2f", best[order[i], e] / us)
      print line
    }
  }
}' "$log"
