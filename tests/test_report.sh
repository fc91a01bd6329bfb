#!/usr/bin/env bash
# 'mobileclip report' on real runs: two short fixture runs with 'mobileclip
# train' (the flags of tests/test_train_cli.sh, 2 epochs of 5 steps and 1
# epoch), then:
#   - the training run (evaluated after each epoch: zero-shot on an ImageFolder
#     tree of fixture images, retrieval on the shard) wrote report.html into its
#     folder, with all its steps and evaluations; params.json records the machine;
#   - 'mobileclip report RUN' and 'report RUN1 RUN2 -o cmp.html' write pages
#     that parse (html.parser, each <svg> as XML) and whose loss, gradient-norm
#     and learning-rate points map back through the axis transform to
#     train.jsonl, smoothed loss = TensorBoard's EMA, evaluation points = results.jsonl
#     (tests/report_check.py);
#     the checker fails on a log that differs from the page;
#   - headless Chromium renders both pages without a console message (an SVG
#     attribute it cannot parse is one), every chart has a size and every
#     shape a finite box (a script injected into a copy checks that), and
#     screenshots are kept: build/test-artifacts/report.png, report_cmp.png;
#   - command-line errors.
# Chromium is required (tools/install-deps.sh installs it): missing is a failure.
# Prints "test_report_sh: N passed, N failed".  (Exit statuses are kept in rc
# first: a $(...) in check's message would reset $? before the check.)
set -u
cd "$(dirname "$0")/.."
BIN=build/mobileclip
FX=${MC_FIXTURES:-../shared/fixtures}
ART=build/test-artifacts
export MOBILECLIP_VOCAB=$FX/tokenizer/bpe_simple_vocab_16e6.txt.gz
export MOBILECLIP_NO_PROGRESS=1
T=$(mktemp -d /tmp/mc_report.XXXXXX)
mkdir -p "$ART"
pass=0; fail=0
ok() { pass=$((pass+1)); }
bad() { fail=$((fail+1)); echo "FAIL: $*" >&2; }
check() { if eval "$1"; then ok; else bad "$2"; fi; }

S=$FX/datacompdr/shards
M=$FX/models/train_s0_tiny
ARGS=(--train-data "$S/00000000.tar::$S/00000000_bf16.tar" --model "$M" --pretrained "$M/init.pt"
      --dataset-reinforcement --distill-teacher-dimension 24 16 --distill-logit-scale 100
      --distill-loss-weights 0.25 0.75 --distill-average-after-softmax --batch-size 3
      --dataset-resampled --train-num-samples 15
      --lr 1e-3 --beta2 0.95 --eps 1e-6 --wd 0.2 --warmup 2 --grad-clip-norm 1.0 --seed 7
      --shuffle-buffer 4 --workers 2 --threads 2 --save-every-n-steps 3
      --logs "$T" --log-every-n-steps 0)

# an ImageFolder tree of fixture images for the evaluation after each epoch of r1
for c in cat:chelsea.png:chelsea_q90.jpg person:astronaut.png:camera.png cup:coffee.png:hubble_deep_field.jpg; do
  IFS=: read -r cls a b <<<"$c"
  mkdir -p "$T/tree/$cls"
  ln -s "$(realpath "$FX/images/$a")" "$T/tree/$cls/$a"; ln -s "$(realpath "$FX/images/$b")" "$T/tree/$cls/$b"
done
$BIN train "${ARGS[@]}" --epochs 2 --name r1 --imagenet-val "$T/tree" --retrieval "$S/00000000.tar" \
  --zeroshot-frequency 1 >"$T/r1.out" 2>"$T/r1.err"
rc=$?
check '[ $rc -eq 0 ]' "train r1 failed: $(tail -3 "$T/r1.err")"
$BIN train "${ARGS[@]}" --epochs 1 --lr 3e-3 --name r2 >"$T/r2.out" 2>"$T/r2.err"
rc=$?
check '[ $rc -eq 0 ]' "train r2 failed: $(tail -3 "$T/r2.err")"
check '[ "$(wc -l < "$T/r1/train.jsonl")" -eq 10 ] && [ "$(wc -l < "$T/r2/train.jsonl")" -eq 5 ]' "10 and 5 steps logged"
check '[ "$(wc -l < "$T/r1/results.jsonl")" -eq 2 ]' "r1: 2 evaluations in results.jsonl"

# the run's own report, written at its checkpoints (the last one after step 10)
check '[ -f "$T/r1/report.html" ] && [ ! -e "$T/r1/report.html.tmp" ]' "train did not write report.html into the run folder"
check 'grep -q "step 10 of 10 (10 logged)" "$T/r1/report.html"' "the run's report.html lacks the last step"
check 'grep -q "id=\"plot-eval-zeroshot\"" "$T/r1/report.html" && grep -q "id=\"plot-eval-t2i\"" "$T/r1/report.html"' \
  "the run's report.html lacks the evaluation written after the last checkpoint"
check 'grep -q "\"hostname\": \"$(hostname)\"" "$T/r1/params.json" && grep -q "\"cpu\": \"" "$T/r1/params.json"' \
  "params.json lacks the machine"
python3 tests/report_check.py --evals=8 "$T/r1/report.html" "$T/r1" >"$T/c0.out" 2>&1
rc=$?
check '[ $rc -eq 0 ]' "the run's own report: $(grep FAIL "$T/c0.out" | head -3)"

# mobileclip report RUN, and two runs in one page
$BIN report "$T/r1" --smooth 0.8 >"$T/o1" 2>"$T/e1"
rc=$?
check '[ $rc -eq 0 ] && grep -q "wrote $T/r1/report.html" "$T/o1"' "report RUN: $(cat "$T/e1")"
check 'grep -q "moving average 0.8 " "$T/r1/report.html"' "--smooth 0.8 not applied"
python3 tests/report_check.py "$T/r1/report.html" "$T/r1" >"$T/c1.out" 2>&1
rc=$?
check '[ $rc -eq 0 ]' "report RUN: $(grep FAIL "$T/c1.out" | head -3)"
$BIN report "$T/r1" "$T/r2/" -o "$T/cmp.html" >"$T/o2" 2>"$T/e2"
rc=$?
check '[ $rc -eq 0 ]' "report RUN1 RUN2: $(cat "$T/e2")"
python3 tests/report_check.py --evals=8 "$T/cmp.html" "$T/r1" "$T/r2" >"$T/c2.out" 2>&1
rc=$?
check '[ $rc -eq 0 ]' "report RUN1 RUN2: $(grep FAIL "$T/c2.out" | head -3)"
check 'grep -q "r1</span>" "$T/cmp.html" && grep -q "r2</span>" "$T/cmp.html"' "the legend names both runs"
# the checker has teeth: one logged loss changed, the page no longer matches
mkdir -p "$T/changed" && cp "$T/r1/params.json" "$T/changed/"
python3 -c '
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
rows[3]["loss"] *= 1.01
open(sys.argv[2], "w").write("".join(json.dumps(r) + "\n" for r in rows))' "$T/r1/train.jsonl" "$T/changed/train.jsonl"
python3 tests/report_check.py "$T/r1/report.html" "$T/changed" >"$T/c3.out" 2>&1
rc=$?
check '[ $rc -ne 0 ] && grep -q "loss/step: 1 points off" "$T/c3.out"' "the checker missed a changed loss: $(tail -2 "$T/c3.out")"

# errors
$BIN report "$T/r1" "$T/r2" >/dev/null 2>"$T/e3"
rc=$?
check '[ $rc -eq 2 ] && grep -q -- "-o FILE" "$T/e3"' "several runs without -o must be refused"
$BIN report "$T/r1" --smooth 1.5 >/dev/null 2>"$T/e4"
rc=$?
check '[ $rc -eq 2 ] && grep -q -- "--smooth" "$T/e4"' "--smooth 1.5 must be refused"
$BIN report "$T/r1" --log-y maybe >/dev/null 2>"$T/e5"
rc=$?
check '[ $rc -eq 2 ] && grep -q -- "--log-y" "$T/e5"' "--log-y maybe must be refused"
$BIN report "$T/nonexistent" >/dev/null 2>"$T/e6"
rc=$?
check '[ $rc -eq 1 ] && grep -q "no such run folder" "$T/e6"' "a missing run folder: $(cat "$T/e6")"
$BIN report --help >"$T/h" 2>&1
rc=$?
check '[ $rc -eq 0 ] && grep -q "usage: mobileclip report" "$T/h"' "report --help"

# headless Chromium: console messages, a script's look at the rendered page, screenshots
CHROME=$(command -v chromium || command -v chromium-browser || true)
check '[ -n "$CHROME" ]' "chromium is not installed (tools/install-deps.sh installs it)"
if [ -n "$CHROME" ]; then
  chrome() { timeout 120 "$CHROME" --headless --no-sandbox --disable-gpu --disable-dev-shm-usage --no-first-run \
               --user-data-dir="$T/chrome" "$@"; }
  for page in "$T/r1/report.html:report" "$T/cmp.html:report_cmp"; do
    f=${page%:*}; name=${page##*:}
    # 1. every console message (errors in SVG attributes are reported there) fails
    chrome --enable-logging=stderr --v=0 --dump-dom "file://$f" >"$T/$name.dom" 2>"$T/$name.log"
    rc=$?
    check '[ $rc -eq 0 ] && grep -q "</html>" "$T/$name.dom"' "$name: chromium did not load the page: $(tail -3 "$T/$name.log")"
    check '! grep -q ":CONSOLE" "$T/$name.log"' "$name: console messages: $(grep ":CONSOLE" "$T/$name.log" | head -3)"
    # 2. a copy with a script that records errors and measures every chart and shape
    python3 - "$f" "$T/$name.check.html" <<'EOF'
import sys
s = open(sys.argv[1], encoding="utf-8").read()
head = """<script>window.__e=[];window.onerror=function(m,u,l){window.__e.push(String(m)+' line '+l);};
['error','warn'].forEach(function(k){var o=console[k];console[k]=function(){window.__e.push(k+': '+
Array.prototype.join.call(arguments,' '));o.apply(console,arguments);};});</script>"""
tail = """<script>(function(){var charts=document.querySelectorAll('svg.chart'),shapes=0,bad=[];
charts.forEach(function(c){var r=c.getBoundingClientRect();if(!(r.width>200&&r.height>80))bad.push('chart '+r.width+'x'+r.height);
c.querySelectorAll('polyline,polygon,circle,path').forEach(function(e){var b=e.getBBox();shapes++;
if(!(isFinite(b.x)&&isFinite(b.y)&&isFinite(b.width)&&isFinite(b.height)))bad.push(e.tagName);});});
var p=document.createElement('pre');p.id='mc-check';p.textContent='MCCHECK '+JSON.stringify({charts:charts.length,
shapes:shapes,bad:bad.slice(0,5),errors:window.__e})+' MCEND';document.body.appendChild(p);})();</script>"""
s = s.replace("<head>", "<head>" + head, 1).replace("</body>", tail + "</body>", 1)
open(sys.argv[2], "w", encoding="utf-8").write(s)
EOF
    chrome --dump-dom "file://$T/$name.check.html" >"$T/$name.check.dom" 2>/dev/null
    res=$(grep -o "MCCHECK .* MCEND" "$T/$name.check.dom" | sed 's/^MCCHECK //; s/ MCEND$//; s/&quot;/"/g')
    check '[ -n "$res" ]' "$name: the injected script did not run"
    if [ -n "$res" ]; then
      python3 -c '
import json, sys
r = json.loads(sys.argv[1])
ok = r["charts"] >= 20 and r["shapes"] > r["charts"] and not r["bad"] and not r["errors"]
print(r) if not ok else None
sys.exit(0 if ok else 1)' "$res" >"$T/$name.res" 2>&1
      rc=$?
      check '[ $rc -eq 0 ]' "$name: rendered page: $(cat "$T/$name.res")"
    fi
    # 3. the screenshot, kept as a test artefact
    rm -f "$ART/$name.png"
    chrome --screenshot="$ART/$name.png" --window-size=1400,2000 --hide-scrollbars "file://$f" >/dev/null 2>&1
    python3 - "$ART/$name.png" >"$T/$name.png.out" 2>&1 <<'EOF'
import struct, sys, zlib
d = open(sys.argv[1], "rb").read()
assert d[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
w, h = struct.unpack(">II", d[16:24])
assert (w, h) == (1400, 2000), "size %dx%d" % (w, h)
i, idat = 8, b""
while i < len(d):
    n = struct.unpack(">I", d[i:i + 4])[0]
    if d[i + 4:i + 8] == b"IDAT":
        idat += d[i + 8:i + 8 + n]
    i += 12 + n
raw = zlib.decompress(idat)
assert len(set(raw[::7])) > 20, "the screenshot is (nearly) blank"
EOF
    rc=$?
    check '[ $rc -eq 0 ]' "$name: screenshot $ART/$name.png: $(tail -1 "$T/$name.png.out")"
  done
fi

[ $fail -eq 0 ] && rm -rf "$T"
echo "test_report_sh: $pass passed, $fail failed"
[ $fail -eq 0 ]
