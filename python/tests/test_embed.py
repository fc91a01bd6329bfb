"""Embeddings, tokens, preprocessing and zero-shot probabilities from
mobileclip_c against the CLI (build/mobileclip) and the reference fixtures."""
import os
import struct
import json

import numpy as np
import pytest

from conftest import (ALL_MODELS, IMAGES, MODELS, cli_texts, image_paths, load, run_cli, tokenizer_cases)


@pytest.mark.parametrize("model", ALL_MODELS)
def test_image_embeddings_equal_cli(mc, cli_out, model):
    m = load(mc, model)
    got = m.encode_image(image_paths())
    ref = cli_out(model, "image")
    assert got.dtype == np.float32 and got.shape == ref.shape
    assert np.array_equal(got, ref), "max diff %g" % np.abs(got - ref).max()


@pytest.mark.parametrize("model", ALL_MODELS)
def test_text_embeddings_equal_cli(mc, cli_out, model):
    m = load(mc, model)
    got = m.encode_text(cli_texts())
    ref = cli_out(model, "text")
    assert got.dtype == np.float32 and got.shape == ref.shape
    assert np.array_equal(got, ref), "max diff %g" % np.abs(got - ref).max()


@pytest.mark.parametrize("model", ["v1_mci_mct", "oc_mobileclip2_s0"])
def test_unnormalized_and_batch_sizes_equal_cli(mc, cli_out, model):
    """The CLI's batch size gives the CLI's bits (the default is the CLI's
    default); a row's last bits may depend on the batch it is encoded in."""
    m = load(mc, model)
    assert np.array_equal(m.encode_image(image_paths(), normalize=False), cli_out(model, "image", False))
    assert np.array_equal(m.encode_text(cli_texts(), normalize=False), cli_out(model, "text", False))
    assert np.array_equal(m.encode_image(image_paths(), decode_threads=1), cli_out(model, "image"))
    assert np.array_equal(m.encode_image(image_paths(), decode_threads=5), cli_out(model, "image"))
    if model == "v1_mci_mct":
        assert np.array_equal(m.encode_image(image_paths(), batch_size=5, decode_threads=3),
                              cli_out(model, "image", batch=5))
        assert np.array_equal(m.encode_text(cli_texts(), batch_size=7), cli_out(model, "text", batch=7))
    # token ids in, int64 as open_clip gives them, one text as a 1-D array
    ids = m.tokenize(cli_texts())
    assert np.array_equal(m.encode_text(ids.astype(np.int64)), cli_out(model, "text"))
    assert np.array_equal(m.encode_text(ids[3]), m.encode_text(cli_texts()[3]))


@pytest.mark.filterwarnings("ignore:Palette images with Transparency")
def test_image_inputs_equal_paths(mc, cli_out):
    """Arrays, PIL images, bytes and preprocessed pixels in place of paths
    give the same embeddings (the same batches: the CLI's bits)."""
    from PIL import Image
    import pathlib
    model = "oc_mobileclip2_s0"
    m = load(mc, model)
    ref = cli_out(model, "image")
    paths = image_paths()
    names = [os.path.basename(p) for p in paths]

    def replaced(**by_name):
        return [by_name.get(n.replace(".", "_"), p) for n, p in zip(names, paths)]

    # PNGs (no EXIF): Pillow's pixels are the library's
    pngs = ["chelsea.png", "camera.png", "logo.png", "foo3x5x4indexed.png"]
    rgb = {}
    for name in pngs:
        with Image.open(os.path.join(IMAGES, name)) as im:
            rgb[name.replace(".", "_")] = np.asarray(im.convert("RGB"))
    assert all(a.dtype == np.uint8 and a.ndim == 3 for a in rgb.values())
    assert np.array_equal(m.encode_image(replaced(**rgb)), ref), "uint8 arrays"
    pil = {k: Image.open(os.path.join(IMAGES, k.replace("_png", ".png"))) for k in rgb}
    assert np.array_equal(m.encode_image(replaced(**pil)), ref), "PIL images"
    for im in pil.values():
        im.close()
    # non-contiguous views: reversed twice, Fortran order, strided slices of larger arrays
    views = {}
    for k, a in rgb.items():
        big = np.zeros((a.shape[0], a.shape[1] * 2, 3), np.uint8)
        big[:, ::2] = a
        views[k] = big[:, ::2]
        assert not views[k].flags.c_contiguous
    views["chelsea_png"] = rgb["chelsea_png"][::-1][::-1]
    views["camera_png"] = np.asfortranarray(rgb["camera_png"])
    assert np.array_equal(m.encode_image(replaced(**views)), ref), "non-contiguous arrays"
    # every file as bytes (EXIF orientation handled as for a path), bytearrays, pathlib paths
    raw = [open(p, "rb").read() for p in paths]
    assert np.array_equal(m.encode_image(raw), ref), "bytes"
    mixed = [bytearray(b) if i % 2 else pathlib.Path(p) for i, (b, p) in enumerate(zip(raw, paths))]
    assert np.array_equal(m.encode_image(mixed), ref), "bytearrays and pathlib paths"
    # preprocessed pixels: a batch, a list mixed with paths
    pix = m.preprocess(paths)
    assert pix.shape == (len(paths), 3, m.image_size, m.image_size) and pix.dtype == np.float32
    assert np.array_equal(m.preprocess(paths[0]), pix[0])
    assert np.array_equal(m.encode_image(pix), ref)
    assert np.array_equal(m.encode_image([pix[0]] + paths[1:6] + list(pix[6:])), ref)
    # one image alone: the same as its path alone
    a = rgb["chelsea_png"]
    one = m.encode_image(paths[0])
    assert one.shape == (1, m.embed_dim)
    assert np.array_equal(m.encode_image(a), one) and np.array_equal(m.encode_image(pix[0]), one)
    assert np.array_equal(m.encode_image(raw[0]), one)
    # a uint8 batch [N, H, W, 3]
    assert np.array_equal(m.encode_image(np.stack([a, a])), m.encode_image([paths[0], paths[0]]))
    assert m.encode_image([]).shape == (0, m.embed_dim)


def _safetensors(path):
    """name -> array of a safetensors file (F32 / I64 only; enough here)."""
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        base = 8 + n
        out = {}
        for name, t in header.items():
            if name == "__metadata__":
                continue
            dt = {"F32": np.float32, "I64": np.int64}.get(t["dtype"])
            if dt is None:
                continue
            a, b = t["data_offsets"]
            f.seek(base + a)
            out[name] = np.frombuffer(f.read(b - a), dtype=dt).reshape(t["shape"])
        return out


@pytest.mark.parametrize("model", ["v1_mci_mct", "oc_mobileclip2_s3", "oc_mobileclip2_l14"])
def test_preprocess_and_tokens_match_reference(mc, model):
    """model.preprocess and model.tokenize against the reference's own model input."""
    exp = _safetensors(os.path.join(MODELS, model, "expected.safetensors"))
    m = load(mc, model)
    pix = m.preprocess([os.path.join(IMAGES, n) for n in ["chelsea.png", "astronaut.png", "coffee.png"]])
    assert pix.shape == exp["pixels"].shape
    assert np.abs(pix - exp["pixels"]).max() <= 1e-6
    with open(os.path.join(MODELS, model, "expected.safetensors"), "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        meta = json.loads(f.read(n)).get("__metadata__", {})
    texts = json.loads(meta["texts"])
    assert np.array_equal(m.tokenize(texts), exp["tokens"])
    # the embeddings against the reference, to the fixtures' tolerance
    img = m.encode_image(pix)
    assert np.abs(img - exp["image_embeddings"]).max() < 2e-4
    assert np.abs(m.encode_text(texts) - exp["text_embeddings"]).max() < 2e-4


def test_tokenizer_cases(mc):
    cases = tokenizer_cases()
    assert len(cases) >= 50
    texts = [c["text"] for c in cases]
    want = np.array([c["ids"] for c in cases], dtype=np.int64)
    got = mc.tokenize(texts)
    assert got.dtype == np.int32 and got.shape == (len(cases), 77)
    bad = [i for i in range(len(cases)) if not np.array_equal(got[i], want[i])]
    assert not bad, "cases differ: %s" % [texts[i] for i in bad[:5]]
    m = load(mc, "oc_mobileclip2_s0", image=False)
    assert np.array_equal(m.tokenize(texts), want)
    assert np.array_equal(mc.tokenize(texts[0]), want[:1])
    tok = mc.Tokenizer()
    assert np.array_equal(tok(texts[:3]), want[:3])
    short = mc.tokenize(texts[5], context_length=5)
    assert short.shape == (1, 5) and short[0, 0] == 49406 and short[0, -1] in (49407, 0)


def test_classify_equals_cli(mc):
    model = os.path.join(MODELS, "v1_mci_mct")
    labels = ["cat", "astronaut", "cup of coffee", "camera man"]
    templates = ["a photo of a {}.", "a blurry picture of the {}.", "{} {}"]
    paths = [os.path.join(IMAGES, n) for n in ["chelsea.png", "astronaut.png", "coffee.png", "camera.png"]]
    args = ["classify", "-q", "-m", model, "--labels", ",".join(labels), "-k", str(len(labels))]
    for t in templates:
        args += ["--template", t]
    out = run_cli(args + paths)
    want = np.zeros((len(paths), len(labels)))
    blocks = [b for b in out.strip().split("\n\n")]
    assert len(blocks) == len(paths)
    for i, b in enumerate(blocks):
        lines = b.split("\n")
        assert lines[0] == paths[i]
        for line in lines[1:]:
            lab, p = line.split("\t")
            want[i, labels.index(lab)] = float(p)
    m = mc.load(model, threads=1)
    probs = m.classify(paths, labels, templates=templates)
    assert probs.dtype == np.float32 and probs.shape == want.shape
    assert np.abs(probs - want).max() <= 6e-7, np.abs(probs - want).max()
    assert np.allclose(probs.sum(axis=1), 1, atol=1e-6)
    cls = m.text_classifier(labels, templates)
    assert cls.shape == (len(labels), m.embed_dim)
    assert np.allclose(np.linalg.norm(cls, axis=1), 1, atol=1e-6)
    # one template given as a str is the default-style single template
    p1 = m.classify(paths[:1], labels, templates="a photo of a {}.")
    assert np.array_equal(p1, m.classify(paths[:1], labels))


def test_search():
    import mobileclip_c as mc
    rng = np.random.default_rng(1)
    mat = rng.standard_normal((50, 8)).astype(np.float32)
    q = rng.standard_normal((3, 8)).astype(np.float32)
    idx, sc = mc.search(q, mat, k=5)
    assert idx.shape == (3, 5) and idx.dtype == np.int64 and sc.dtype == np.float32
    full = q @ mat.T
    for r in range(3):
        assert list(idx[r]) == list(np.argsort(-full[r])[:5])
        assert np.array_equal(sc[r], full[r, idx[r]])
    i1, s1 = mc.search(q[1], mat, k=5)
    assert np.array_equal(i1, idx[1]) and np.array_equal(s1, sc[1])
    i2, _ = mc.search(q, mat, k=500)
    assert i2.shape == (3, 50)
    # ties keep the lower index first
    tie = np.ones((4, 2), np.float32)
    assert list(mc.search(np.ones(2, np.float32), tie, k=3)[0]) == [0, 1, 2]
    with pytest.raises(ValueError):
        mc.search(q[:, :4], mat)
    with pytest.raises(ValueError):
        mc.search(q, mat, k=0)
    with pytest.raises(ValueError):
        mc.search(q, mat[0])


def test_official_name_from_cache(mc, tmp_path, monkeypatch):
    """An official name resolves through the cache folder ($MOBILECLIP_CACHE)."""
    d = tmp_path / "MobileCLIP2-S0"
    d.mkdir()
    src = os.path.join(MODELS, "oc_mobileclip2_s0")
    for f in ["open_clip_model.safetensors", "open_clip_config.json"]:
        os.symlink(os.path.join(src, f), d / f)
    os.symlink(os.environ["MOBILECLIP_VOCAB"], d / "bpe_simple_vocab_16e6.txt.gz")
    monkeypatch.setenv("MOBILECLIP_CACHE", str(tmp_path))
    assert "MobileCLIP2-S0" in mc.list_models() and "mobileclip_s0" in mc.list_models()
    m = mc.load("mobileclip2-s0", download=False)
    assert m.name == "MobileCLIP2-S0" and m.path == str(d)
    ref = mc.load(src)
    assert ref.name is None
    assert np.array_equal(m.encode_image(image_paths()[:2]), ref.encode_image(image_paths()[:2]))
    with pytest.raises(mc.Error) as e:
        mc.load("MobileCLIP2-B", download=False)
    assert e.value.status == mc.Status.NOT_FOUND and "MobileCLIP2-B" in e.value.message
