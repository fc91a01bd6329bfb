#!/usr/bin/python3
"""'mobileclip serve' from the outside, over loopback HTTP, on a fixture model:

  - GET /, GET /health;
  - POST /v1/embeddings from 8 clients at once (2 requests each) (texts, images as data URLs
    and bare base64, mixed) equal to 'mobileclip embed-text' / 'embed-image'
    on the same inputs (JSON lines of the CLI, 9 significant digits);
  - POST /v1/classify equal to 'mobileclip classify' (6 decimals);
  - every class of bad input answered with its 4xx and a JSON error body
    (malformed JSON, wrong types, bad base64, non-images, truncated images,
    oversized bodies, images and texts, too many inputs, unknown paths,
    wrong methods), the server answering a good request after each;
  - --timeout: a request that waits longer for an encoder gets 503, the
    others 200;
  - SIGTERM while a request's body is still arriving: no new connections,
    the request is answered 200, the process exits 0;
  - with --db (an index of fixture images made by 'mobileclip index'): the
    ranking of GET /v1/search?q= equal to the cosines of the CLI's
    'embed-text' and 'embed-image' outputs, POST /v1/search with an image
    finds that image, GET /v1/images/ID gives the file's bytes,
    /v1/thumbnails/ID a JPEG of at most 256 px; ids that are not indexed and
    paths in place of ids get 404; without --db search is a 404;
  - the page in headless Chromium, opened with ?q=TEXT: its script runs the
    search and renders the results, the best match first; a screenshot is
    kept in build/test-artifacts/serve_page.png;
  - 'mobileclip index' adding to the index while it is served, then SIGHUP:
    the server sees the new image.

Run from the project root after the build (make test)."""
import base64
import http.client
import io
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

from harness import CLI, FIXTURES, ROOT, check, summary

NAME = "test_serve_py"
MODEL = os.path.join(FIXTURES, "models", "oc_mobileclip2_s0")
IMAGES = os.path.join(FIXTURES, "images")
ENV = dict(os.environ, MOBILECLIP_VOCAB=os.path.join(FIXTURES, "tokenizer", "bpe_simple_vocab_16e6.txt.gz"),
           MOBILECLIP_NO_PROGRESS="1")


class Server:
    """A 'mobileclip serve' process on a free port."""

    def __init__(self, *args):
        self.err = tempfile.TemporaryFile()
        self.p = subprocess.Popen([CLI, "serve", "-m", MODEL, "--port", "0", "-q"] + list(args),
                                  stdout=subprocess.PIPE, stderr=self.err, env=ENV, text=True)
        line = self.p.stdout.readline()
        self.port = int(line.strip().rstrip("/").rsplit(":", 1)[1]) if line.startswith("listening on") else 0

    def request(self, method, path, body=None, timeout=60):
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        data = body if body is None or isinstance(body, bytes) or hasattr(body, "__next__") else json.dumps(body).encode()
        c.request(method, path, body=data, headers={"Content-Type": "application/json"} if data is not None else {},
                  encode_chunked=hasattr(data, "__next__"))
        r = c.getresponse()
        out = r.status, r.getheader("Content-Type"), r.read()
        c.close()
        return out

    def json(self, method, path, body=None):
        status, ctype, data = self.request(method, path, body)
        try:
            return status, json.loads(data)
        except ValueError:
            return status, {"unparsed": data[:200]}

    def stderr(self):
        self.err.seek(0)
        return self.err.read().decode(errors="replace")

    def stop(self):
        if self.p.poll() is None:
            self.p.send_signal(signal.SIGTERM)
        try:
            return self.p.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.p.kill()
            return -9


def cli_rows(*args):
    out = subprocess.run([CLI] + list(args), env=ENV, capture_output=True, text=True, timeout=300)
    check(out.returncode == 0, "%s: %s" % (" ".join(args[:1]), out.stderr[-300:]))
    return [json.loads(line) for line in out.stdout.splitlines() if line.strip()]


def b64(name):
    with open(os.path.join(IMAGES, name), "rb") as f:
        return base64.b64encode(f.read()).decode()


def max_diff(a, b):
    return max(abs(x - y) for x, y in zip(a, b)) if len(a) == len(b) else float("inf")


def index_tests():
    """Search over an index of fixture images; returns the server (still
    running, for the page), the best match of "a photo of a cat" and the
    temporary folder of the photos and the index."""
    tmp = tempfile.mkdtemp(prefix="mc_serve_")
    photos = os.path.join(tmp, "photos")
    os.makedirs(photos)
    names = ["astronaut.png", "camera.png", "chelsea.png", "coffee.png", "hubble_deep_field.jpg", "logo.png"]
    for n in names + ["not_an_image.jpg"]:
        shutil.copy(os.path.join(IMAGES, n), photos)
    paths = [os.path.realpath(os.path.join(photos, n)) for n in names]
    db = os.path.join(tmp, "photos.db")
    out = subprocess.run([CLI, "index", "-m", MODEL, "--db", db, "-q", photos], env=ENV, capture_output=True,
                         text=True, timeout=300)
    check(out.returncode == 0, "mobileclip index: %s" % out.stderr[-300:])
    img = cli_rows("embed-image", "-m", MODEL, "-q", *paths)
    queries = ["a photo of a cat", "an astronaut in a suit", "a cup of coffee"]
    txt = cli_rows("embed-text", "-m", MODEL, "--", *queries)
    srv = Server("--db", db)
    check(srv.port > 0, "serve --db: %s" % srv.stderr()[-300:])
    status, health = srv.json("GET", "/health")
    check(status == 200 and (health.get("index") or {}).get("count") == len(names), "health with an index: %s" % health)
    best_path = None
    for q, t in zip(queries, txt):
        cos = sorted(((sum(a * b for a, b in zip(t, e)), p) for e, p in zip(img, paths)), key=lambda x: -x[0])
        status, body = srv.json("GET", "/v1/search?q=%s&k=6" % q.replace(" ", "%20"))
        got = [(h["score"], h["path"]) for h in body.get("data", [])]
        check(status == 200 and [p for _, p in got] == [p for _, p in cos] and
              all(abs(a[0] - b[0]) <= 1e-5 for a, b in zip(got, cos)),
              "search '%s' = cosines of the CLI's embeddings: %s vs %s" % (q, got[:3], cos[:3]))
        if best_path is None:
            best_path = cos[0][1]
        status, body = srv.json("POST", "/v1/search", {"text": q, "k": 2})
        check(status == 200 and [h["path"] for h in body["data"]] == [p for _, p in cos[:2]], "POST search text '%s'" % q)
    status, body = srv.json("POST", "/v1/search", {"image": "data:image/png;base64," + b64("coffee.png"), "k": 3})
    top = body.get("data", [{}])[0]
    check(status == 200 and top.get("path") == paths[3] and top.get("score", 0) > 0.9999 and len(body["data"]) == 3,
          "search by image finds it: %s" % top)
    ids = {}
    for p in paths:
        status, body = srv.json("POST", "/v1/search", {"image": base64.b64encode(open(p, "rb").read()).decode(), "k": 1})
        ids[p] = body["data"][0]["id"] if status == 200 else -1
    check(sorted(ids) == sorted(paths) and len(set(ids.values())) == len(paths), "one id per image: %s" % ids)
    for p in (paths[2], paths[4]):
        status, ctype, data = srv.request("GET", "/v1/images/%d" % ids[p])
        check(status == 200 and data == open(p, "rb").read() and
              ctype == ("image/png" if p.endswith(".png") else "image/jpeg"), "GET /v1/images/%d: %s %s" % (ids[p], status, ctype))
        status, ctype, data = srv.request("GET", "/v1/thumbnails/%d" % ids[p])
        try:
            from PIL import Image
            th, src = Image.open(io.BytesIO(data)), Image.open(p)
            w, h = src.size
            want = (256, round(h * 256 / w)) if w >= h else (round(w * 256 / h), 256)
            ok = th.format == "JPEG" and (th.size == want if max(w, h) > 256 else th.size == (w, h))
        except Exception as e:  # PIL missing or not a JPEG
            ok, th = False, e
        check(status == 200 and ctype == "image/jpeg" and ok, "thumbnail %d: %s %s" % (ids[p], status, th))
    for path, want in [("/v1/images/999999", 404), ("/v1/thumbnails/999999", 404), ("/v1/images/abc", 404),
                       ("/v1/images/..%2F..%2Fetc%2Fpasswd", 404), ("/v1/images/%2Fetc%2Fpasswd", 404),
                       ("/v1/images/-1", 404), ("/v1/search", 400), ("/v1/search?q=cat&k=0", 400),
                       ("/v1/search?q=cat&k=100000", 400)]:
        status, ctype, data = srv.request("GET", path)
        check(status == want and b'"error"' in data, "GET %s: %s %r" % (path, status, data[:80]))
    status, _ = srv.json("POST", "/v1/search", {"text": "a", "k": 100000})
    check(status == 413, "POST search k over the limit: %s" % status)
    return srv, best_path, tmp


def main():
    texts = ["a photo of a cat", "a dog on the beach", "receipts", "", "caf\u00e9 \u00e0 Paris \U0001F600",
             "x " * 200]
    images = ["chelsea.png", "astronaut.png", "coffee.png", "chelsea_q90.jpg", "camera.png", "logo.png",
              "chelsea_exif_rot6.jpg", "tall_40x900.png"]
    want_text = cli_rows("embed-text", "-m", MODEL, "--", *texts)
    want_img = cli_rows("embed-image", "-m", MODEL, "-q", *[os.path.join(IMAGES, i) for i in images])
    check(len(want_text) == len(texts) and len(want_img) == len(images), "CLI embeddings")

    srv = Server("--workers", "2", "--batch", "4", "--max-inputs", "8", "--max-body", "3M",
                 "--max-image-bytes", "1M", "--max-text-bytes", "2K")
    check(srv.port > 0, "serve printed its port: %s" % srv.stderr()[-300:])
    if not srv.port:
        srv.stop()
        return summary(NAME)

    status, ctype, page = srv.request("GET", "/")
    check(status == 200 and ctype.startswith("text/html") and b"</html>" in page, "GET /")
    status, health = srv.json("GET", "/health")
    check(status == 200 and health.get("status") == "ok" and health["model"]["name"] == "oc_mobileclip2_s0" and
          health["model"]["embed_dim"] == len(want_text[0]) and health["workers"] == 2, "GET /health: %s" % health)

    # concurrent clients; each request mixes texts and images in its own order
    results, lock = [], threading.Lock()

    def client(cid):
        for r in range(2):
            order = [(k, i) for k in ("t", "i") for i in range(len(texts if k == "t" else images))]
            order = order[cid + r:] + order[:cid + r]
            order = order[:8]
            inp = []
            for k, i in order:
                if k == "t":
                    inp.append(texts[i] if (cid + i) % 2 else {"text": texts[i]})
                else:
                    d = b64(images[i])
                    inp.append({"image": "data:image/%s;base64,%s" % (images[i].rsplit(".", 1)[1], d)
                                if (cid + i) % 2 else d})
            status, body = srv.json("POST", "/v1/embeddings", {"model": "oc_mobileclip2_s0", "input": inp})
            diffs = []
            if status == 200:
                for (k, i), row in zip(order, body["data"]):
                    diffs.append(max_diff(row["embedding"], (want_text if k == "t" else want_img)[i]))
            with lock:
                results.append((status, len(body.get("data", [])) == len(order), max(diffs) if diffs else 1.0,
                                body.get("object")))

    threads = [threading.Thread(target=client, args=(c,)) for c in range(8)]
    t0 = time.time()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    worst = max(r[2] for r in results)
    check(len(results) == 16 and all(r[0] == 200 and r[1] and r[3] == "list" for r in results),
          "8 concurrent clients x 2 requests: %s" % [r[:2] for r in results if r[0] != 200][:3])
    check(worst <= 1e-6, "server embeddings equal the CLI's (max |diff| %g)" % worst)
    print("8 clients x 2 requests of 8 inputs: %.2f s, max |server - CLI| = %g" % (time.time() - t0, worst))
    status, health = srv.json("GET", "/health")
    print("encoder: %s" % health.get("encoder"))

    # classification against the CLI
    labels = ["cat", "dog", "astronaut", "coffee"]
    out = subprocess.run([CLI, "classify", "-m", MODEL, "-q", "--labels", ",".join(labels), "--top", "4",
                          "--template", "a photo of a {}.", "--template", "a picture of a {}",
                          os.path.join(IMAGES, "chelsea.png"), os.path.join(IMAGES, "coffee.png")],
                         env=ENV, capture_output=True, text=True, timeout=300)
    blocks = [b.splitlines()[1:] for b in out.stdout.strip().split("\n\n")]
    want_cls = [[(l.split("\t")[0], float(l.split("\t")[1])) for l in b] for b in blocks]
    status, body = srv.json("POST", "/v1/classify", {"images": [b64("chelsea.png"), b64("coffee.png")],
                                                      "labels": labels, "top_k": 4,
                                                      "templates": ["a photo of a {}.", "a picture of a {}"]})
    got_cls = [[(x["label"], x["probability"]) for x in d["labels"]] for d in body.get("data", [])]
    check(status == 200 and len(got_cls) == 2 and
          all(g[0] == w[0] and abs(g[1] - w[1]) <= 2e-6 for gg, ww in zip(got_cls, want_cls) for g, w in zip(gg, ww)),
          "classify = CLI: %s vs %s" % (got_cls, want_cls))

    # bad input, each followed by a good request
    with open(os.path.join(IMAGES, "not_an_image.jpg"), "rb") as f:
        not_image = base64.b64encode(f.read()).decode()
    big_image = base64.b64encode(os.urandom(1100 * 1024)).decode()
    bad = [
        ("malformed JSON", "POST", "/v1/embeddings", b'{"input": ["a"', 400),
        ("trailing garbage", "POST", "/v1/embeddings", b'{"input": ["a"]} x', 400),
        ("not UTF-8", "POST", "/v1/embeddings", b'{"input": ["\xff"]}', 400),
        ("empty body", "POST", "/v1/embeddings", b"", 400),
        ("wrong type", "POST", "/v1/embeddings", {"input": [1, 2]}, 400),
        ("bad base64", "POST", "/v1/embeddings", {"input": [{"image": "abc$"}]}, 400),
        ("data URL not an image", "POST", "/v1/embeddings", {"input": [{"image": "data:text/plain;base64,YQ=="}]}, 400),
        ("not an image", "POST", "/v1/embeddings", {"input": [{"image": not_image}]}, 400),
        ("truncated image", "POST", "/v1/embeddings", {"input": [{"image": b64("truncated.jpg")}]}, 400),
        ("GIF", "POST", "/v1/embeddings", {"input": [{"image": base64.b64encode(b"GIF89a" + b"\0" * 20).decode()}]}, 400),
        ("too many inputs", "POST", "/v1/embeddings", {"input": ["a"] * 9}, 413),
        ("text too long", "POST", "/v1/embeddings", {"input": ["a" * 2049]}, 413),
        ("image too large", "POST", "/v1/embeddings", {"input": [{"image": big_image}]}, 413),
        ("body too large, chunked", "POST", "/v1/embeddings", iter([b'{"input": "', b"a" * (3 << 20), b'"}']), 413),
        ("classify without labels", "POST", "/v1/classify", {"image": b64("chelsea.png")}, 400),
        ("classify bad template", "POST", "/v1/classify", {"image": b64("chelsea.png"), "labels": ["a"],
                                                           "templates": ["no slot"]}, 400),
        ("unknown path", "GET", "/v2/nothing", None, 404),
        ("wrong method", "GET", "/v1/embeddings", None, 405),
        ("wrong method on /", "POST", "/", b"{}", 405),
        ("search without an index", "GET", "/v1/search?q=cat", None, 404),
        ("image without an index", "GET", "/v1/images/1", None, 404),
    ]
    for what, method, path, body, want in bad:
        try:
            status, ctype, data = srv.request(method, path, body)
            err = json.loads(data).get("error", {})
        except (ValueError, OSError, http.client.HTTPException) as e:
            status, ctype, err = -1, "", {"exception": str(e)}
        check(status == want and ctype == "application/json" and err.get("code") == want and err.get("message"),
              "%s: %s %s" % (what, status, err))
        st2, body2 = srv.json("POST", "/v1/embeddings", {"input": "still serving"})
        check(st2 == 200 and len(body2["data"][0]["embedding"]) == len(want_text[0]), "serving after: %s" % what)
    # a declared body over the limit is refused before it is sent
    s = socket.create_connection(("127.0.0.1", srv.port))
    s.sendall(b"POST /v1/embeddings HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % (1 << 40))
    s.settimeout(10)
    reply = s.recv(4096)
    s.close()
    check(reply.startswith(b"HTTP/1.1 413") and b'"code": 413' in reply, "declared body too large: %r" % reply[:60])
    # a client that goes away mid-body, and raw garbage
    s = socket.create_connection(("127.0.0.1", srv.port))
    s.sendall(b"POST /v1/embeddings HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n{\"input\"")
    s.close()
    s = socket.create_connection(("127.0.0.1", srv.port))
    s.sendall(b"\x00\x01garbage\r\n\r\n")
    s.settimeout(10)
    try:
        reply = s.recv(100)
    except OSError:
        reply = b""
    s.close()
    check(reply == b"" or reply.startswith(b"HTTP/1.1 4"), "garbage request line: %r" % reply[:40])
    st2, _ = srv.json("GET", "/health")
    check(st2 == 200, "serving after a dropped client and garbage")
    rc = srv.stop()
    check(rc == 0, "SIGTERM exit status %s: %s" % (rc, srv.stderr()[-300:]))

    # --timeout: one worker, batch 1, eight requests of eight images at once
    srv = Server("--workers", "1", "--threads", "1", "--batch", "1", "--timeout", "0.001")
    body = {"input": [{"image": b64("chelsea.png")}] * 8}
    statuses = []

    def burst():
        st, _, data = srv.request("POST", "/v1/embeddings", body)
        statuses.append((st, data))

    threads = [threading.Thread(target=burst) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    n503 = [s for s, d in statuses if s == 503 and b'"code": 503' in d]
    check(len(statuses) == 8 and len(n503) >= 1 and all(s in (200, 503) for s, _ in statuses),
          "--timeout 0.001: %s" % [s for s, _ in statuses])
    st2, _ = srv.json("GET", "/health")
    check(st2 == 200, "serving after timeouts")
    srv.stop()

    # SIGTERM while a request's body is arriving: it is answered, then the process exits 0
    srv = Server()
    payload = json.dumps({"input": ["a request in flight", "b"]}).encode()
    s = socket.create_connection(("127.0.0.1", srv.port))
    s.sendall(b"POST /v1/embeddings HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n"
              % len(payload) + payload[:10])
    time.sleep(0.3)
    srv.p.send_signal(signal.SIGTERM)
    time.sleep(0.5)
    try:
        socket.create_connection(("127.0.0.1", srv.port), timeout=2).close()
        refused = False
    except OSError:
        refused = True
    check(refused, "no new connections after SIGTERM")
    s.sendall(payload[10:])
    s.settimeout(30)
    data = b""
    while True:
        try:
            chunk = s.recv(65536)
        except OSError:
            break
        if not chunk:
            break
        data += chunk
        if b"\r\n\r\n" in data and data.rstrip().endswith(b"}"):
            break
    s.close()
    check(data.startswith(b"HTTP/1.1 200") and b'"embedding"' in data, "the request in flight is answered: %r" % data[:80])
    rc = srv.stop()
    err = srv.stderr()
    check(rc == 0 and "SIGTERM" in err and "stopped" in err, "drained and exited 0 (%s): %s" % (rc, err[-300:]))

    srv, best_path, tmp = index_tests()

    # the page in headless Chromium, running a search from its address
    chrome = shutil.which("chromium") or shutil.which("chromium-browser")
    check(chrome is not None, "chromium is not installed (tools/install-deps.sh installs it)")
    if chrome and srv:
        art = os.path.join(ROOT, "build", "test-artifacts")
        os.makedirs(art, exist_ok=True)
        with tempfile.TemporaryDirectory() as prof:
            base = [chrome, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
                    "--user-data-dir=" + prof, "--virtual-time-budget=5000"]
            url = "http://127.0.0.1:%d/?q=a%%20photo%%20of%%20a%%20cat" % srv.port
            dom = subprocess.run(base + ["--dump-dom", url], capture_output=True, text=True, timeout=120)
            shot = os.path.join(art, "serve_page.png")
            if os.path.exists(shot):
                os.remove(shot)
            subprocess.run(base + ["--window-size=1100,700", "--screenshot=" + shot, url], capture_output=True,
                           timeout=120)
        check(dom.returncode == 0 and 'data-ready="1"' in dom.stdout and "oc_mobileclip2_s0" in dom.stdout and
              "index of 6 images" in dom.stdout, "the page shows the model and index from /health: %s" % dom.stdout[-400:])
        cards = re.findall(r'<div class="hit" data-id="(\d+)">.*?<div class="path" title="([^"]*)"', dom.stdout)
        check('data-results="6"' in dom.stdout and len(cards) == 6 and cards[0][1] == best_path,
              "the page renders the search results, best first: %s" % (cards[:2],))
        check(os.path.getsize(shot) > 1000 if os.path.exists(shot) else False, "screenshot %s" % shot)
    # SIGHUP re-reads the index after 'mobileclip index' added an image to it
    if srv:
        shutil.copy(os.path.join(IMAGES, "chelsea_q90.jpg"), os.path.join(tmp, "photos"))
        out = subprocess.run([CLI, "index", "-m", MODEL, "--db", os.path.join(tmp, "photos.db"), "-q",
                              os.path.join(tmp, "photos")], env=ENV, capture_output=True, text=True, timeout=300)
        check(out.returncode == 0, "index while serving: %s" % out.stderr[-300:])
        srv.p.send_signal(signal.SIGHUP)
        count = None
        for _ in range(50):
            time.sleep(0.1)
            status, health = srv.json("GET", "/health")
            count = (health.get("index") or {}).get("count")
            if count == 7:
                break
        status, body = srv.json("GET", "/v1/search?q=cat&k=10")
        check(count == 7 and len(body.get("data", [])) == 7, "SIGHUP: the index has %s images, search %s" %
              (count, len(body.get("data", []))))
        rc = srv.stop()
        check(rc == 0, "exit status after SIGHUP and SIGTERM: %s" % rc)
    shutil.rmtree(tmp, ignore_errors=True)
    return summary(NAME)


if __name__ == "__main__":
    sys.exit(main())
