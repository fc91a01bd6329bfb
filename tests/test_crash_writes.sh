#!/usr/bin/env bash
# Crash-safe writes: writers killed with SIGKILL at random moments, many
# times; afterwards the destination is always the complete old file or the
# complete new one (compared byte for byte with a reference copy, or parsed
# in full), never a torn one, and the next run proceeds.
#   - convert to safetensors and to torch.save .pt over an older conversion;
#   - the download cache (official model name, files served by a throttled
#     HTTP server on 127.0.0.1 through MOBILECLIP_BASE_URL): each cached file
#     absent or identical to the served one;
#   - training checkpoints (--save-every-n-steps 1 --save-most-recent,
#     --resume latest after each kill): every checkpoint parses in full with
#     its CRC, and the epoch checkpoints equal the uninterrupted run's;
#   - the search index (mobileclip index, one image per transaction): the
#     SQLite file passes its integrity check and every stored image row is
#     the uninterrupted run's, byte for byte; the next run completes it.
# Half the kills come after a random delay within the whole run; the other
# half once the writer's temporary file exists (or the destination is
# emptied), plus a random spin of up to about 3 ms: within the write.  The
# index has no temporary file (SQLite writes in place through its write-ahead
# log): all its kills come at random moments.
# MC_CRASH_TRIES (default 20) kills per writer; MC_CRASH_SEED;
# MC_CRASH_ONLY="convert download train index" (the default) picks the writers.
# Prints "test_crash_writes: N passed, N failed".
set -u
cd "$(dirname "$0")/.."
BIN=$PWD/build/mobileclip
FX=$(cd "${MC_FIXTURES:-../shared/fixtures}" && pwd)
export MOBILECLIP_VOCAB=$FX/tokenizer/bpe_simple_vocab_16e6.txt.gz
export MOBILECLIP_NO_PROGRESS=1
TRIES=${MC_CRASH_TRIES:-20}
RANDOM=${MC_CRASH_SEED:-11}
# on tmpfs where there is one: the writers' fsyncs cost nothing there, and a
# killed process leaves the same files as on a disk
T=$(mktemp -d /dev/shm/mc_crash_writes.XXXXXX 2>/dev/null || mktemp -d /tmp/mc_crash_writes.XXXXXX)
pass=0; fail=0
ok() { pass=$((pass+1)); }
bad() { fail=$((fail+1)); echo "FAIL: $*" >&2; }
check() { if eval "$1"; then ok; else bad "$2"; fi; }
server_pid=
trap '[ -n "$server_pid" ] && kill $server_pid 2>/dev/null' EXIT

# stcheck FILE...: each file is a whole safetensors file: its header parses,
# the tensors tile the data area exactly up to the end of the file, and the
# data's CRC-32 equals the metadata's data_crc32 where there is one.
stcheck() {
  python3 - "$@" <<'EOF'
import json, struct, sys, zlib
bad = 0
for path in sys.argv[1:]:
    try:
        b = open(path, 'rb').read()
        (n,) = struct.unpack('<Q', b[:8])
        h = json.loads(b[8:8 + n])
        meta = h.pop('__metadata__', {})
        spans = sorted(tuple(t['data_offsets']) for t in h.values())
        end = 0
        for s, e in spans:
            assert s == end and e >= s, 'tensors do not tile the data area'
            end = e
        assert len(b) == 8 + n + end, 'file is %d bytes, header says %d' % (len(b), 8 + n + end)
        if 'data_crc32' in meta:
            assert '%08x' % zlib.crc32(b[8 + n:]) == meta['data_crc32'], 'CRC mismatch'
    except Exception as e:
        print('%s: %s' % (path, e), file=sys.stderr)
        bad += 1
sys.exit(1 if bad else 0)
EOF
}

# killrun TRY TMPGLOB DEST WINDOW_MS CMD...: runs CMD and kills it with
# SIGKILL: on even tries (every try when TMPGLOB is empty) after a random
# delay of up to WINDOW_MS; on odd ones once a file matches TMPGLOB (the
# writer's temporary file) or DEST (when given) is emptied, plus a random spin
# of up to about 3 ms: within the write.
# Sets killed=1 when the kill came before the command ended, else rc.
killrun() {
  local try=$1 glob=$2 dest=$3 window=$4; shift 4
  [ $((try % 2)) -eq 1 ] && [ -n "$glob" ] && rm -f $glob   # the trigger is this run's temporary file
  touch "$T/mark"
  "$@" >"$T/run.out" 2>"$T/run.err" &
  local pid=$! ms j spin
  if [ $((try % 2)) -eq 0 ] || [ -z "$glob" ]; then
    ms=$((RANDOM * window / 32768))
    sleep "$((ms / 1000)).$(printf %03d $((ms % 1000)))"
  else
    while kill -0 $pid 2>/dev/null && ! compgen -G "$glob" >/dev/null && { [ -z "$dest" ] || [ -s "$dest" ]; }; do :; done
    spin=$((RANDOM % 1000))
    for ((j = 0; j < spin; j++)); do :; done
  fi
  if kill -9 $pid 2>/dev/null; then killed=1; wait $pid 2>/dev/null; rc=137
  else killed=0; wait $pid; rc=$?; fi
}

# midwrite DIR NAME-PATTERN: 1 when the last killed run left a temporary file
# (killed between creating it and renaming it into place), else 0.
midwrite() { [ -n "$(find "$1" -maxdepth 1 -name "$2" -newer "$T/mark" 2>/dev/null)" ] && echo 1 || echo 0; }

# millisecond wall time of a command
msrun() { local t0=$(date +%s%N); "$@" >/dev/null 2>&1; echo $(( ($(date +%s%N) - t0) / 1000000 )); }

M=$FX/models

# ---- convert: a new conversion over an older one ----
test_convert() {
local fmt old new dest ms kills torn olds news mid i tmps left
for fmt in safetensors pt; do
  old=$T/old.$fmt new=$T/new.$fmt dest=$T/conv/model.$fmt
  mkdir -p "$T/conv"
  "$BIN" convert "$M/oc_mobileclip_s1" -o "$old" >/dev/null 2>&1
  ms=$(msrun "$BIN" convert "$M/oc_mobileclip2_s0" -o "$new")
  check '[ -s "$old" ] && [ -s "$new" ] && ! cmp -s "$old" "$new"' "convert $fmt: two different reference files"
  kills=0; torn=0; olds=0; news=0; mid=0
  for i in $(seq 1 $TRIES); do
    cp "$old" "$dest"
    killrun $i "$dest.tmp*" "$dest" $((ms + 20)) "$BIN" convert "$M/oc_mobileclip2_s0" -o "$dest"
    kills=$((kills + killed)); mid=$((mid + $(midwrite "$T/conv" "model.$fmt.tmp*")))
    if cmp -s "$dest" "$old"; then olds=$((olds+1)); elif cmp -s "$dest" "$new"; then news=$((news+1))
    else torn=$((torn+1)); cp "$dest" "$T/torn_$i.$fmt"; fi
  done
  check '[ $torn -eq 0 ]' "convert $fmt: $torn of $TRIES kills left a destination that is neither the old nor the new file"
  check '[ $kills -ge $((TRIES / 3)) ]' "convert $fmt: only $kills of $TRIES runs were killed"
  tmps=$(ls "$T/conv" | grep -c -v "^model\.$fmt$")
  "$BIN" convert "$M/oc_mobileclip2_s0" -o "$dest" >/dev/null 2>"$T/run.err"
  rc=$?; check '[ $rc -eq 0 ] && cmp -s "$dest" "$new"' "convert $fmt: the run after the kills: rc $rc $(tail -1 "$T/run.err")"
  left=$(ls "$T/conv" | grep -c -v "^model\.$fmt$")
  check '[ $left -eq 0 ]' "convert $fmt: the run after the kills left $left of the killed runs' temporary files: $(ls "$T/conv" | tr '\n' ' ')"
  echo "test_crash_writes: convert $fmt ($ms ms a run): $kills kills in $TRIES runs ($mid mid-write), destination old $olds, new $news, torn $torn; temporary files left by the kills: $tmps, after the next run: $left" >&2
  rm -rf "$T/conv"
done
}

# ---- the download cache ----
test_download() {
local SRV=$T/srv CD=$T/cache/MobileCLIP-S1 ms kills torn partial mid i f tmps left
mkdir -p "$SRV"
cp "$M/oc_mobileclip_s1/open_clip_model.safetensors" "$M/oc_mobileclip_s1/open_clip_config.json" "$MOBILECLIP_VOCAB" "$SRV/"
python3 - "$SRV" >"$T/port" 2>"$T/server.err" <<'EOF' &
# Serves the files of a folder by their last path component, 64 KiB at a time
# with a 2 ms pause between pieces (a download takes long enough to be killed).
import http.server, os, sys, time
root = sys.argv[1]
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        p = os.path.join(root, os.path.basename(self.path.split('?')[0]))
        if not os.path.isfile(p):
            self.send_error(404)
            return
        data = open(p, 'rb').read()
        self.send_response(200)
        self.send_header('Content-Length', str(len(data)))
        self.end_headers()
        try:
            for i in range(0, len(data), 65536):
                self.wfile.write(data[i:i + 65536])
                time.sleep(0.002)
        except (BrokenPipeError, ConnectionResetError):
            pass
    def log_message(self, *a):
        pass
s = http.server.ThreadingHTTPServer(('127.0.0.1', 0), H)
print(s.server_address[1], flush=True)
s.serve_forever()
EOF
server_pid=$!
for _ in $(seq 100); do [ -s "$T/port" ] && break; sleep 0.05; done
export MOBILECLIP_BASE_URL=http://127.0.0.1:$(cat "$T/port")
export MOBILECLIP_CACHE=$T/cache
ms=$(msrun "$BIN" embed-text -m MobileCLIP-S1 -o "$T/e.npy" "a cat")
check '[ -f "$CD/open_clip_model.safetensors" ]' "download: the uninterrupted download did not fill the cache (server: $(tail -1 "$T/server.err"))"
kills=0; torn=0; partial=0; mid=0
for i in $(seq 1 $TRIES); do
  [ $((i % 4)) -eq 1 ] && rm -rf "$CD"   # otherwise the kill lands on what the last one left
  killrun $i "$CD/*.part-*" "" $((ms + 20)) "$BIN" embed-text -m MobileCLIP-S1 -o "$T/e.npy" "a cat"
  kills=$((kills + killed)); mid=$((mid + $(midwrite "$CD" "*.part-*")))
  for f in open_clip_model.safetensors open_clip_config.json bpe_simple_vocab_16e6.txt.gz; do
    if [ -e "$CD/$f" ]; then cmp -s "$CD/$f" "$SRV/$f" || { torn=$((torn+1)); echo "torn: $f" >&2; }
    else partial=$((partial+1)); fi
  done
done
check '[ $torn -eq 0 ]' "download: $torn cached files differ from the served ones after a kill"
check '[ $kills -ge $((TRIES / 3)) ]' "download: only $kills of $TRIES runs were killed"
tmps=$(ls "$CD" 2>/dev/null | grep -c -- '\.part-')
"$BIN" embed-text -m MobileCLIP-S1 -o "$T/e.npy" "a cat" >/dev/null 2>"$T/run.err"
rc=$?; check '[ $rc -eq 0 ]' "download: the run after the kills: rc $rc $(tail -1 "$T/run.err")"
for f in open_clip_model.safetensors open_clip_config.json bpe_simple_vocab_16e6.txt.gz; do
  check 'cmp -s "$CD/$f" "$SRV/$f"' "download: $f in the cache differs from the served file after the last run"
done
left=$(ls "$CD" 2>/dev/null | grep -c -- '\.part-')
check '[ $left -eq 0 ]' "download: the run after the kills left $left partial downloads of the killed runs"
echo "test_crash_writes: download ($ms ms a run): $kills kills in $TRIES runs ($mid mid-download), files missing afterwards $partial, torn $torn; partial downloads left by the kills: $tmps, after the next run: $left" >&2
kill $server_pid 2>/dev/null; wait $server_pid 2>/dev/null; server_pid=
unset MOBILECLIP_BASE_URL MOBILECLIP_CACHE
}

# ---- training checkpoints ----
test_train() {
local S=$FX/datacompdr/shards TM=$M/train_s0_tiny CK=$T/runs/killed/checkpoints ms kills torn differ mid i e files
local ARGS=(--train-data "$S/00000000.tar::$S/00000000_bf16.tar" --model "$TM" --pretrained "$TM/init.pt"
      --dataset-reinforcement --distill-teacher-dimension 24 16 --distill-logit-scale 100 100
      --distill-loss-weights 0.25 0.75 --distill-average-after-softmax --batch-size 3 --epochs 2
      --lr 1e-3 --warmup 2 --seed 7 --workers 2 --threads 2 --save-every-n-steps 1 --save-most-recent
      --logs "$T/runs" --log-every-n-steps 0)
ms=$(msrun "$BIN" train "${ARGS[@]}" --name ref)
check '[ -f "$T/runs/ref/checkpoints/epoch_2.safetensors" ]' "train: the uninterrupted run wrote no final checkpoint"
kills=0; torn=0; differ=0; mid=0
for i in $(seq 1 $TRIES); do
  killrun $i "$CK/*.tmp" "" $((ms + 20)) "$BIN" train "${ARGS[@]}" --name killed --resume latest
  kills=$((kills + killed)); mid=$((mid + $(midwrite "$CK" "*.tmp")))
  if [ $killed -eq 0 ]; then
    [ $rc -eq 0 ] || { bad "train: a resumed run failed (rc $rc): $(tail -2 "$T/run.err")"; break; }
    rm -rf "$T/runs/killed"   # start over: more kills
  fi
  files=$(ls "$CK"/*.safetensors 2>/dev/null)
  [ -n "$files" ] && { stcheck $files || torn=$((torn+1)); }
  for e in epoch_1 epoch_2; do
    [ -f "$CK/$e.safetensors" ] && ! cmp -s "$CK/$e.safetensors" "$T/runs/ref/checkpoints/$e.safetensors" && differ=$((differ+1))
  done
done
check '[ $torn -eq 0 ]' "train: $torn kills left a checkpoint that does not parse in full"
check '[ $differ -eq 0 ]' "train: $differ epoch checkpoints differ from the uninterrupted run's"
check '[ $kills -ge $((TRIES / 3)) ]' "train: only $kills of $TRIES runs were killed"
"$BIN" train "${ARGS[@]}" --name killed --resume latest >/dev/null 2>"$T/run.err"
rc=$?; check '[ $rc -eq 0 ]' "train: the run after the kills: rc $rc $(tail -2 "$T/run.err")"
check 'cmp -s "$CK/epoch_2.safetensors" "$T/runs/ref/checkpoints/epoch_2.safetensors"' "train: the final checkpoint differs from the uninterrupted run's"
echo "test_crash_writes: train ($ms ms a run): $kills kills in $TRIES runs ($mid mid-write), torn checkpoints $torn, epoch checkpoints unlike the reference $differ" >&2
}

# ---- the search index ----
# idxdump DB: every image row as "path sha256 size-of-embedding embedding-hex"
# (rows waiting for an embedding too), sorted; fails unless the file passes
# SQLite's integrity check and every embedding has the stored width (an index
# killed before its first batch committed has no width and no embedding).
idxdump() {
  python3 - "$1" <<'EOF'
import sqlite3, sys
db = sqlite3.connect(sys.argv[1])
ok = db.execute("PRAGMA integrity_check").fetchone()[0]
if ok != "ok":
    sys.exit("%s: integrity check: %s" % (sys.argv[1], ok))
row = db.execute("SELECT value FROM meta WHERE key = 'dim'").fetchone()
dim = int(row[0]) if row else 0   # no width yet: killed before the first batch committed
for path, sha, emb in sorted(db.execute("SELECT path, sha256, embedding FROM images")):
    if emb is not None and len(emb) != 4 * dim:
        sys.exit("%s: %s: embedding of %d bytes, dim %d" % (sys.argv[1], path, len(emb), dim))
    print(path, sha, len(emb) if emb else 0, emb.hex() if emb else "-")
EOF
}

test_index() {
local I=$T/photos DB=$T/index.db ms kills torn mid i f n
local IARGS=(-m "$M/oc_mobileclip2_s0" "$I" --batch 1 --workers 1 --threads 2 --decode-threads 1)
mkdir -p "$I"
for f in camera.png chelsea.png coffee.png hubble_deep_field.jpg logo.png chelsea_q90.jpg; do cp "$FX/images/$f" "$I/"; done
ms=$(msrun "$BIN" index --db "$T/ref.db" "${IARGS[@]}")
idxdump "$T/ref.db" > "$T/ref.rows"
check '[ "$(grep -vc " - *$" "$T/ref.rows")" -eq 6 ]' "index: the uninterrupted run did not embed the 6 images"
kills=0; torn=0; mid=0
for i in $(seq 1 $TRIES); do
  # resumed runs have less to do: the kills within the first two thirds
  killrun $i "" "" $((ms * 2 / 3)) "$BIN" index --db "$DB" "${IARGS[@]}"
  kills=$((kills + killed))
  [ $killed -eq 0 ] && [ $rc -ne 0 ] && { bad "index: a run failed (rc $rc): $(tail -2 "$T/run.err")"; break; }
  if [ -f "$DB" ]; then
    # every row is absent or as the uninterrupted run wrote it (or still waiting for its embedding)
    if ! idxdump "$DB" > "$T/got.rows" 2>"$T/dump.err"; then torn=$((torn+1)); echo "$(cat "$T/dump.err")" >&2
    else
      while read -r p s n e; do
        [ "$e" = "-" ] && continue
        grep -qxF "$p $s $n $e" "$T/ref.rows" || { torn=$((torn+1)); echo "index: $p stored unlike the reference" >&2; }
      done < "$T/got.rows"
      n=$(grep -vc " - *$" "$T/got.rows")
      [ "$n" -gt 0 ] && [ "$n" -lt 6 ] && mid=$((mid+1))
    fi
  fi
  [ $killed -eq 0 ] && rm -f "$DB" "$DB-wal" "$DB-shm"   # complete: start over, more kills
done
check '[ $torn -eq 0 ]' "index: $torn kills left an index that is damaged or holds a row unlike the reference"
check '[ $kills -ge $((TRIES / 3)) ]' "index: only $kills of $TRIES runs were killed"
"$BIN" index --db "$DB" "${IARGS[@]}" >/dev/null 2>"$T/run.err"
rc=$?; check '[ $rc -eq 0 ]' "index: the run after the kills: rc $rc $(tail -2 "$T/run.err")"
idxdump "$DB" > "$T/got.rows" 2>&1
check 'cmp -s "$T/got.rows" "$T/ref.rows"' "index: after the last run the rows differ from the uninterrupted run's: $(diff "$T/ref.rows" "$T/got.rows" | head -3 | cut -c1-200)"
echo "test_crash_writes: index ($ms ms a run): $kills kills in $TRIES runs ($mid left 1 to 5 of the 6 images committed), damaged or unlike the reference $torn" >&2
}

for part in ${MC_CRASH_ONLY:-convert download train index}; do "test_$part"; done

if [ $fail -eq 0 ]; then rm -rf "$T"; else echo "test_crash_writes: the files are kept in $T" >&2; fi
echo "test_crash_writes: $pass passed, $fail failed"
[ $fail -eq 0 ]
