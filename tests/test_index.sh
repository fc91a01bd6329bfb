#!/usr/bin/env bash
# 'mobileclip index' and 'mobileclip search' on copies of the fixture images
# with the fixture models (docs/search.md):
#   - a folder indexed: images added, undecodable and unreadable files skipped
#     and counted by reason;
#   - text and image searches equal a brute-force scan over 'embed-text' /
#     'embed-image' outputs of the same model (every score, hence the order);
#   - incremental: a second run changes nothing; an added file is added, a
#     modified one re-embedded (same id), a touched one with the same content
#     kept, a deleted one forgotten;
#   - an index of another model is refused, and re-embedded with --reembed;
#   - kill -9 in the middle of indexing keeps every committed batch, and the
#     next run adds exactly the rest;
#   - a missing index, a file that is no index, and the scan benchmark.
# Prints "test_index: N passed, N failed".
set -u
cd "$(dirname "$0")/.."
BIN=$PWD/build/mobileclip
FX=${MC_FIXTURES:-../shared/fixtures}
FX=$(cd "$FX" && pwd)
export MOBILECLIP_VOCAB=$FX/tokenizer/bpe_simple_vocab_16e6.txt.gz
export MOBILECLIP_NO_PROGRESS=1 MOBILECLIP_OFFLINE=1
T=$(mktemp -d /tmp/mc_index.XXXXXX)
T=$(cd "$T" && pwd -P)
pass=0; fail=0
ok() { pass=$((pass+1)); }
bad() { fail=$((fail+1)); echo "FAIL: $*" >&2; }
check() { if eval "$1"; then ok; else bad "$2"; fi; }
M=$FX/models/oc_mobileclip2_s0
M2=$FX/models/v1_mci_mct
DB=$T/photos.db
I=$T/photos

mkdir -p "$I/sub" "$I/.hidden"
for f in astronaut.png camera.png chelsea.png coffee.png hubble_deep_field.jpg not_an_image.jpg truncated.jpg; do
  cp "$FX/images/$f" "$I/"
done
cp "$FX/images/logo.png" "$I/sub/"
cp "$FX/images/camera.png" "$I/.hidden/"          # dot folders are not indexed
echo "not an image either" > "$I/notes.txt"        # nor files without an image extension
chmod u+w "$I"/* "$I/sub"/*
ln -s "$T/nowhere.jpg" "$I/broken_link.jpg"        # unreadable: a dangling link


# the stored id of a path, and the number of images with an embedding
q() { python3 - "$DB" "$@" <<'PY'
import sqlite3, sys
db = sqlite3.connect("file:%s?mode=ro" % sys.argv[1], uri=True)
if sys.argv[2] == "count":
    print(db.execute("SELECT COUNT(*) FROM images WHERE embedding IS NOT NULL").fetchone()[0])
elif sys.argv[2] == "id":
    r = db.execute("SELECT id FROM images WHERE path = ?", (sys.argv[3],)).fetchone()
    print(r[0] if r else "none")
elif sys.argv[2] == "integrity":
    print(db.execute("PRAGMA integrity_check").fetchone()[0])
PY
}
stat_line() { grep -o '[0-9]* images found.*' "$1"; }

# ---- first index ----
$BIN index -m "$M" --db "$DB" "$I" --verbose >"$T/i1.out" 2>"$T/i1.err"
rc=$?; check '[ $rc -eq 0 ]' "index failed: $(cat "$T/i1.err")"
check 'grep -q "8 images found: 6 added, 0 updated, 0 unchanged, 0 removed, 3 skipped (1 unreadable, 2 not decodable)" "$T/i1.err"' \
      "first index counts: $(stat_line "$T/i1.err")"
check 'grep -q "skipped (not decodable) .*truncated.jpg" "$T/i1.err" && grep -q "skipped (unreadable) .*broken_link.jpg" "$T/i1.err"' \
      "--verbose names the skipped files and reasons: $(cat "$T/i1.err")"
check 'grep -q "6 images, dim 32" "$T/i1.out"' "index summary: $(cat "$T/i1.out")"

# ---- search equals a brute-force scan over embed-text / embed-image ----
GOOD=("$I/astronaut.png" "$I/camera.png" "$I/chelsea.png" "$I/coffee.png" "$I/hubble_deep_field.jpg" "$I/sub/logo.png")
# compare: every path's score in the search JSON against the dot product of the
# query's and the image's embeddings (JSON lines), and the order descending
compare() {  # search.json query.jsonl images.jsonl paths...
  python3 - "$@" <<'PY'
import json, sys
res = json.load(open(sys.argv[1]))["results"]
q = json.loads(open(sys.argv[2]).readline())
rows = [json.loads(l) for l in open(sys.argv[3])]
paths = sys.argv[4:]
brute = {p: sum(a * b for a, b in zip(q, r)) for p, r in zip(paths, rows)}
errs = []
if sorted(r["path"] for r in res) != sorted(paths):
    errs.append("paths %s vs %s" % ([r["path"] for r in res], paths))
for r in res:
    if abs(r["score"] - brute.get(r["path"], 9)) > 2e-5:
        errs.append("%s: score %.7f, brute force %.7f" % (r["path"], r["score"], brute.get(r["path"], 9)))
s = [r["score"] for r in res]
if s != sorted(s, reverse=True):
    errs.append("not sorted: %s" % s)
best = max(brute, key=brute.get)
if abs(brute[best] - res[0]["score"]) > 2e-5:
    errs.append("best brute force %s %.7f, first result %s" % (best, brute[best], res[0]["path"]))
print("; ".join(errs) if errs else "ok")
PY
}
$BIN embed-image -m "$M" "${GOOD[@]}" >"$T/img.jsonl" 2>"$T/e.err"
$BIN embed-text -m "$M" "a photo of a cat" >"$T/txt.jsonl" 2>>"$T/e.err"
$BIN search --db "$DB" --json --top 10 "a photo of a cat" >"$T/s_text.json" 2>"$T/s.err"
rc=$?; check '[ $rc -eq 0 ]' "text search failed: $(cat "$T/s.err")"
r=$(compare "$T/s_text.json" "$T/txt.jsonl" "$T/img.jsonl" "${GOOD[@]}")
check '[ "$r" = ok ]' "text search vs brute force: $r"
$BIN embed-image -m "$M" "$I/chelsea.png" >"$T/qimg.jsonl" 2>>"$T/e.err"
$BIN search --db "$DB" --json --image "$I/chelsea.png" >"$T/s_img.json" 2>"$T/s.err"
rc=$?; check '[ $rc -eq 0 ]' "image search failed: $(cat "$T/s.err")"
r=$(compare "$T/s_img.json" "$T/qimg.jsonl" "$T/img.jsonl" "${GOOD[@]}")
check '[ "$r" = ok ]' "image search vs brute force: $r"
check 'python3 -c "import json,sys; r=json.load(open(sys.argv[1]))[\"results\"][0]; sys.exit(not (r[\"path\"].endswith(\"chelsea.png\") and abs(r[\"score\"]-1)<1e-5 and r[\"width\"]==451 and r[\"height\"]==300))" "$T/s_img.json"' \
      "the image itself comes first with cosine 1 and its size: $(head -c 400 "$T/s_img.json")"
$BIN search --db "$DB" --top 2 "a photo of a cat" >"$T/s_top.out" 2>"$T/s.err"
check '[ "$(wc -l < "$T/s_top.out")" -eq 2 ]' "--top 2 gives 2 lines: $(cat "$T/s_top.out" "$T/s.err")"
$BIN search --db "$DB" --json --labels "cat,rocket,coffee cup" "a photo of a cat" >"$T/s_lab.json" 2>"$T/s.err"
check 'python3 -c "import json,sys; r=json.load(open(sys.argv[1]))[\"results\"]; sys.exit(not all(x[\"label\"] in (\"cat\",\"rocket\",\"coffee cup\") and 0<x[\"label_prob\"]<=1 for x in r))" "$T/s_lab.json"' \
      "--labels tags every result: $(head -c 300 "$T/s_lab.json") $(cat "$T/s.err")"

# ---- incremental ----
$BIN index -m "$M" --db "$DB" "$I" >"$T/i2.out" 2>"$T/i2.err"
check 'grep -q "6 unchanged, 0 removed, 3 skipped" "$T/i2.err" && grep -q " 0 added, 0 updated" "$T/i2.err"' \
      "second run changes nothing: $(stat_line "$T/i2.err")"
id_coffee=$(q id "$I/coffee.png")
cp "$FX/images/chelsea_q90.jpg" "$I/sub/new.jpg"                       # add
cat "$FX/images/camera.png" > "$I/coffee.png"; touch -d '+1 min' "$I/coffee.png"   # change
touch -d '+2 min' "$I/chelsea.png"                                     # touch only
rm "$I/astronaut.png"                                                  # delete
$BIN index -m "$M" --db "$DB" "$I" >"$T/i3.out" 2>"$T/i3.err"
rc=$?; check '[ $rc -eq 0 ]' "incremental index failed: $(cat "$T/i3.err")"
check 'grep -q "8 images found: 1 added, 1 updated, 4 unchanged, 1 removed, 3 skipped" "$T/i3.err"' \
      "add/change/touch/delete counts: $(stat_line "$T/i3.err")"
check '[ "$(q id "$I/coffee.png")" = "$id_coffee" ] && [ "$(q id "$I/astronaut.png")" = none ] && [ "$(q count)" = 6 ]' \
      "changed file keeps its id ($id_coffee -> $(q id "$I/coffee.png")), deleted one gone, 6 left ($(q count))"
$BIN search --db "$DB" --json --image "$I/camera.png" --top 2 >"$T/s_cam.json" 2>"$T/s.err"
check 'python3 -c "import json,sys; r=json.load(open(sys.argv[1]))[\"results\"]; sys.exit(not (sorted(x[\"path\"].rsplit(\"/\",1)[1] for x in r)==[\"camera.png\",\"coffee.png\"] and all(abs(x[\"score\"]-1)<1e-5 for x in r)))" "$T/s_cam.json"' \
      "the modified file is re-embedded (coffee.png now holds camera.png): $(cat "$T/s_cam.json" "$T/s.err")"

# ---- another model ----
$BIN index -m "$M2" --db "$DB" "$I" >"$T/i4.out" 2>"$T/i4.err"
rc=$?; check '[ $rc -ne 0 ] && grep -q "re-embed them with this model (--reembed)" "$T/i4.err"' \
      "an index of another model is refused: rc $rc $(cat "$T/i4.err")"
check '[ "$(q count)" = 6 ]' "a refused run changes nothing ($(q count) images)"
$BIN index -m "$M2" --db "$DB" "$I" --reembed >"$T/i5.out" 2>"$T/i5.err"
rc=$?; check '[ $rc -eq 0 ] && grep -q "0 added, 6 updated, 0 unchanged" "$T/i5.err" && grep -q "v1_mci_mct" "$T/i5.out"' \
      "--reembed re-embeds with the new model: rc $rc $(stat_line "$T/i5.err") $(cat "$T/i5.out")"
$BIN embed-image -m "$M2" "$I/chelsea.png" >"$T/qimg2.jsonl" 2>>"$T/e.err"
$BIN search --db "$DB" --json --image "$I/chelsea.png" >"$T/s_img2.json" 2>"$T/s.err"
check 'python3 -c "import json,sys; r=json.load(open(sys.argv[1]))[\"results\"][0]; sys.exit(not (r[\"path\"].endswith(\"chelsea.png\") and abs(r[\"score\"]-1)<1e-5))" "$T/s_img2.json"' \
      "search finds the new model from the index: $(head -c 300 "$T/s_img2.json") $(cat "$T/s.err")"
$BIN search --db "$DB" -m "$M" "a cat" >/dev/null 2>"$T/s.err"
rc=$?; check '[ $rc -ne 0 ] && grep -q "made with model" "$T/s.err"' "a query model other than the index's is refused: $(cat "$T/s.err")"

# ---- kill -9 while indexing, then resume ----
K=$T/many; KDB=$T/many.db
mkdir -p "$K"
for n in $(seq 1 60); do cp "$FX/images/hubble_deep_field.jpg" "$K/h$n.jpg"; done
$BIN index -m "$M" --db "$KDB" "$K" --batch 1 --threads 1 --decode-threads 1 >"$T/k.out" 2>"$T/k.err" &
pid=$!
kc() { DB=$KDB q count 2>/dev/null || echo 0; }
for n in $(seq 1 500); do
  c=$(kc); [ "${c:-0}" -ge 5 ] && break
  kill -0 $pid 2>/dev/null || break
  sleep 0.02
done
kill -9 $pid 2>/dev/null; wait $pid 2>/dev/null
got=$(kc)
check '[ "$got" -ge 5 ] && [ "$got" -lt 60 ]' "the kill came mid-run: $got of 60 committed"
check '[ "$(DB=$KDB q integrity)" = ok ]' "the killed index is intact"
$BIN index -m "$M" --db "$KDB" "$K" >"$T/k2.out" 2>"$T/k2.err"
rc=$?; check '[ $rc -eq 0 ] && grep -q "60 images found: $((60 - got)) added, 0 updated, $got unchanged" "$T/k2.err"' \
      "resume adds exactly the rest ($got committed): rc $rc $(stat_line "$T/k2.err") $(cat "$T/k2.err" | tail -2)"
check '[ "$(DB=$KDB q count)" = 60 ]' "all 60 after the resume"

# ---- errors and the benchmark ----
$BIN search --db "$T/none.db" "x" >/dev/null 2>"$T/s.err"
rc=$?; check '[ $rc -ne 0 ] && grep -q "no such index" "$T/s.err"' "missing index: $(cat "$T/s.err")"
echo "plain text" > "$T/bogus.db"
$BIN search --db "$T/bogus.db" "x" >/dev/null 2>"$T/s.err"
rc=$?; check '[ $rc -ne 0 ] && grep -q "not a mobileclip index" "$T/s.err"' "a file that is no index: $(cat "$T/s.err")"
$BIN index -m "$M" --db "$DB" "$T/no_such_folder" >/dev/null 2>"$T/s.err"
rc=$?; check '[ $rc -ne 0 ] && grep -q "no_such_folder" "$T/s.err" && [ "$(q count)" = 6 ]' "a missing folder fails and forgets nothing: $(cat "$T/s.err")"
$BIN search --bench --bench-rows 5000 --bench-dim 64 >"$T/b.out" 2>&1
rc=$?; check '[ $rc -eq 0 ] && grep -q "same top 10: yes" "$T/b.out"' "--bench: $(cat "$T/b.out")"

echo "test_index: $pass passed, $fail failed"
if [ $fail -eq 0 ]; then rm -rf "$T"; fi
[ $fail -eq 0 ]
