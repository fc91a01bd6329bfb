#!/usr/bin/python3
"""'mobileclip eval' against an oracle written here in numpy, independent of
src/eval: the expected figures are computed from the embeddings the CLI's
'embed-image' and 'embed-text' write, with the definitions of docs/eval.md
(open_clip's zero-shot classifier and get_clip_metrics):

  zero-shot   classifier = per class, the mean over templates of the
              L2-normalised prompt embeddings, L2-normalised, held in float32;
              the rank of an image's class among the classes by dot product
              (ties: lower class index first); top-1 = rank 1, top-5 =
              rank <= min(5, classes).
  retrieval   rank of each image's own caption among all captions, and of
              each caption's own image among all images; mean rank, floor of
              median(rank - 1) + 1, R@k = fraction with rank <= k.

Builds, in a temporary folder, an ImageFolder tree of fixture and generated
images (7 classes, nested folders, an undecodable file, a non-image file)
and two webdataset shards of images and captions (one sample without a
caption, one undecodable image), runs 'eval' with batch 1 (the embeddings
are then those of the per-image CLI calls, bit for bit) and with other batch
and thread counts, and compares every figure exactly: they are counts over a
handful of items.  The data is checked to separate top-1 from top-5 and
R@1 < R@5 < R@10 < 1, so that a wrong computation shows.  Then the error
cases: class-name count mismatch, empty class folder, missing folder,
templates without a placeholder, --strict, nothing to evaluate.

Run from the project root after the build (make test).  Without numpy or
Pillow it fails: a missing oracle is a failure."""
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile

from harness import CLI, FIXTURES, check, missing, summary

try:
    import numpy as np
    from PIL import Image
except ImportError as e:  # the oracle is part of the test: its absence fails
    missing("test_eval_py", e, "python3-numpy, python3-pil")

FX = FIXTURES
MODEL = os.path.join(FX, "models", "oc_mobileclip_b")
IMAGES = os.path.join(FX, "images")
ENV = dict(os.environ, MOBILECLIP_VOCAB=os.path.join(FX, "tokenizer", "bpe_simple_vocab_16e6.txt.gz"),
           MOBILECLIP_OFFLINE="1", MOBILECLIP_NO_PROGRESS="1")


def run(*args):
    p = subprocess.run([CLI] + [str(a) for a in args], env=ENV, capture_output=True, text=True)
    return p.returncode, p.stdout, p.stderr


def embed_images(paths, tmp):
    """{path: float64 embedding} from 'embed-image --batch 1' (undecodable images absent)."""
    out = os.path.join(tmp, "oracle_img.npy")
    rc, _, err = run("embed-image", "-q", "-m", MODEL, "--batch", 1, "-o", out, *paths)
    check(rc == 0, "embed-image failed: " + err)
    rows = open(out + ".txt").read().splitlines()
    emb = np.load(out).astype(np.float64)
    return {p: emb[i] for i, p in enumerate(rows)}


def embed_texts(texts, tmp):
    f = os.path.join(tmp, "oracle_texts.txt")
    with open(f, "w") as fh:
        fh.write("".join(t + "\n" for t in texts))
    out = os.path.join(tmp, "oracle_txt.npy")
    rc, _, err = run("embed-text", "-m", MODEL, "--batch", 1, "-f", f, "-o", out)
    check(rc == 0, "embed-text failed: " + err)
    emb = np.load(out).astype(np.float64)
    check(emb.shape[0] == len(texts), "embed-text rows %d for %d texts" % (emb.shape[0], len(texts)))
    return emb


def ranks_of(scores, target):
    """1 + entries scoring higher + entries of lower index scoring the same."""
    out = []
    for i, t in enumerate(target):
        s = scores[i]
        out.append(1 + int(np.sum(s > s[t])) + int(np.sum(s[:t] == s[t])))
    return np.array(out)


def min_gap(scores, target):
    """the smallest distance between a match's score and another's (how close
    a rank decision is); the data must keep it far above float32 rounding"""
    gaps = []
    for i, t in enumerate(target):
        d = np.abs(np.delete(scores[i], t) - scores[i][t])
        if d.size:
            gaps.append(d.min())
    return min(gaps) if gaps else 1.0


def clip_metrics(ranks):
    preds = ranks - 1   # open_clip's 0-based positions
    m = {"mean_rank": preds.mean() + 1, "median_rank": np.floor(np.median(preds)) + 1}
    for k in (1, 5, 10):
        m["R@%d" % k] = np.mean(preds < k)
    return {k: float(v) for k, v in m.items()}


def eval_json(*args):
    rc, out, err = run("eval", "-q", "-m", MODEL, "--json", *args)
    check(rc == 0, "eval %s failed: %s" % (" ".join(map(str, args)), err))
    lines = out.splitlines()
    check(len(lines) == 1, "--json printed %d lines" % len(lines))
    try:
        return json.loads(lines[0]), err
    except (ValueError, IndexError):
        check(False, "--json output is not JSON: %r" % out)
        return {}, err


def generated_image(path, seed, size):
    """smooth random colour fields: images unlike each other and the fixtures"""
    rng = np.random.default_rng(seed)
    w, h = size
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    img = np.empty((h, w, 3))
    for c in range(3):
        fx, fy, ph = rng.uniform(0.005, 0.08), rng.uniform(0.005, 0.08), rng.uniform(0, 6.28)
        img[..., c] = 128 + 110 * np.sin(fx * x + ph) * np.cos(fy * y + c)
    Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).save(path)


def test_zeroshot(tmp):
    root = os.path.join(tmp, "val")
    # class folder -> images (fixture names, or gen:SEED for a generated PNG)
    layout = {
        "tabby_cat": ["chelsea.png", "sub/deeper/chelsea_exif_rot6.jpg", "gen:1"],
        "astronaut": ["astronaut.png", "gen:2"],
        "coffee_mug": ["coffee.png", "not_an_image.jpg"],
        "camera": ["camera.png", "gen:3"],
        "galaxy": ["hubble_deep_field.jpg"],
        "logo": ["logo.png", "gen:4", "gen:5"],
        "zebra": ["tall_40x900.png", "foo3x5x4indexed.png", "gen:6"],
    }
    classes = sorted(layout)
    paths, labels = [], []
    for c, name in enumerate(classes):
        for i, item in enumerate(layout[name]):
            if item.startswith("gen:"):
                rel = "gen%s.png" % item[4:]
            else:
                rel = item
            p = os.path.join(root, name, rel)
            os.makedirs(os.path.dirname(p), exist_ok=True)
            if item.startswith("gen:"):
                generated_image(p, int(item[4:]), (96 + 13 * i, 80 + 7 * c))
            else:
                shutil.copy(os.path.join(IMAGES, os.path.basename(item)), p)
            paths.append(p)
            labels.append(c)
    with open(os.path.join(root, "camera", "notes.txt"), "w") as f:
        f.write("not an image\n")
    order = sorted(range(len(paths)), key=lambda i: (labels[i], paths[i]))
    paths = [paths[i] for i in order]
    labels = [labels[i] for i in order]
    templates = ["a photo of a {}.", "{c} seen from far away", "art showing the {}"]
    tfile = os.path.join(tmp, "templates.txt")
    with open(tfile, "w") as f:
        f.write("\n".join(templates) + "\n\n")
    names_file = os.path.join(tmp, "names.txt")
    file_names = ["astronaut in a suit", "camera on a tripod", "mug of coffee", "spiral galaxy",
                  "logo", "tabby cat", "zebra"]
    with open(names_file, "w") as f:
        f.write("\n".join(file_names) + "\n")

    emb = embed_images(paths, tmp)
    good = [(emb[p], labels[i]) for i, p in enumerate(paths) if p in emb]
    check(len(good) == len(paths) - 1, "oracle: %d of %d images embedded" % (len(good), len(paths)))
    img = np.stack([g[0] for g in good])
    target = [g[1] for g in good]

    def expected(names):
        prompts = [t.replace("{c}", n).replace("{}", n) for n in names for t in templates]
        te = embed_texts(prompts, tmp).reshape(len(names), len(templates), -1)
        cls = te.mean(axis=1)
        cls = (cls / np.linalg.norm(cls, axis=1, keepdims=True)).astype(np.float32).astype(np.float64)
        s = img @ cls.T
        r = ranks_of(s, target)
        k = min(5, len(names))
        return {"top1": float(np.mean(r <= 1)), "top5": float(np.mean(r <= k)), "gap": min_gap(s, target)}

    for label, names, extra in (("folder names", [c.replace("_", " ") for c in classes], []),
                                ("--classnames", file_names, ["--classnames", names_file])):
        want = expected(names)
        check(want["gap"] > 1e-5, "%s: the data has a near tie (%.3g): exact comparison would be fragile"
              % (label, want["gap"]))
        check(0 < want["top1"] < want["top5"] < 1, "%s: the data does not separate top-1 %.3f, top-5 %.3f, 1"
              % (label, want["top1"], want["top5"]))
        for opts in (["--batch", 1], ["--batch", 3, "--threads", 2, "--decode-threads", 3],
                     ["--batch", 64, "--decode-threads", 0]):
            got, err = eval_json("--imagenet-val", root, "--templates", tfile, *(extra + opts))
            what = "%s %s" % (label, opts)
            check(got.get("imagenet-zeroshot-val-top1") == want["top1"],
                  "%s: top-1 %r, oracle %r" % (what, got.get("imagenet-zeroshot-val-top1"), want["top1"]))
            check(got.get("imagenet-zeroshot-val-top5") == want["top5"],
                  "%s: top-5 %r, oracle %r" % (what, got.get("imagenet-zeroshot-val-top5"), want["top5"]))
            check(got.get("imagenet-zeroshot-val-num_samples") == len(good)
                  and got.get("imagenet-zeroshot-val-num_classes") == 7
                  and got.get("imagenet-zeroshot-val-num_templates") == 3
                  and got.get("imagenet-zeroshot-val-num_skipped") == 1, "%s: counts %r" % (what, got))
            check(got.get("model") == MODEL and "image_to_text_R@1" not in got, "%s: keys %r" % (what, list(got)))
    # the built-in templates; the skipped image is named on stderr (without -q)
    rc, out, err = run("eval", "-m", MODEL, "--imagenet-val", root)
    check(rc == 0 and "top-1" in out and "top-5" in out and "7 classes" in out and "(1 skipped)" in out,
          "summary: rc %d\n%s%s" % (rc, out, err))
    check("skipping" in err and "not_an_image.jpg" in err, "skip message: " + err)
    got, _ = eval_json("--imagenet-val", root)
    check(got.get("imagenet-zeroshot-val-num_templates", 0) >= 3, "default templates: %r" % got)
    # --strict: the undecodable image is the error
    rc, out, err = run("eval", "-q", "-m", MODEL, "--imagenet-val", root, "--strict")
    check(rc == 1 and "not_an_image.jpg" in err and out == "", "--strict: rc %d %s" % (rc, err))
    return root


def test_retrieval(tmp):
    """two shards; a sample without caption and one undecodable image"""
    samples = [("chelsea.png", "a cat lying on a rug"), ("astronaut.png", "an astronaut with a flag"),
               ("coffee.png", "a cup of coffee on a saucer"), ("camera.png", None),
               ("logo.png", "a colourful logo"), ("hubble_deep_field.jpg", "many galaxies in deep space"),
               ("gen:11", "waves of colour"), ("truncated.jpg", "a broken picture"),
               ("tall_40x900.png", "a very tall narrow strip"), ("gen:12", "a smooth gradient"),
               ("foo3x5x4indexed.png", "a tiny palette image"), ("chelsea_exif_rot6.jpg", "a cat on its side"),
               ("gen:13", "stripes and blobs"), ("camera.png", "a man holding a camera"),
               ("gen:14", "pastel bands"), ("one_pixel.png", "a single pixel"), ("gen:15", "rainbow noise"),
               ("chelsea_gray.jpg", "a grey photo of a cat")]
    files = []
    for i, (src, cap) in enumerate(samples):
        if src.startswith("gen:"):
            p = os.path.join(tmp, "ret_%02d.png" % i)
            generated_image(p, int(src[4:]), (70 + 9 * i, 120 - 3 * i))
        else:
            p = os.path.join(tmp, "ret_%02d%s" % (i, os.path.splitext(src)[1]))
            shutil.copy(os.path.join(IMAGES, src), p)
        files.append(p)
    for shard, part in ((0, range(0, 9)), (1, range(9, len(samples)))):
        with tarfile.open(os.path.join(tmp, "ret-%d.tar" % shard), "w") as t:
            for i in part:
                key = "s%d/%04d" % (shard, i)

                def add(name, data):
                    ti = tarfile.TarInfo(name)
                    ti.size = len(data)
                    t.addfile(ti, io.BytesIO(data))
                add(key + os.path.splitext(files[i])[1], open(files[i], "rb").read())
                if samples[i][1] is not None:
                    add(key + ".txt", samples[i][1].encode())
    emb = embed_images([files[i] for i in range(len(samples)) if samples[i][1] is not None], tmp)
    use = [i for i in range(len(samples)) if samples[i][1] is not None and files[i] in emb]
    check(len(use) == len(samples) - 2, "oracle: %d usable samples" % len(use))
    img = np.stack([emb[files[i]] for i in use])
    txt = embed_texts([samples[i][1] for i in use], tmp)
    n = len(use)
    want = {}
    for name, s in (("image_to_text", img @ txt.T), ("text_to_image", txt @ img.T)):
        r = ranks_of(s, list(range(n)))
        check(min_gap(s, list(range(n))) > 1e-5, "%s: the data has a near tie" % name)
        for k, v in clip_metrics(r).items():
            want["%s_%s" % (name, k)] = v
    check(want["image_to_text_R@1"] < want["image_to_text_R@5"] < want["image_to_text_R@10"] < 1,
          "the data does not separate R@1 < R@5 < R@10 < 1: %r" % want)
    check(want["image_to_text_mean_rank"] != want["text_to_image_mean_rank"],
          "the two directions agree: a swapped direction would not show")
    spec = os.path.join(tmp, "ret-{0..1}.tar")
    for opts in (["--batch", 1], ["--batch", 4, "--threads", 2, "--decode-threads", 2], ["--batch", 100]):
        got, _ = eval_json("--retrieval", spec, *opts)
        for k, v in want.items():
            check(got.get(k) == v, "%s %s: %r, oracle %r" % (opts, k, got.get(k), v))
        check(got.get("num_samples") == n and got.get("num_skipped") == 2, "%s: counts %r" % (opts, got))
        check(not any(k.startswith("imagenet") for k in got), "%s: zero-shot keys without --imagenet-val" % opts)
    rc, out, err = run("eval", "-m", MODEL, "--retrieval", spec)
    check(rc == 0 and "image->text" in out and "text->image" in out and "(2 skipped)" in out,
          "retrieval summary: rc %d\n%s%s" % (rc, out, err))
    check(err.count("skipping") == 2 and "s0/0003" in err and "no caption" in err and "s0/0007" in err,
          "retrieval skip messages: " + err)
    rc, _, err = run("eval", "-q", "-m", MODEL, "--retrieval", spec, "--strict")
    check(rc == 1 and "s0/0003" in err, "retrieval --strict: rc %d %s" % (rc, err))
    return spec


def test_output(tmp, root, spec):
    res = os.path.join(tmp, "results.jsonl")
    for _ in range(2):
        rc, out, err = run("eval", "-q", "-m", MODEL, "--imagenet-val", root, "--retrieval", spec, "-o", res)
        check(rc == 0 and "top-1" in out, "eval -o: rc %d %s" % (rc, err))
    lines = open(res).read().splitlines()
    check(len(lines) == 2, "-o appended %d lines (want 2)" % len(lines))
    rows = [json.loads(l) for l in lines]
    check(rows[0] == rows[1], "two runs differ")
    keys = list(rows[0])
    check(keys[:2] == ["model", "imagenet-zeroshot-val-top1"] and "text_to_image_R@10" in keys
          and keys[-2:] == ["num_samples", "num_skipped"], "key order: %r" % keys)


def test_errors(tmp, root):
    names = os.path.join(tmp, "six_names.txt")
    with open(names, "w") as f:
        f.write("a\nb\nc\nd\ne\nf\n")
    rc, out, err = run("eval", "-q", "-m", MODEL, "--imagenet-val", root, "--classnames", names)
    check(rc == 1 and "6 class names" in err and "7 class folders" in err, "class-name mismatch: %d %s" % (rc, err))
    empty = os.path.join(tmp, "val_empty")
    os.makedirs(os.path.join(empty, "full"))
    os.makedirs(os.path.join(empty, "hollow"))
    shutil.copy(os.path.join(IMAGES, "coffee.png"), os.path.join(empty, "full"))
    rc, out, err = run("eval", "-q", "-m", MODEL, "--imagenet-val", empty)
    check(rc == 1 and "'hollow'" in err and "no images" in err, "empty class folder: %d %s" % (rc, err))
    rc, out, err = run("eval", "-q", "-m", MODEL, "--imagenet-val", os.path.join(tmp, "nowhere"))
    check(rc == 1 and "nowhere" in err and "no such folder" in err, "missing folder: %d %s" % (rc, err))
    bad = os.path.join(tmp, "bad_templates.txt")
    with open(bad, "w") as f:
        f.write("a photo of a {}.\na photo\n")
    rc, out, err = run("eval", "-q", "-m", MODEL, "--imagenet-val", root, "--templates", bad)
    check(rc == 1 and "template 2" in err and "{}" in err, "template without placeholder: %d %s" % (rc, err))
    rc, out, err = run("eval", "-m", MODEL)
    check(rc == 2 and "nothing to evaluate" in err, "nothing to evaluate: %d %s" % (rc, err))
    rc, out, err = run("eval", "-m", MODEL, "--retrieval", "x.tar", "--classnames", names)
    check(rc == 2 and "--imagenet-val" in err, "--classnames without --imagenet-val: %d %s" % (rc, err))
    rc, out, err = run("eval", "-m", MODEL, "--imagenet-val", root, "--batch", "0")
    check(rc == 2 and "--batch" in err, "--batch 0: %d %s" % (rc, err))
    rc, out, err = run("eval", "-q", "-m", MODEL, "--retrieval", os.path.join(tmp, "none-{0..1}.tar"))
    check(rc == 1 and "none-0.tar" in err, "missing shard: %d %s" % (rc, err))
    rc, out, err = run("eval", "--imagenet-val", root)
    check(rc != 0 and "no model" in err, "no model: %d %s" % (rc, err))


def main():
    if not os.access(CLI, os.X_OK):
        check(False, "%s is not built (make)" % CLI)
        return
    tmp = tempfile.mkdtemp(prefix="mc_test_eval_")
    try:
        root = test_zeroshot(tmp)
        spec = test_retrieval(tmp)
        test_output(tmp, root, spec)
        test_errors(tmp, root)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


main()
sys.exit(summary("test_eval_py"))
