"""Shared set-up of the mobileclip_c tests: the paths (project root, build,
fixtures), the environment the package reads (the library under test is
build/libmobileclip.so.0 unless $MOBILECLIP_LIB says otherwise; the
fixtures' vocabulary), the package from this source tree, and the CLI's
outputs that the package must reproduce."""
import json
import os
import subprocess
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
BUILD = os.path.join(ROOT, "build")
CLI = os.path.join(BUILD, "mobileclip")
FIXTURES = os.path.abspath(os.environ.get("MC_FIXTURES") or os.path.join(ROOT, "..", "shared", "fixtures"))
MODELS = os.path.join(FIXTURES, "models")
IMAGES = os.path.join(FIXTURES, "images")
VOCAB = os.path.join(FIXTURES, "tokenizer", "bpe_simple_vocab_16e6.txt.gz")
LIB = os.environ.get("MOBILECLIP_LIB") or os.path.join(BUILD, "libmobileclip.so.0")

os.environ["MOBILECLIP_LIB"] = LIB
os.environ.setdefault("MOBILECLIP_VOCAB", VOCAB)
os.environ["MOBILECLIP_OFFLINE"] = "1"
sys.path.insert(0, os.path.join(ROOT, "python"))

# Every inference model of the fixtures (train_s0_tiny is a training case).
ALL_MODELS = ["v1_mci_mct", "v1_mci_base", "v1_vit_causal", "oc_mobileclip_s1", "oc_mobileclip_b",
              "oc_mobileclip2_s0", "oc_mobileclip2_s3", "oc_mobileclip2_s4", "oc_mobileclip2_b",
              "oc_mobileclip2_l14"]
# Decodable images of every kind: RGB, grayscale, RGBA, palette, CMYK JPEG,
# progressive JPEG, EXIF-rotated JPEG, tall, one pixel.
IMAGE_NAMES = ["chelsea.png", "astronaut.png", "coffee.png", "camera.png", "logo.png", "foo3x5x4indexed.png",
               "chelsea_cmyk.jpg", "chelsea_progressive.jpg", "chelsea_exif_rot6.jpg", "hubble_deep_field.jpg",
               "tall_40x900.png", "one_pixel.png"]
# Texts for the CLI comparison: the tokenizer cases that fit in argv, and a few more.
EXTRA_TEXTS = ["", "a photo of a cat", "Ünïcödé — “quotes” &amp; 日本語のテキスト",
               " ".join(["word%d" % i for i in range(120)])]


def image_paths():
    return [os.path.join(IMAGES, n) for n in IMAGE_NAMES]


def tokenizer_cases():
    with open(os.path.join(FIXTURES, "tokenizer", "cases.jsonl"), encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def cli_texts():
    return [c["text"] for c in tokenizer_cases() if "\0" not in c["text"]] + EXTRA_TEXTS


def load(mc, model, **kw):
    """A fixture model by case name, one compute thread unless told (the
    results do not depend on it; the tests run beside others on few cores)."""
    kw.setdefault("threads", 1)
    return mc.load(os.path.join(MODELS, model), **kw)


def run_cli(args):
    """Runs build/mobileclip; fails the test with its stderr when it fails."""
    env = dict(os.environ, MOBILECLIP_NO_PROGRESS="1")
    p = subprocess.run([CLI] + args, capture_output=True, text=True, env=env)
    assert p.returncode == 0, "mobileclip %s failed (%d): %s" % (" ".join(args[:2]), p.returncode, p.stderr)
    return p.stdout


@pytest.fixture(scope="session")
def mc():
    import mobileclip_c
    assert mobileclip_c.library_path() == os.path.realpath(LIB), \
        "loaded %s, expected %s" % (mobileclip_c.library_path(), LIB)
    return mobileclip_c


@pytest.fixture(scope="session")
def cli_out(tmp_path_factory):
    """cli_out(model, kind, normalize=True, batch=None): the CLI's
    embed-image (every IMAGE_NAMES image) or embed-text (cli_texts()) .npy,
    made once; batch: its -b (default: the CLI's, 8 images or 32 texts)."""
    import numpy as np
    tmp = tmp_path_factory.mktemp("cli")
    cache = {}

    def get(model, kind, normalize=True, batch=None):
        key = (model, kind, normalize, batch)
        if key not in cache:
            out = str(tmp / ("%s_%s_%d_%s.npy" % (model, kind, normalize, batch)))
            if kind == "image":
                args = ["embed-image", "-q", "--strict", "-m", os.path.join(MODELS, model), "-o", out]
                args += image_paths()
            else:
                args = ["embed-text", "-m", os.path.join(MODELS, model), "-o", out, "--"] + cli_texts()
            if not normalize:
                args.insert(1, "--no-normalize")
            if batch:
                args[1:1] = ["-b", str(batch)]
            run_cli(args)
            cache[key] = np.load(out)
        return cache[key]
    return get
