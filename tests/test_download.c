/*
 * test_download.c - SHA-256 vectors, the model registry, and downloads
 * against a small HTTP/1.1 server this test runs on 127.0.0.1 (random port,
 * in a thread, stops by itself): success with and without an ETag sha256,
 * Hugging Face style redirect with X-Linked-Etag, checksum mismatch, HTTP
 * errors, a connection dropped midway (nothing left behind), and fetching a
 * whole official model into a temporary cache through the registry.
 */
#include "io/registry.h"
#include "test.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* ---- the loopback server ---- */

typedef struct srv_file {
    const char *url_name;    /* last path component served */
    char *data;
    size_t len;
    char sha[65];
} srv_file;

static srv_file files[3];
static int n_files;
static int listen_fd = -1;
static int port;
static volatile int stop_server;
static int requests_served;

static srv_file *find_file(const char *name) {
    for (int i = 0; i < n_files; i++)
        if (!strcmp(files[i].url_name, name)) return &files[i];
    return NULL;
}

static void send_all(int fd, const void *p, size_t len) {
    const char *c = p;
    while (len) {
        ssize_t w = send(fd, c, len, MSG_NOSIGNAL);
        if (w <= 0) return;
        c += w;
        len -= (size_t)w;
    }
}

static void respond(int fd, const char *path) {
    char hdr[4096];
    /* routes: /<mode>/.../<file>; mode ok|noetag|bad|drop|linked|weak, or 404 */
    char mode[32] = "";
    const char *slash = strchr(path + 1, '/');
    const char *name = strrchr(path, '/');
    name = name ? name + 1 : path;
    if (slash && (size_t)(slash - path - 1) < sizeof mode) {
        memcpy(mode, path + 1, (size_t)(slash - path - 1));
        mode[slash - path - 1] = 0;
    }
    srv_file *f = find_file(name);
    if (!f || !strcmp(mode, "missing")) {
        const char *body = "not found\n";
        snprintf(hdr, sizeof hdr,
                 "HTTP/1.1 404 Not Found\r\nContent-Length: %zu\r\nConnection: close\r\n\r\n",
                 strlen(body));
        send_all(fd, hdr, strlen(hdr));
        send_all(fd, body, strlen(body));
        return;
    }
    if (!strcmp(mode, "linked")) {
        /* Hugging Face: a redirect carrying X-Linked-Etag, then a CDN reply whose ETag is not a sha256 */
        snprintf(hdr, sizeof hdr,
                 "HTTP/1.1 302 Found\r\nLocation: /cdn/%s\r\nX-Linked-Etag: \"%s\"\r\n"
                 "ETag: \"0123abcd\"\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                 name, f->sha);
        send_all(fd, hdr, strlen(hdr));
        return;
    }
    char etag[128] = "";
    if (!strcmp(mode, "ok")) snprintf(etag, sizeof etag, "ETag: \"%s\"\r\n", f->sha);
    if (!strcmp(mode, "weak")) snprintf(etag, sizeof etag, "ETag: W/\"%s\"\r\n", f->sha);
    if (!strcmp(mode, "cdn")) snprintf(etag, sizeof etag, "ETag: \"d41d8cd98f00b204e9800998ecf8427e\"\r\n");
    if (!strcmp(mode, "bad")) {
        char wrong[65];
        memcpy(wrong, f->sha, 65);
        wrong[0] = wrong[0] == '0' ? '1' : '0';
        snprintf(etag, sizeof etag, "ETag: \"%s\"\r\n", wrong);
    }
    snprintf(hdr, sizeof hdr,
             "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: %zu\r\n"
             "%sConnection: close\r\n\r\n", f->len, etag);
    send_all(fd, hdr, strlen(hdr));
    if (!strcmp(mode, "drop")) {
        send_all(fd, f->data, f->len / 2);   /* then hang up */
        return;
    }
    send_all(fd, f->data, f->len);
}

static void serve_one(int fd) {
    char req[4096];
    size_t n = 0;
    struct pollfd p = {fd, POLLIN, 0};
    while (n < sizeof req - 1 && poll(&p, 1, 2000) > 0) {
        ssize_t r = recv(fd, req + n, sizeof req - 1 - n, 0);
        if (r <= 0) break;
        n += (size_t)r;
        req[n] = 0;
        if (strstr(req, "\r\n\r\n")) break;
    }
    req[n] = 0;
    char method[16], path[2048];
    if (sscanf(req, "%15s %2047s", method, path) == 2) respond(fd, path);
    shutdown(fd, SHUT_RDWR);
    close(fd);
    requests_served++;
}

static void *server_main(void *arg) {
    (void)arg;
    time_t deadline = time(NULL) + 120;   /* never outlives a stuck test */
    while (!stop_server && time(NULL) < deadline) {
        struct pollfd p = {listen_fd, POLLIN, 0};
        if (poll(&p, 1, 100) <= 0) continue;
        int c = accept(listen_fd, NULL, NULL);
        if (c >= 0) serve_one(c);
    }
    close(listen_fd);
    return NULL;
}

static int start_server(pthread_t *th) {
    listen_fd = socket(AF_INET, SOCK_STREAM, 0);
    if (listen_fd < 0) return -1;
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = 0;
    if (bind(listen_fd, (struct sockaddr *)&a, sizeof a) || listen(listen_fd, 8)) return -1;
    socklen_t al = sizeof a;
    getsockname(listen_fd, (struct sockaddr *)&a, &al);
    port = ntohs(a.sin_port);
    return pthread_create(th, NULL, server_main, NULL);
}

static int load_file(const char *path, const char *url_name) {
    srv_file *f = &files[n_files];
    FILE *fp = fopen(path, "rb");
    if (!fp) return -1;
    fseek(fp, 0, SEEK_END);
    long len = ftell(fp);
    fseek(fp, 0, SEEK_SET);
    f->data = malloc((size_t)len + 1);
    f->len = fread(f->data, 1, (size_t)len, fp);
    fclose(fp);
    f->url_name = url_name;
    mc_sha256_hex(f->data, f->len, f->sha);
    n_files++;
    return f->len == (size_t)len ? 0 : -1;
}

/* ---- helpers ---- */

static int count_entries(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) n++;
    closedir(d);
    return n;
}

static int file_equals(const char *path, const srv_file *f) {
    FILE *fp = fopen(path, "rb");
    if (!fp) return 0;
    char *buf = malloc(f->len + 1);
    size_t n = fread(buf, 1, f->len + 1, fp);
    fclose(fp);
    int eq = n == f->len && !memcmp(buf, f->data, f->len);
    free(buf);
    return eq;
}

static void rm_rf(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return;
    struct dirent *e;
    char p[4096];
    while ((e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        struct stat sb;
        if (lstat(p, &sb) == 0 && S_ISDIR(sb.st_mode)) rm_rf(p);
        else unlink(p);
    }
    closedir(d);
    rmdir(dir);
}

static int progress_calls;
static int64_t progress_last;
static int on_progress(void *user, const char *label, int64_t done, int64_t total) {
    (void)user; (void)label; (void)total;
    progress_calls++;
    progress_last = done;
    return 0;
}

/* ---- tests ---- */

static void test_sha256(void) {
    char hex[65];
    mc_sha256_hex("abc", 3, hex);
    CHECK(!strcmp(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"), "sha256(abc) = %s", hex);
    mc_sha256_hex("", 0, hex);
    CHECK(!strcmp(hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"), "sha256('') = %s", hex);
    const char *m = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
    mc_sha256_hex(m, strlen(m), hex);
    CHECK(!strcmp(hex, "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"), "sha256(448 bits) = %s", hex);
    /* one million 'a', fed in uneven pieces */
    mc_sha256 s;
    mc_sha256_init(&s);
    char a[1000];
    memset(a, 'a', sizeof a);
    size_t left = 1000000, step = 1;
    while (left) {
        size_t k = step < left ? step : left;
        if (k > sizeof a) k = sizeof a;
        mc_sha256_update(&s, a, k);
        left -= k;
        step = step * 7 % 997 + 1;
    }
    uint8_t d[32];
    mc_sha256_final(&s, d);
    for (int i = 0; i < 32; i++) snprintf(hex + 2 * i, 3, "%02x", d[i]);
    CHECK(!strcmp(hex, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0"), "sha256(1M a) = %s", hex);
}

static void test_registry(void) {
    static const char *names[] = {"mobileclip_s0", "mobileclip_s1", "mobileclip_s2", "mobileclip_b",
                                  "mobileclip_blt", "MobileCLIP-S1", "MobileCLIP-S2", "MobileCLIP-B",
                                  "MobileCLIP-B-LT", "MobileCLIP2-S0", "MobileCLIP2-S2", "MobileCLIP2-B",
                                  "MobileCLIP2-S3", "MobileCLIP2-S4", "MobileCLIP2-L-14", "ViT-L-14-openai",
                                  "ViT-L-14-datacomp_xl_s13b_b90k", "DFN2B-CLIP-ViT-L-14", "DFN2B-CLIP-ViT-L-14-39B"};
    CHECK(mc_registry_count() == sizeof names / sizeof names[0], "registry has %zu models", mc_registry_count());
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        const mc_registry_entry *e = mc_registry_find(names[i]);
        CHECK(e && !strcmp(e->name, names[i]), "registry lacks %s", names[i]);
    }
    CHECK(mc_registry_find("mobileclip2-s0") == mc_registry_find("MobileCLIP2-S0"), "case-insensitive lookup");
    CHECK(mc_registry_find("MobileCLIP2-S9") == NULL, "unknown name found");

    char url[1024];
    unsetenv("MOBILECLIP_BASE_URL");
    unsetenv("MOBILECLIP_HF_BASE");
    unsetenv("MOBILECLIP_APPLE_BASE");
    mc_registry_url(mc_registry_find("mobileclip_s0"), "mobileclip_s0.pt", url, sizeof url, NULL);
    CHECK(!strcmp(url, "https://docs-assets.developer.apple.com/ml-research/datasets/mobileclip/mobileclip_s0.pt"),
          "apple url %s", url);
    mc_registry_url(mc_registry_find("MobileCLIP2-S0"), "open_clip_model.safetensors", url, sizeof url, NULL);
    CHECK(!strcmp(url, "https://huggingface.co/timm/MobileCLIP2-S0-OpenCLIP/resolve/main/open_clip_model.safetensors"),
          "hf url %s", url);
    mc_registry_url(mc_registry_find("MobileCLIP-S1"), "open_clip_config.json", url, sizeof url, NULL);
    CHECK(!strcmp(url, "https://huggingface.co/apple/MobileCLIP-S1-OpenCLIP/resolve/main/open_clip_config.json"),
          "hf url %s", url);
    mc_registry_url(mc_registry_find("ViT-L-14-openai"), "open_clip_pytorch_model.bin", url, sizeof url, NULL);
    CHECK(!strcmp(url, "https://huggingface.co/timm/vit_large_patch14_clip_224.openai/resolve/main/open_clip_pytorch_model.bin"),
          "teacher url %s", url);
    mc_registry_url(mc_registry_find("DFN2B-CLIP-ViT-L-14-39B"), "open_clip_pytorch_model.bin", url, sizeof url, NULL);
    CHECK(!strcmp(url, "https://huggingface.co/apple/DFN2B-CLIP-ViT-L-14-39B/resolve/main/open_clip_pytorch_model.bin"),
          "teacher url %s", url);
    setenv("MOBILECLIP_BASE_URL", "http://127.0.0.1:1/x", 1);
    mc_registry_url(mc_registry_find("MobileCLIP2-B"), "open_clip_config.json", url, sizeof url, NULL);
    CHECK(!strcmp(url, "http://127.0.0.1:1/x/timm/MobileCLIP2-B-OpenCLIP/resolve/main/open_clip_config.json"),
          "base override %s", url);
    setenv("MOBILECLIP_APPLE_BASE", "http://127.0.0.1:1/apple", 1);
    mc_registry_url(mc_registry_find("mobileclip_b"), "mobileclip_b.pt", url, sizeof url, NULL);
    CHECK(!strcmp(url, "http://127.0.0.1:1/apple/mobileclip_b.pt"), "apple override %s", url);
    unsetenv("MOBILECLIP_BASE_URL");
    unsetenv("MOBILECLIP_APPLE_BASE");

    char dir[4096];
    setenv("MOBILECLIP_CACHE", "/tmp/mc-cache-x", 1);
    mc_registry_model_dir(mc_registry_find("MobileCLIP2-S3"), dir, sizeof dir, NULL);
    CHECK(!strcmp(dir, "/tmp/mc-cache-x/MobileCLIP2-S3"), "cache dir %s", dir);
    unsetenv("MOBILECLIP_CACHE");
    setenv("XDG_CACHE_HOME", "/tmp/xdg", 1);
    mc_registry_cache_dir(dir, sizeof dir, NULL);
    CHECK(!strcmp(dir, "/tmp/xdg/mobileclip"), "xdg cache %s", dir);
    unsetenv("XDG_CACHE_HOME");
    setenv("HOME", "/tmp/home", 1);
    mc_registry_cache_dir(dir, sizeof dir, NULL);
    CHECK(!strcmp(dir, "/tmp/home/.cache/mobileclip"), "home cache %s", dir);
}

static void test_downloads(const char *tmpdir) {
    char url[512], dest[4096];
    mc_error err;
    srv_file *w = find_file("open_clip_model.safetensors");

    /* ETag sha256 present and right; progress reported */
    snprintf(url, sizeof url, "http://127.0.0.1:%d/ok/open_clip_model.safetensors", port);
    snprintf(dest, sizeof dest, "%s/a.safetensors", tmpdir);
    mc_download_params p = mc_download_default_params();
    p.progress = on_progress;
    mc_status st = mc_download_file(url, dest, &p, &err);
    CHECK(st == MC_OK, "download with etag: %s", err.message);
    CHECK(file_equals(dest, w), "downloaded file differs");
    CHECK(progress_calls > 0 && progress_last == (int64_t)w->len, "progress %d calls, last %lld",
          progress_calls, (long long)progress_last);

    /* no ETag: not verified, still downloaded */
    snprintf(url, sizeof url, "http://127.0.0.1:%d/noetag/open_clip_config.json", port);
    snprintf(dest, sizeof dest, "%s/b.json", tmpdir);
    st = mc_download_file(url, dest, NULL, &err);
    CHECK(st == MC_OK && file_equals(dest, find_file("open_clip_config.json")), "download without etag: %s",
          err.message);

    /* weak ETag sha256 accepted */
    snprintf(url, sizeof url, "http://127.0.0.1:%d/weak/open_clip_config.json", port);
    snprintf(dest, sizeof dest, "%s/b2.json", tmpdir);
    st = mc_download_file(url, dest, NULL, &err);
    CHECK(st == MC_OK, "download with weak etag: %s", err.message);

    /* redirect with X-Linked-Etag (verified), final ETag an md5 (ignored) */
    snprintf(url, sizeof url, "http://127.0.0.1:%d/linked/open_clip_model.safetensors", port);
    snprintf(dest, sizeof dest, "%s/c.safetensors", tmpdir);
    st = mc_download_file(url, dest, NULL, &err);
    CHECK(st == MC_OK && file_equals(dest, w), "linked etag download: %s", err.message);

    /* the caller's checksum wins; a wrong one fails */
    snprintf(url, sizeof url, "http://127.0.0.1:%d/noetag/open_clip_model.safetensors", port);
    snprintf(dest, sizeof dest, "%s/d.safetensors", tmpdir);
    p = mc_download_default_params();
    p.sha256 = "0000000000000000000000000000000000000000000000000000000000000000";
    st = mc_download_file(url, dest, &p, &err);
    CHECK(st == MC_ERR_CHECKSUM, "caller checksum mismatch gave %d", st);
    CHECK(access(dest, F_OK) != 0, "file left after checksum mismatch");
    p.sha256 = w->sha;
    st = mc_download_file(url, dest, &p, &err);
    CHECK(st == MC_OK, "caller checksum right: %s", err.message);

    /* server ETag mismatch */
    snprintf(url, sizeof url, "http://127.0.0.1:%d/bad/open_clip_model.safetensors", port);
    snprintf(dest, sizeof dest, "%s/e.safetensors", tmpdir);
    st = mc_download_file(url, dest, NULL, &err);
    CHECK(st == MC_ERR_CHECKSUM, "etag mismatch gave %d (%s)", st, err.message);
    CHECK(err.status == MC_ERR_CHECKSUM && strstr(err.message, "sha256"), "message: %s", err.message);
    CHECK(access(dest, F_OK) != 0, "file left after etag mismatch");

    /* connection dropped midway */
    snprintf(url, sizeof url, "http://127.0.0.1:%d/drop/open_clip_model.safetensors", port);
    snprintf(dest, sizeof dest, "%s/f.safetensors", tmpdir);
    st = mc_download_file(url, dest, NULL, &err);
    CHECK(st == MC_ERR_NETWORK, "dropped connection gave %d (%s)", st, err.message);
    CHECK(access(dest, F_OK) != 0, "file left after dropped connection");

    /* an existing file survives a failed download over it */
    snprintf(dest, sizeof dest, "%s/a.safetensors", tmpdir);
    st = mc_download_file(url, dest, NULL, &err);
    CHECK(st == MC_ERR_NETWORK && file_equals(dest, w), "failed download damaged the old file");

    /* 404 */
    snprintf(url, sizeof url, "http://127.0.0.1:%d/missing/open_clip_model.safetensors", port);
    snprintf(dest, sizeof dest, "%s/g.safetensors", tmpdir);
    st = mc_download_file(url, dest, NULL, &err);
    CHECK(st == MC_ERR_NETWORK && strstr(err.message, "404"), "404 gave %d (%s)", st, err.message);
    CHECK(access(dest, F_OK) != 0, "file left after 404");

    /* nothing listening */
    snprintf(dest, sizeof dest, "%s/h.safetensors", tmpdir);
    st = mc_download_file("http://127.0.0.1:1/x", dest, NULL, &err);
    CHECK(st == MC_ERR_NETWORK, "refused connection gave %d", st);

    /* only the successful files, no temporaries */
    CHECK(count_entries(tmpdir) == 5, "temp dir holds %d entries, expected 5", count_entries(tmpdir));
}

static void test_fetch(const char *tmpdir) {
    char cache[4096], base[256], vurl[256], path[4096], p2[8192];
    mc_error err;
    snprintf(cache, sizeof cache, "%s/cache", tmpdir);
    setenv("MOBILECLIP_CACHE", cache, 1);
    snprintf(base, sizeof base, "http://127.0.0.1:%d/ok", port);
    setenv("MOBILECLIP_HF_BASE", base, 1);
    snprintf(vurl, sizeof vurl, "http://127.0.0.1:%d/linked/%s", port, MC_VOCAB_FILENAME);
    setenv("MOBILECLIP_VOCAB_URL", vurl, 1);

    const mc_registry_entry *e = NULL;
    CHECK(!mc_registry_is_cached(mc_registry_find("MobileCLIP2-S0")), "empty cache reports cached");
    mc_status st = mc_registry_resolve("MobileCLIP2-S0", 0, NULL, path, sizeof path, &e, &err);
    CHECK(st == MC_ERR_NOT_FOUND, "resolve without download gave %d", st);
    st = mc_registry_resolve("MobileCLIP2-S0", 1, NULL, path, sizeof path, &e, &err);
    CHECK(st == MC_OK, "fetch: %s", err.message);
    CHECK(e && !strcmp(e->name, "MobileCLIP2-S0"), "resolved entry");
    snprintf(p2, sizeof p2, "%s/MobileCLIP2-S0", cache);
    CHECK(!strcmp(path, p2), "resolved path %s", path);
    snprintf(p2, sizeof p2, "%s/open_clip_model.safetensors", path);
    CHECK(file_equals(p2, find_file("open_clip_model.safetensors")), "cached weights differ");
    snprintf(p2, sizeof p2, "%s/open_clip_config.json", path);
    CHECK(file_equals(p2, find_file("open_clip_config.json")), "cached config differs");
    snprintf(p2, sizeof p2, "%s/%s", path, MC_VOCAB_FILENAME);
    CHECK(file_equals(p2, find_file(MC_VOCAB_FILENAME)), "cached vocab differs");
    CHECK(mc_registry_is_cached(e), "not cached after fetch");

    /* second resolve: no requests */
    int before = requests_served;
    st = mc_registry_resolve("MobileCLIP2-S0", 1, NULL, path, sizeof path, &e, &err);
    CHECK(st == MC_OK && requests_served == before, "cached resolve made %d requests",
          requests_served - before);

    /* a failing server leaves the cache without partial files */
    snprintf(base, sizeof base, "http://127.0.0.1:%d/drop", port);
    setenv("MOBILECLIP_HF_BASE", base, 1);
    st = mc_registry_resolve("MobileCLIP2-B", 1, NULL, path, sizeof path, &e, &err);
    CHECK(st == MC_ERR_NETWORK, "fetch from a dropping server gave %d", st);
    snprintf(p2, sizeof p2, "%s/MobileCLIP2-B", cache);
    CHECK(count_entries(p2) == 0, "partial files left in %s: %d", p2, count_entries(p2));

    /* an existing path resolves to itself and its official name */
    snprintf(p2, sizeof p2, "%s/MobileCLIP2-S0/open_clip_model.safetensors", cache);
    st = mc_registry_resolve(p2, 0, NULL, path, sizeof path, &e, &err);
    CHECK(st == MC_OK && !strcmp(path, p2) && e && !strcmp(e->name, "MobileCLIP2-S0"), "path resolve");
    st = mc_registry_resolve("no-such-model", 1, NULL, path, sizeof path, &e, &err);
    CHECK(st == MC_ERR_NOT_FOUND, "unknown model gave %d", st);

    /* the public face: mc_model_resolve and the official names */
    const char *name = "x";
    st = mc_model_resolve("mobileclip2-s0", 0, path, sizeof path, &name, &err);
    snprintf(p2, sizeof p2, "%s/MobileCLIP2-S0", cache);
    CHECK(st == MC_OK && !strcmp(path, p2) && name && !strcmp(name, "MobileCLIP2-S0"),
          "public resolve of a cached name: %d %s %s", st, path, name ? name : "(null)");
    st = mc_model_resolve(fixture("models/v1_mci_mct"), 0, path, sizeof path, &name, &err);
    CHECK(st == MC_OK && !strcmp(path, fixture("models/v1_mci_mct")) && name == NULL,
          "public resolve of a path: %d %s", st, path);
    name = "x";
    st = mc_model_resolve("MobileCLIP2-B", 0, path, sizeof path, &name, &err);
    CHECK(st == MC_ERR_NOT_FOUND && err.status == MC_ERR_NOT_FOUND && strstr(err.message, "MobileCLIP2-B") &&
          name == NULL, "public resolve, not cached, no download: %d %s", st, err.message);
    st = mc_model_resolve("no-such-model", 1, path, sizeof path, NULL, &err);
    CHECK(st == MC_ERR_NOT_FOUND && strstr(err.message, "no-such-model"), "public resolve of an unknown name: %d", st);
    st = mc_model_resolve("MobileCLIP2-S0", 0, path, 4, NULL, &err);
    CHECK(st != MC_OK, "a path buffer too small is an error");
    size_t n_names = 0;
    while (mc_official_model_name(n_names)) n_names++;
    CHECK(n_names == mc_registry_count() && !strcmp(mc_official_model_name(0), mc_registry_get(0)->name),
          "official names: %zu of %zu", n_names, mc_registry_count());

    unsetenv("MOBILECLIP_CACHE");
    unsetenv("MOBILECLIP_HF_BASE");
    unsetenv("MOBILECLIP_VOCAB_URL");
}

int main(void) {
    test_sha256();
    test_registry();

    int ok = load_file(fixture("models/oc_mobileclip2_s0/open_clip_model.safetensors"),
                       "open_clip_model.safetensors") == 0 &&
             load_file(fixture("models/oc_mobileclip2_s0/open_clip_config.json"), "open_clip_config.json") == 0 &&
             load_file(fixture("tokenizer/" MC_VOCAB_FILENAME), MC_VOCAB_FILENAME) == 0;
    CHECK(ok, "fixture files missing under %s", fixtures_dir());
    if (!ok) return test_summary("test_download");

    pthread_t th;
    CHECK(start_server(&th) == 0, "cannot start the loopback server");
    char tmpdir[] = "/tmp/mc-test-download-XXXXXX";
    CHECK(mkdtemp(tmpdir) != NULL, "mkdtemp");

    test_downloads(tmpdir);
    test_fetch(tmpdir);

    stop_server = 1;
    pthread_join(th, NULL);
    rm_rf(tmpdir);
    for (int i = 0; i < n_files; i++) free(files[i].data);
    return test_summary("test_download");
}
