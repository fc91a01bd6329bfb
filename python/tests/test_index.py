"""mobileclip_c.Index: a photo index built from Python (update), searched by
text, image and vector, against 'mobileclip search' on the same file and a
brute-force scan of the stored embeddings."""
import json
import os
import pathlib
import shutil
import threading

import numpy as np
import pytest

from conftest import CLI, IMAGES, MODELS, load, run_cli

PHOTOS = ["chelsea.png", "astronaut.png", "coffee.png", "camera.png", "hubble_deep_field.jpg"]


@pytest.fixture(scope="module")
def indexed(mc, tmp_path_factory):
    """(db path, photo folder, model, update stats) of a fresh index of the photos."""
    tmp = tmp_path_factory.mktemp("index")
    photos = tmp / "photos"
    (photos / "sub").mkdir(parents=True)
    for n in PHOTOS + ["not_an_image.jpg"]:
        shutil.copy(os.path.join(IMAGES, n), photos / n)
    shutil.copy(os.path.join(IMAGES, "logo.png"), photos / "sub" / "logo.png")
    db = tmp / "photos.db"
    model = load(mc, "oc_mobileclip2_s0")
    with mc.Index(db, writable=True, create=True) as idx:
        seen = []
        stats = idx.update(photos, model=model, batch=4, progress=lambda done, total: seen.append((done, total)))
        assert seen and seen[-1][0] == seen[-1][1] == 7   # the 6 photos and the undecodable file
    return db, photos, model, stats


def test_update(mc, indexed):
    db, photos, model, stats = indexed
    assert (stats["added"], stats["skipped"], stats["removed"]) == (6, 1, 0), stats
    assert stats["skipped_files"] == [(str(photos / "not_an_image.jpg"), "undecodable", stats["skipped_files"][0][2])]
    with mc.Index(db, writable=True) as idx:
        again = idx.update([str(photos)], model=model)
        assert (again["added"], again["unchanged"], again["updated"]) == (0, 6, 0), again
        info = idx.info
    assert info.count == 6 and info.dim == model.embed_dim and len(mc.Index(db)) == 6
    assert info.model_id == model.id and " dim=32 sha256=" in info.model_id
    assert os.path.realpath(info.model_path) == os.path.realpath(
        os.path.join(MODELS, "oc_mobileclip2_s0", "open_clip_model.safetensors"))


def test_search_equals_cli(mc, indexed):
    db, photos, model, _ = indexed
    text = "a photo of a cat"
    out = run_cli(["search", "--db", str(db), "--json", "-k", "6", text])
    want = json.loads(out)["results"]
    idx = mc.Index(db)          # its own model: the one the index records
    hits = idx.search(text, k=6)
    assert [h.path for h in hits] == [r["path"] for r in want]
    assert [h.id for h in hits] == [r["id"] for r in want]
    assert max(abs(h.score - r["score"]) for h, r in zip(hits, want)) <= 5e-7
    # the scan against the stored embeddings and a fresh text embedding
    q = model.encode_text([text], batch_size=1)[0]
    brute = sorted(((float(idx.embedding(h.id) @ q), h.id) for h in hits), key=lambda t: (-t[0], t[1]))
    assert [i for _, i in brute] == [h.id for h in hits]
    assert max(abs(s - h.score) for (s, _), h in zip(brute, hits)) < 1e-6
    # the vector query gives the same; k larger than the index gives all
    assert idx.search(q, k=6) == hits
    assert len(idx.search(q, k=100)) == 6
    rec = idx.image(hits[0].id)
    assert rec["path"] == hits[0].path and rec["width"] > 0 and rec["size"] == os.path.getsize(hits[0].path)


def test_search_by_image(mc, indexed):
    db, photos, model, _ = indexed
    idx = mc.Index(db, model=model)
    for query in [pathlib.Path(photos / "coffee.png"), (photos / "coffee.png").read_bytes()]:
        hits = idx.search(query, k=2)
        assert hits[0].path == str(photos / "coffee.png") and hits[0].score > 0.9999
    out = json.loads(run_cli(["search", "--db", str(db), "--json", "-k", "3", "--image", str(photos / "camera.png")]))
    hits = idx.search(pathlib.Path(photos / "camera.png"), k=3)
    assert [h.path for h in hits] == [r["path"] for r in out["results"]]
    assert max(abs(h.score - r["score"]) for h, r in zip(hits, out["results"])) <= 5e-7


def test_threads_search_at_once(mc, indexed):
    db, _, model, _ = indexed
    idx = mc.Index(db, model=model)
    want = idx.search("a cup of coffee", k=6)
    got, errors = [], []
    barrier = threading.Barrier(3)

    def work():
        try:
            barrier.wait()
            for _ in range(5):
                got.append(idx.search("a cup of coffee", k=6))
        except Exception as e:   # reported below
            errors.append(repr(e))

    ts = [threading.Thread(target=work) for _ in range(3)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert not errors and len(got) == 15 and all(g == want for g in got)


def test_index_errors(mc, indexed, tmp_path):
    db, photos, model, _ = indexed
    with pytest.raises(mc.Error) as e:
        mc.Index(tmp_path / "missing.db")
    assert e.value.status == mc.Status.NOT_FOUND and "missing.db" in e.value.message
    bad = tmp_path / "bad.db"
    bad.write_bytes(b"this is not an index" * 100)
    with pytest.raises(mc.Error) as e:
        mc.Index(bad)
    assert e.value.status == mc.Status.FORMAT
    other = load(mc, "v1_mci_mct")
    with pytest.raises(ValueError, match="was made with model"):
        mc.Index(db, model=other).search("a cat")
    idx = mc.Index(db)
    with pytest.raises(mc.Error) as e:
        idx.search(np.zeros(7, np.float32))
    assert e.value.status == mc.Status.INVALID_ARG
    with pytest.raises(TypeError):
        idx.search([pathlib.Path(photos / "coffee.png")] * 2)
    with pytest.raises(ValueError):
        idx.search("a cat", k=0)
    with pytest.raises(mc.Error) as e:
        idx.image(123456)
    assert e.value.status == mc.Status.NOT_FOUND
    with pytest.raises(mc.Error):
        idx.update(photos, model=model)      # opened read-only
    with pytest.raises(mc.Error):
        mc.Index(db, writable=True).update(photos, model=other)   # another model, no reembed
    idx.close()
    with pytest.raises(ValueError, match="closed"):
        idx.search("a cat")
    assert os.path.exists(CLI)
