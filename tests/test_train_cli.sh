#!/usr/bin/env bash
# 'mobileclip train' from the command line, on the DataCompDR fixture shards
# with the train_s0_tiny model:
#   - a reinforced run killed with SIGKILL at random moments (also while a
#     checkpoint is written) and resumed with --resume latest until it ends
#     logs every loss, gradient norm and learning rate as the uninterrupted
#     run does, and ends with the same weights;
#   - SIGINT saves a checkpoint and exits 130; the resumed run is the same;
#   - --grad-checkpointing logs the same losses and ends with the same
#     weights, bit for bit;
#   - Apple's flags that mean nothing here are accepted with a note, unknown
#     ones and unsupported meanings are refused;
#   - the run folder works as -m in embed-text, equal to its checkpoint file.
# Prints "test_train_cli: N passed, N failed".
set -u
cd "$(dirname "$0")/.."
BIN=build/mobileclip
FX=${MC_FIXTURES:-../shared/fixtures}
export MOBILECLIP_VOCAB=$FX/tokenizer/bpe_simple_vocab_16e6.txt.gz
export MOBILECLIP_NO_PROGRESS=1
T=$(mktemp -d /tmp/mc_train_cli.XXXXXX)
pass=0; fail=0
ok() { pass=$((pass+1)); }
bad() { fail=$((fail+1)); echo "FAIL: $*" >&2; }
check() { if eval "$1"; then ok; else bad "$2"; fi; }

S=$FX/datacompdr/shards
M=$FX/models/train_s0_tiny
ARGS=(--train-data "$S/00000000.tar::$S/00000000_bf16.tar" --model "$M" --pretrained "$M/init.pt"
      --dataset-reinforcement --distill-teacher-dimension 24 16 --distill-logit-scale 100 100
      --distill-loss-weights 0.25 0.75 --distill-average-after-softmax --batch-size 3 --epochs 5
      --lr 1e-3 --beta2 0.95 --eps 1e-6 --wd 0.2 --warmup 2 --grad-clip-norm 1.0 --seed 7
      --shuffle-buffer 4 --workers 2 --threads 2 --save-every-n-steps 1 --save-most-recent
      --logs "$T" --log-every-n-steps 0)

# the fields that must match bit for bit (as printed: float32 round trip)
fields() { python3 -c '
import json, sys
for l in open(sys.argv[1]):
    d = json.loads(l)
    print(" ".join(str(d[k]) for k in ("step", "epoch", "samples", "lr", "loss", "contrastive_loss",
          "distill_loss", "logit_scale", "grad_norm", "contrastive_real", "distill_real",
          "contrastive_syn", "distill_syn")))' "$1"; }

$BIN train "${ARGS[@]}" --name ref >"$T/ref.out" 2>"$T/ref.err"
rc=$?; check '[ $rc -eq 0 ]' "reference run failed: $(tail -3 "$T/ref.err")"
check '[ "$(wc -l < "$T/ref/train.jsonl")" -eq 10 ]' "reference run: 10 steps logged"
fields "$T/ref/train.jsonl" > "$T/ref.fields"

# kill -9 at random moments: after a random step has been logged (the
# checkpoint of that step is being written then), plus a random delay;
# resume until the run says it is complete
kills=0; runs=0; done_=0
RANDOM=42
lines() { cat "$T/killed/train.jsonl" 2>/dev/null | wc -l; }
while [ $runs -lt 30 ] && [ $done_ -eq 0 ]; do
  runs=$((runs+1))
  target=$(( $(lines) + RANDOM % 3 + 1 ))
  $BIN train "${ARGS[@]}" --name killed --resume latest >"$T/k.out" 2>"$T/k.err" &
  pid=$!
  while [ "$(lines)" -lt $target ] && kill -0 $pid 2>/dev/null; do sleep 0.02; done
  sleep "0.$((RANDOM % 4))$((RANDOM % 10))"
  if kill -9 $pid 2>/dev/null; then kills=$((kills+1)); wait $pid 2>/dev/null
  else wait $pid; rc=$?; [ $rc -eq 0 ] && done_=1 || { bad "a resumed run failed ($rc): $(tail -3 "$T/k.err")"; break; }; fi
done
check '[ $done_ -eq 1 ]' "the killed run did not complete in $runs tries"
check '[ $kills -ge 1 ]' "no run was killed (the machine is too fast for the delays?)"
echo "test_train_cli: $kills kills in $runs runs" >&2
fields "$T/killed/train.jsonl" > "$T/killed.fields"
check 'cmp -s "$T/ref.fields" "$T/killed.fields"' "the killed-and-resumed run logged other losses: $(diff "$T/ref.fields" "$T/killed.fields" | head -4)"
check 'cmp -s "$T/ref/checkpoints/epoch_5.safetensors" "$T/killed/checkpoints/epoch_5.safetensors"' "final checkpoints differ"
check '[ -z "$(ls "$T/killed/checkpoints" | grep -v "\.safetensors$")" ]' "temporary files left in checkpoints/: $(ls "$T/killed/checkpoints")"

# SIGINT: a checkpoint, exit 130, then the same run
$BIN train "${ARGS[@]}" --name int >"$T/i.out" 2>"$T/i.err" &
pid=$!
while [ "$(cat "$T/int/train.jsonl" 2>/dev/null | wc -l)" -lt 2 ] && kill -0 $pid 2>/dev/null; do sleep 0.05; done
kill -INT $pid; wait $pid; rc=$?
check '[ $rc -eq 130 ]' "SIGINT: exit $rc, want 130 ($(tail -2 "$T/i.err"))"
check 'grep -q "continue with --resume latest" "$T/i.err"' "SIGINT: no note on how to continue"
$BIN train "${ARGS[@]}" --name int --resume latest >"$T/i2.out" 2>"$T/i2.err"
rc=$?; check '[ $rc -eq 0 ]' "resume after SIGINT failed: $(tail -2 "$T/i2.err")"
fields "$T/int/train.jsonl" > "$T/int.fields"
check 'cmp -s "$T/ref.fields" "$T/int.fields"' "the interrupted run logged other losses"

# flags
$BIN train "${ARGS[@]}" --name ref >/dev/null 2>"$T/e1"
rc=$?; check '[ $rc -ne 0 ] && grep -q "exists" "$T/e1"' "an existing run folder without --resume must be refused"
$BIN train "${ARGS[@]}" --name n1 --epochs 1 --precision amp --ddp-static-graph --local-loss --gather-with-grad \
  --grad-checkpointing --report-to wandb --wandb-project-name x --dataset-type webdataset --dataset-resampled \
  --train-num-samples 6 >/dev/null 2>"$T/e2"
rc=$?; check '[ $rc -eq 0 ]' "Apple's flags: $(tail -2 "$T/e2")"
check '[ "$(grep -c "note: --" "$T/e2")" -eq 4 ]' "one note per ignored flag: $(grep -c "note: --" "$T/e2")"
# --grad-checkpointing: the same numbers as the reference run, bit for bit
$BIN train "${ARGS[@]}" --name gc --grad-checkpointing >/dev/null 2>"$T/gc.err"
rc=$?; check '[ $rc -eq 0 ]' "--grad-checkpointing run failed: $(tail -2 "$T/gc.err")"
fields "$T/gc/train.jsonl" > "$T/gc.fields"
check 'cmp -s "$T/ref.fields" "$T/gc.fields"' "--grad-checkpointing logged other losses: $(diff "$T/ref.fields" "$T/gc.fields" | head -4)"
check 'cmp -s "$T/ref/checkpoints/epoch_5.safetensors" "$T/gc/checkpoints/epoch_5.safetensors"' "--grad-checkpointing: final checkpoints differ"
$BIN train "${ARGS[@]}" --name n2 --no-such-flag 1 >/dev/null 2>"$T/e3"
rc=$?; check '[ $rc -eq 2 ] && grep -q "unknown option" "$T/e3"' "an unknown flag must be refused"
$BIN train "${ARGS[@]}" --name n3 --dataset-type csv >/dev/null 2>"$T/e4"
rc=$?; check '[ $rc -eq 2 ] && grep -q "webdataset" "$T/e4"' "--dataset-type csv must be refused"
$BIN train "${ARGS[@]/--distill-average-after-softmax/--seed}" --name n4 >/dev/null 2>"$T/e5"
rc=$?; check '[ $rc -ne 0 ]' "distillation without --distill-average-after-softmax must be refused"
$BIN train "${ARGS[@]}" --name n5 --dataset-resampled >/dev/null 2>"$T/e6"
rc=$?; check '[ $rc -ne 0 ] && grep -q "train-num-samples" "$T/e6"' "--dataset-resampled without --train-num-samples"

# the run folder is a model
$BIN embed-text -m "$T/ref" -o "$T/a.npy" "a photo of a cat" "a dog" 2>"$T/e7"
rc=$?; check '[ $rc -eq 0 ]' "embed-text -m RUN: $(tail -1 "$T/e7")"
$BIN embed-text -m "$T/ref/checkpoints/epoch_5.safetensors" -o "$T/b.npy" "a photo of a cat" "a dog" 2>/dev/null
check 'cmp -s "$T/a.npy" "$T/b.npy"' "-m RUN and -m its last checkpoint differ"
$BIN embed-text -m "$M" -o "$T/c.npy" "a photo of a cat" "a dog" 2>/dev/null
check '! cmp -s "$T/a.npy" "$T/c.npy"' "the trained model embeds like the initial one"

[ $fail -eq 0 ] && rm -rf "$T"
echo "test_train_cli: $pass passed, $fail failed"
[ $fail -eq 0 ]
