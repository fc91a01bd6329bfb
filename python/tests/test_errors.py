"""Bad paths, bad files, bad arrays and bad arguments raise clear exceptions:
mobileclip_c.Error with the library's status and message for what the library
rejects, TypeError / ValueError for what Python rejects before calling it."""
import os
import subprocess
import sys

import numpy as np
import pytest

from conftest import IMAGES, MODELS, ROOT, load


@pytest.fixture(scope="module")
def model(mc):
    return load(mc, "v1_mci_mct")


def test_missing_image_file(mc, model):
    with pytest.raises(mc.Error) as e:
        model.encode_image([os.path.join(IMAGES, "chelsea.png"), "/no/such/photo.jpg"])
    assert e.value.status == mc.Status.IO and isinstance(e.value.status, mc.Status)
    assert "/no/such/photo.jpg" in str(e.value) and e.value.message == str(e.value)
    assert e.value.status_name == "I/O error"
    import pickle
    e2 = pickle.loads(pickle.dumps(e.value))
    assert type(e2) is mc.Error and e2.status == e.value.status and e2.message == e.value.message


@pytest.mark.parametrize("name", ["not_an_image.jpg", "truncated.jpg"])
def test_undecodable_image_file(mc, model, name):
    path = os.path.join(IMAGES, name)
    with pytest.raises(mc.Error) as e:
        model.encode_image(path)
    assert e.value.status in (mc.Status.IMAGE, mc.Status.FORMAT), e.value.status
    assert name in e.value.message


@pytest.mark.parametrize("decode_threads", [1, 3])
def test_first_bad_image_is_reported(mc, model, decode_threads):
    good = os.path.join(IMAGES, "one_pixel.png")
    paths = [good] * 20
    paths[13] = os.path.join(IMAGES, "not_an_image.jpg")
    paths[17] = "/no/such/photo.jpg"
    with pytest.raises(mc.Error) as e:
        model.encode_image(paths, batch_size=4, decode_threads=decode_threads)
    assert "not_an_image.jpg" in e.value.message
    with pytest.raises(ValueError, match="decode_threads"):
        model.encode_image(paths, decode_threads=0)


def test_undecodable_bytes(mc, model):
    with pytest.raises(mc.Error) as e:
        model.encode_image([os.path.join(IMAGES, "chelsea.png"), b"not an image at all"])
    assert e.value.status == mc.Status.IMAGE and e.value.message.startswith("image 1: ")
    with pytest.raises(ValueError, match="empty bytes"):
        model.encode_image(b"")


def test_bad_arrays(mc, model):
    rgb = np.zeros((20, 30, 3), np.uint8)
    S = model.image_size
    with pytest.raises(TypeError, match="float64"):
        model.encode_image(rgb.astype(np.float64))
    with pytest.raises(TypeError, match="uint8"):
        model.encode_image(rgb.astype(np.int16))
    with pytest.raises(TypeError, match="float32"):
        model.encode_image(np.zeros((3, S, S), np.float64))
    with pytest.raises(ValueError, match=r"\[H, W, 3\]"):
        model.encode_image(np.zeros((20, 30, 4), np.uint8))
    with pytest.raises(ValueError, match=r"\[H, W, 3\]"):
        model.encode_image(np.zeros((20, 30), np.uint8))
    with pytest.raises(ValueError, match=r"\[H, W, 3\]"):
        model.encode_image(np.zeros((3, 20, 30), np.uint8))
    with pytest.raises(ValueError, match=r"\[H, W, 3\]"):
        model.encode_image(np.zeros((0, 30, 3), np.uint8))
    with pytest.raises(ValueError, match=r"float32 \[3, %d, %d\]" % (S, S)):
        model.encode_image(np.zeros((3, S - 1, S), np.float32))
    with pytest.raises(ValueError, match="image 1"):
        model.encode_image([rgb, np.zeros((5, 5), np.uint8)])
    with pytest.raises(TypeError, match="image 0"):
        model.encode_image([42])
    with pytest.raises(TypeError):
        model.encode_image(42)
    with pytest.raises(ValueError, match="batch_size"):
        model.encode_image(rgb, batch_size=0)


def test_bad_texts(mc, model):
    with pytest.raises(TypeError, match="text 1"):
        model.encode_text(["ok", 3])
    with pytest.raises(ValueError, match=r"\[N, 77\]"):
        model.encode_text(np.zeros((2, 76), np.int32))
    with pytest.raises(ValueError, match="out of range"):
        model.encode_text(np.full((1, 77), -1, np.int64))
    with pytest.raises(TypeError):
        model.encode_text(np.zeros((1, 77), np.float32))
    # invalid UTF-8 is the library's error, with the text's index
    with pytest.raises(mc.Error) as e:
        mc.tokenize(["fine", b"\xff\xfe bad"])
    assert e.value.status == mc.Status.INVALID_ARG and e.value.message.startswith("text 1: ")
    with pytest.raises(ValueError):
        mc.tokenize("x", context_length=1)
    with pytest.raises(mc.Error) as e:
        mc.Tokenizer("/no/such/vocab.txt.gz")
    assert "/no/such/vocab.txt.gz" in e.value.message


def test_classify_arguments(mc, model):
    img = os.path.join(IMAGES, "chelsea.png")
    with pytest.raises(ValueError, match="has no {}"):
        model.classify(img, ["cat"], templates=["a photo"])
    with pytest.raises(TypeError):
        model.classify(img, "cat")
    with pytest.raises(ValueError):
        model.classify(img, [])


def test_bad_models(mc, tmp_path):
    with pytest.raises(mc.Error) as e:
        mc.load("/no/such/model.pt")
    assert e.value.status == mc.Status.NOT_FOUND and "/no/such/model.pt" in e.value.message
    with pytest.raises(mc.Error) as e:
        mc.load(os.path.join(IMAGES, "chelsea.png"))
    assert e.value.status != mc.Status.OK and "chelsea.png" in e.value.message
    bad = tmp_path / "model.pt"
    bad.write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(mc.Error) as e:
        mc.load(str(bad))
    assert str(bad) in e.value.message
    with pytest.raises(ValueError, match="weights"):
        mc.load(os.path.join(MODELS, "v1_mci_mct"), weights="f64")
    with pytest.raises(ValueError, match="tower"):
        mc.load(os.path.join(MODELS, "v1_mci_mct"), image=False, text=False)


def test_towers_and_close(mc):
    m = load(mc, "v1_mci_mct", image=False)
    with pytest.raises(ValueError, match="image tower"):
        m.encode_image(np.zeros((4, 4, 3), np.uint8))
    assert m.encode_text("a cat").shape == (1, m.embed_dim)
    with load(mc, "v1_mci_mct", text=False) as m2:
        with pytest.raises(ValueError, match="text tower"):
            m2.encode_text("a cat")
        assert m2.encode_image(np.zeros((4, 4, 3), np.uint8)).shape == (1, m2.embed_dim)
    with pytest.raises(ValueError, match="closed"):
        m2.encode_image(np.zeros((4, 4, 3), np.uint8))


def test_weights(mc):
    """Reduced-precision weights load and stay close to f32 (the header's figures)."""
    paths = [os.path.join(IMAGES, n) for n in ["chelsea.png", "coffee.png"]]
    ref = load(mc, "oc_mobileclip2_s0").encode_image(paths)
    for w, cos in [("bf16", 0.995), ("f16", 0.9999), ("int8", 0.95)]:
        e = load(mc, "oc_mobileclip2_s0", weights=w).encode_image(paths)
        assert (e * ref).sum(axis=1).min() > cos, w


def _run(code, **env):
    e = dict(os.environ, **env)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=e,
                          cwd=os.path.join(ROOT, "python"))


def test_library_not_found():
    p = _run("import mobileclip_c\nhelp_ok = mobileclip_c.__doc__\nmobileclip_c.library_path()",
             MOBILECLIP_LIB="/no/such/libmobileclip.so.0")
    assert p.returncode != 0
    assert "OSError" in p.stderr and "/no/such/libmobileclip.so.0" in p.stderr and "MOBILECLIP_LIB" in p.stderr


def test_library_folder_in_env():
    lib = os.environ["MOBILECLIP_LIB"]
    p = _run("import mobileclip_c; print(mobileclip_c.library_path())", MOBILECLIP_LIB=os.path.dirname(lib))
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip() == os.path.realpath(lib)
