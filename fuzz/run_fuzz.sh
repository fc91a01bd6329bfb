#!/usr/bin/env bash
# Runs each libFuzzer binary for SECONDS of wall time, FUZZ_JOBS of them at once
# (default 1: one after another), with a corpus under build/fuzz/corpus_<name>
# seeded from the test fixtures when they are present (and from
# fuzz/regressions/<name>/), then prints a table per target: executions,
# executions per second, the CPU seconds the target actually had (less than
# its wall time when more targets run than there are cores), coverage
# (libFuzzer's cov: edges, ft: features), corpus size and the outcome.  Exits
# non-zero if any fuzzer finds a crash, leak or timeout; the reproducer is left
# in build/fuzz/ (once fixed, it goes into fuzz/regressions/<name>/, which
# make test replays).
# Usage: [FUZZ_JOBS=N] fuzz/run_fuzz.sh SECONDS BINARY...
set -u
secs=${1:-30}; shift
jobs=${FUZZ_JOBS:-1}
fx=${MC_FIXTURES:-../shared/fixtures}
export MOBILECLIP_VOCAB=${MOBILECLIP_VOCAB:-$(cd "$fx/tokenizer" 2>/dev/null && pwd)/bpe_simple_vocab_16e6.txt.gz}
row_format='%-18s %8s %8s %14s %9s %7s %8s %8s  %s'

# seed NAME CORPUS: copies the fixture inputs that suit target NAME into CORPUS.
seed() {
  local name=$1 corpus=$2
  case "$name" in
    fuzz_json)
      for f in "$fx"/models/*/config.json "$fx"/models/*/open_clip_config.json \
               "$fx"/datacompdr/teachers/*/open_clip_config.json "$fx"/images/index.json; do
        [ -f "$f" ] && cp -f "$f" "$corpus/seed_$(echo "$f" | tr '/' '_')"
      done ;;
    fuzz_checkpoint)
      shard="$fx/datacompdr/shards/00000000_bf16.tar"
      if [ -f "$shard" ]; then
        for m in $(tar -tf "$shard" | grep '\.pth\.gz$'); do
          tar -xOf "$shard" "$m" | gzip -dc > "$corpus/seed_${m%.gz}" 2>/dev/null || true
        done
      fi
      # small safetensors files: the reader's dtypes, metadata, a 0-d and an empty tensor
      python3 - "$corpus" <<'EOF'
import json, struct, sys
def st(path, tensors, meta=None):
    head, data = {}, b''
    for name, (dtype, shape, raw) in tensors.items():
        head[name] = {'dtype': dtype, 'shape': shape, 'data_offsets': [len(data), len(data) + len(raw)]}
        data += raw
    if meta:
        head['__metadata__'] = meta
    h = json.dumps(head).encode()
    h += b' ' * (-len(h) % 8)
    open(path, 'wb').write(struct.pack('<Q', len(h)) + h + data)
d = sys.argv[1]
st(d + '/seed_f32.safetensors', {'w': ('F32', [2, 3], struct.pack('<6f', *range(6))),
                                 'b': ('F32', [3], struct.pack('<3f', 1, 2, 3))},
   {'format': 'pt', 'mobileclip.config': '{"embed_dim": 4}'})
st(d + '/seed_half.safetensors', {'h': ('F16', [2, 2], b'\x00\x3c' * 4), 'g': ('BF16', [4], b'\x80\x3f' * 4),
                                  'i': ('I64', [2], struct.pack('<2q', 7, -1)), 'k': ('I32', [1], b'\x01\0\0\0')})
st(d + '/seed_scalar.safetensors', {'s': ('F64', [], struct.pack('<d', 0.5)), 'e': ('F32', [0, 4], b''),
                                    'u': ('U8', [3], b'abc'), 'z': ('BOOL', [1], b'\x01')})
EOF
      ;;
    fuzz_image)   # the small fixture images (libFuzzer's -max_len is 64 KiB); WebP and 16-bit PNG made from one
      for f in "$fx"/images/*.png "$fx"/images/*.jpg; do
        [ -f "$f" ] && [ "$(stat -c %s "$f")" -le 65536 ] && cp -f "$f" "$corpus/seed_$(basename "$f")"
      done
      /usr/bin/python3 - "$fx/images/chelsea_q90.jpg" "$corpus" <<'EOF' 2>/dev/null || true
import sys
from PIL import Image
im = Image.open(sys.argv[1]).convert('RGB').resize((40, 30))
im.save(sys.argv[2] + '/seed_small.webp', quality=60)
im.convert('RGBA').save(sys.argv[2] + '/seed_alpha.webp', lossless=True)
im.convert('I;16').save(sys.argv[2] + '/seed_gray16.png')
EOF
      ;;
    fuzz_tokenizer)   # texts of the tokenizer fixture, behind the byte that picks the context length
      python3 - "$fx/tokenizer/cases.jsonl" "$corpus" <<'EOF'
import json, sys
for i, line in enumerate(open(sys.argv[1], encoding='utf-8')):
    if i % 10 == 0 or i > 90:
        open('%s/seed_%03d' % (sys.argv[2], i), 'wb').write(bytes([i & 3]) + json.loads(line)['text'].encode())
EOF
      ;;
    fuzz_paug)
      shard="$fx/datacompdr/shards/00000000.tar"
      if [ -f "$shard" ]; then
        for m in $(tar -tf "$shard" | grep '\.paug\.json$'); do
          tar -xOf "$shard" "$m" > "$corpus/seed_$m" 2>/dev/null || true
        done
      fi
      printf '%s' '{"param_aug": [[[2, 3, 30, 40], [[5, 9.0], [9, 0.27]]], [[0, 0, 40, 48], [[1, -0.09], [8, 0.27]]]]}' \
        > "$corpus/seed_small" ;;
    fuzz_tar|fuzz_npz|fuzz_pthgz)
      for shard in "$fx"/datacompdr/shards/*.tar; do
        [ -f "$shard" ] || continue
        b=$(basename "$shard" .tar)
        case "$name" in
          fuzz_tar)   # a small shard: one sample without its image
            tmp=$(mktemp -d)
            ms=$(tar -tf "$shard" | grep '^000000000\.' | grep -v '\.jpg$')
            tar -C "$tmp" -xf "$shard" $ms && tar -C "$tmp" -cf "$corpus/seed_$b.tar" $ms
            rm -rf "$tmp" ;;
          fuzz_npz)
            for m in $(tar -tf "$shard" | grep '\.npz$'); do tar -xOf "$shard" "$m" > "$corpus/seed_$m"; done ;;
          fuzz_pthgz)
            for m in $(tar -tf "$shard" | grep '\.pth\.gz$'); do tar -xOf "$shard" "$m" > "$corpus/seed_$m"; done ;;
        esac
      done ;;
    fuzz_serve)   # first byte: 0 embeddings, 1 classify, 2 search
      printf '\000{"model": "m", "input": ["a cat", {"text": "b"}, {"image": "data:image/png;base64,iVBORw0KGgo="}]}' > "$corpus/seed_embed"
      printf '\001{"images": ["Zm9v"], "labels": ["cat", "dog"], "templates": ["a {}"], "top_k": 1}' > "$corpus/seed_classify"
      printf '\002{"text": "a dog", "k": 5}' > "$corpus/seed_search"
      [ -f "$fx/images/one_pixel.png" ] && { printf '\002{"image": "'; base64 -w0 "$fx/images/one_pixel.png"; printf '"}'; } \
        > "$corpus/seed_search_image" ;;
  esac
}

# run_one BINARY: seeds and runs one target; leaves its table row in
# build/fuzz/<name>.row and exits non-zero if the fuzzer failed.
run_one() {
  local bin=$1 name corpus log rc execs rate cpu last cov ft outcome
  name=$(basename "$bin")
  corpus=build/fuzz/corpus_$name
  log=build/fuzz/$name.log
  mkdir -p "$corpus"
  seed "$name" "$corpus"
  [ -d "fuzz/regressions/$name" ] && cp -f fuzz/regressions/"$name"/* "$corpus/" 2>/dev/null
  echo "fuzzing $name for ${secs}s ($(ls "$corpus" | wc -l) inputs to start from)"
  /usr/bin/time -f '%U %S' -o "build/fuzz/$name.cpu" \
    bash -c 'cd build/fuzz && exec "../../$1" -max_total_time="$2" -max_len=65536 -timeout=10 \
               -rss_limit_mb=2048 -malloc_limit_mb=1024 -print_final_stats=1 "../../$3"' \
    _ "$bin" "$secs" "$corpus" > "$log" 2>&1
  rc=$?
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -n 1)
  cpu=$(awk '{ printf "%.0f", $1 + $2 }' "build/fuzz/$name.cpu" 2>/dev/null)
  last=$(grep -E '^#[0-9]+' "$log" | tail -n 1)
  cov=$(echo "$last" | sed -n 's/.* cov: \([0-9]*\).*/\1/p')
  ft=$(echo "$last" | sed -n 's/.* ft: \([0-9]*\).*/\1/p')
  if [ $rc -ne 0 ]; then
    outcome="FAILED (exit $rc): $(grep -m1 -oE 'ERROR: [A-Za-z]+: [^ ]+( [^ ]+)?|deadly signal|timeout' "$log" | head -n 1)"
    echo "$name: $outcome, see $log"; tail -n 30 "$log"
  else
    outcome=ok
  fi
  printf "$row_format\n" "$name" "$secs" "${cpu:-?}" "${execs:-?}" "${rate:-?}" \
    "${cov:-?}" "${ft:-?}" "$(ls "$corpus" | wc -l)" "$outcome" > "build/fuzz/$name.row"
  [ $rc -eq 0 ]
}

status=0
running=0
for bin in "$@"; do
  if [ "$running" -ge "$jobs" ]; then
    wait -n || status=1
    running=$((running - 1))
  fi
  run_one "$bin" &
  running=$((running + 1))
done
while [ "$running" -gt 0 ]; do
  wait -n || status=1
  running=$((running - 1))
done
echo
printf "$row_format\n" target seconds cpu-s executions exec/s cov ft corpus outcome
for bin in "$@"; do
  cat "build/fuzz/$(basename "$bin").row"
done
exit $status
