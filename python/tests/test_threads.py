"""One model, many threads: each thread its own context, the same results as
one thread, and the GIL released while the library encodes."""
import ctypes
import os
import threading
import time

import numpy as np

from conftest import cli_texts, image_paths, load


def test_two_threads_equal_one(mc):
    m = load(mc, "oc_mobileclip2_s0")
    paths = image_paths()
    texts = cli_texts()
    want_img = m.encode_image(paths)
    want_txt = m.encode_text(texts)
    barrier = threading.Barrier(2)
    results, errors = {}, []

    def work(k):
        try:
            barrier.wait()
            for r in range(3):
                # thread 0 images then texts, thread 1 the other way round
                if k == 0:
                    results[(k, r, "img")] = m.encode_image(paths)
                    results[(k, r, "txt")] = m.encode_text(texts)
                else:
                    results[(k, r, "txt")] = m.encode_text(texts)
                    results[(k, r, "img")] = m.encode_image(paths)
        except Exception as e:   # reported below
            errors.append(repr(e))

    threads = [threading.Thread(target=work, args=(k,)) for k in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    assert len(results) == 12
    for (k, r, kind), v in results.items():
        assert np.array_equal(v, want_img if kind == "img" else want_txt), (k, r, kind)


def test_contexts_are_per_thread(mc):
    m = load(mc, "v1_mci_mct")
    m.encode_text("main")
    seen = []

    def work():
        m.encode_text("worker")
        seen.append(m._local.ctx)

    t = threading.Thread(target=work)
    t.start()
    t.join()
    assert seen and seen[0] is not m._local.ctx and seen[0].ptr.value != m._local.ctx.ptr.value


def test_gil_released_while_encoding(mc):
    """While one thread is inside mc_encode_image, another runs Python code.

    The worker stamps the time just before and after one long library call;
    the main thread counts its loop passes meanwhile.  With the GIL held
    through the call the main thread could not run during its middle half."""
    L = mc._capi.lib()
    assert isinstance(L, ctypes.CDLL) and not isinstance(L, ctypes.PyDLL)
    m = load(mc, "v1_mci_mct", threads=1)
    pix = np.zeros((32, 3, m.image_size, m.image_size), np.float32)
    m.encode_image(pix[:1])
    span = {}
    done = threading.Event()

    def work():
        t0 = time.perf_counter()
        m.encode_image(pix, batch_size=len(pix))   # one library call
        span["call"] = (t0, time.perf_counter())
        done.set()

    stamps = []
    t = threading.Thread(target=work)
    t.start()
    while not done.is_set():
        stamps.append(time.perf_counter())
    t.join()
    a, b = span["call"]
    assert b - a > 0.05, "the call took %.3f s: too short to tell" % (b - a)
    mid = [s for s in stamps if a + (b - a) / 4 < s < b - (b - a) / 4]
    assert len(mid) > 100, "the main thread ran %d times during %.3f s of encoding" % (len(mid), b - a)
