/*
 * test_serve.c - the server's untrusted-input parsing and its endpoints, in
 * process (built under ASan/UBSan too):
 *   - base64 and data URLs: RFC 4648 vectors, URL-safe, unpadded; bad
 *     characters, misplaced padding, truncation, non-canonical bits, data URLs
 *     that are not base64 images;
 *   - request bodies: every class of bad input gets its HTTP status (400
 *     malformed / wrong types, 413 over a limit), valid ones parse;
 *   - JSON output: escapes, invalid UTF-8 replaced;
 *   - a server on a fixture model over real sockets: embeddings of texts and
 *     images equal to mc_encode_* on the same inputs, from several clients at
 *     once; classification as softmax over the label embeddings; every class
 *     of bad request answered 4xx with a JSON error while the server keeps
 *     serving;
 *   - over an index of three fixture images (mc_index_update): search by text
 *     and by image, an indexed file's bytes, a thumbnail (decoded, resampled,
 *     JPEG-encoded, then from the cache), ids not in the index.
 * (Draining on SIGTERM, and search against the CLI: tests/test_serve.py.)
 */
#include "mobileclip.h"
#include "test.h"
#include "io/image_write.h"
#include "serve/b64.h"
#include "serve/request.h"
#include "serve/server.h"

#include <arpa/inet.h>
#include <limits.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sys/socket.h>
#include <unistd.h>

/* ---- base64 ---- */

static int b64_is(const char *in, const char *want, size_t want_len) {
    unsigned char *out;
    size_t n;
    mc_error err;
    if (mc_b64_decode(in, strlen(in), &out, &n, &err) != MC_OK) return 0;
    int ok = n == want_len && !memcmp(out, want, n);
    free(out);
    return ok;
}

static int b64_fails(const char *in) {
    unsigned char *out = (unsigned char *)"x";
    size_t n = 7;
    mc_error err;
    int failed = mc_b64_decode(in, strlen(in), &out, &n, &err) == MC_ERR_FORMAT;
    return failed && out == NULL && n == 0 && err.message[0];
}

static void test_b64(void) {
    static const char *vec[][2] = {{"", ""},         {"Zg==", "f"},     {"Zm8=", "fo"},      {"Zm9v", "foo"},
                                   {"Zm9vYg==", "foob"}, {"Zm9vYmE=", "fooba"}, {"Zm9vYmFy", "foobar"}};
    for (size_t i = 0; i < sizeof vec / sizeof vec[0]; i++)
        CHECK(b64_is(vec[i][0], vec[i][1], strlen(vec[i][1])), "base64 '%s'", vec[i][0]);
    CHECK(b64_is("Zg", "f", 1) && b64_is("Zm8", "fo", 2), "unpadded base64");
    CHECK(b64_is("-_-_", "\xfb\xff\xbf", 3) && b64_is("+/+/", "\xfb\xff\xbf", 3), "URL-safe and standard alphabets");
    CHECK(b64_fails("Zm9v!"), "a bad character");
    CHECK(b64_fails("Zm 9v"), "whitespace");
    CHECK(b64_fails("Zg=a"), "padding before the end");
    CHECK(b64_fails("Z==="), "three padding characters");
    CHECK(b64_fails("Zg="), "padding in a length not a multiple of 4");
    CHECK(b64_fails("Zm9vY"), "a length of 4k+1");
    CHECK(b64_fails("Zh=="), "non-zero trailing bits");
    CHECK(mc_b64_decoded_max(4) >= 3 && mc_b64_decoded_max(3) >= 2 && mc_b64_decoded_max(0) >= 1, "decoded bound");

    unsigned char *out;
    size_t n;
    mc_error err;
    const char *u = "data:image/png;base64,Zm9v";
    CHECK(mc_data_url_decode(u, strlen(u), &out, &n, &err) == MC_OK && n == 3 && !memcmp(out, "foo", 3), "data URL");
    free(out);
    u = "DATA:image/jpeg;name=x.jpg;BASE64,Zm9v";
    CHECK(mc_data_url_decode(u, strlen(u), &out, &n, &err) == MC_OK && n == 3, "data URL with a parameter, any case");
    free(out);
    u = "data:;base64,Zm9v";
    CHECK(mc_data_url_decode(u, strlen(u), &out, &n, &err) == MC_OK && n == 3, "data URL without a media type");
    free(out);
    static const char *bad[] = {"data:text/plain;base64,Zm9v", "data:image/png,foo", "data:image/png;base64",
                                "data:image/png;base64,Zm9v!", "data:imag;base64,Zm9v"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        out = NULL;
        CHECK(mc_data_url_decode(bad[i], strlen(bad[i]), &out, &n, &err) == MC_ERR_FORMAT && !out, "refused: %s", bad[i]);
    }
}

/* ---- request bodies ---- */

static int parse_status(mc_serve_req_type t, const char *body, const mc_serve_limits *lim) {
    mc_serve_request rq;
    int http = 0;
    mc_error err;
    mc_status st = mc_serve_parse(t, body, strlen(body), lim, &rq, &http, &err);
    if (st == MC_OK) {
        mc_serve_request_free(&rq);
        return 200;
    }
    if (!err.message[0]) return -1;   /* an error without its reason */
    return http;
}

static void test_requests(void) {
    mc_serve_limits lim = mc_serve_default_limits();
    lim.max_inputs = 3;
    lim.max_text_bytes = 10;
    lim.max_image_bytes = 6;
    lim.max_labels = 4;
    lim.max_k = 5;
    lim.max_body_bytes = 400;
    mc_serve_req_type E = MC_REQ_EMBEDDINGS, C = MC_REQ_CLASSIFY, S = MC_REQ_SEARCH;
    struct { mc_serve_req_type t; const char *body; int http; } cases[] = {
        {E, "{\"input\": \"a cat\"}", 200},
        {E, "{\"model\": \"x\", \"input\": [\"a cat\", {\"text\": \"dog\"}, {\"image\": \"Zm9v\"}]}", 200},
        {E, "{\"input\": [\"a\"], \"encoding_format\": \"float\"}", 200},
        {E, "", 400},
        {E, "{\"input\": [\"a\"]", 400},                 /* malformed */
        {E, "{\"input\": [\"a\",]}", 400},
        {E, "[\"a\"]", 400},                             /* not an object */
        {E, "{}", 400},                                  /* no input */
        {E, "{\"input\": 3}", 400},
        {E, "{\"input\": []}", 400},
        {E, "{\"input\": [3]}", 400},
        {E, "{\"input\": [{\"image\": 3}]}", 400},
        {E, "{\"input\": [{\"image\": \"Zm9v\", \"text\": \"a\"}]}", 400},
        {E, "{\"input\": [{\"image\": \"Zm9v!\"}]}", 400},  /* bad base64 */
        {E, "{\"input\": [{\"image\": \"data:text/html;base64,Zm9v\"}]}", 400},
        {E, "{\"input\": [{\"image\": \"\"}]}", 400},
        {E, "{\"input\": [\"a\"], \"encoding_format\": \"base64\"}", 400},
        {E, "{\"input\": [\"a\"], \"model\": 7}", 400},
        {E, "{\"input\": [\"a\", \"b\", \"c\", \"d\"]}", 413},   /* too many inputs */
        {E, "{\"input\": [\"0123456789x\"]}", 413},             /* text too long */
        {E, "{\"input\": [{\"image\": \"Zm9vYmFyYmF6\"}]}", 413}, /* image too large */
        {C, "{\"image\": \"Zm9v\", \"labels\": [\"cat\", \"dog\"]}", 200},
        {C, "{\"images\": [\"Zm9v\"], \"labels\": [\"cat\"], \"templates\": [\"a {}\"], \"top_k\": 1}", 200},
        {C, "{\"image\": \"Zm9v\"}", 400},                          /* no labels */
        {C, "{\"labels\": [\"cat\"]}", 400},                        /* no image */
        {C, "{\"image\": \"Zm9v\", \"images\": [\"Zm9v\"], \"labels\": [\"a\"]}", 400},
        {C, "{\"image\": \"Zm9v\", \"labels\": []}", 400},
        {C, "{\"image\": \"Zm9v\", \"labels\": [\"\"]}", 400},
        {C, "{\"image\": \"Zm9v\", \"labels\": [\"a\\u0000b\"]}", 400},
        {C, "{\"image\": \"Zm9v\", \"labels\": [\"a\"], \"templates\": [\"no slot\"]}", 400},
        {C, "{\"image\": \"Zm9v\", \"labels\": [\"a\"], \"top_k\": 0}", 400},
        {C, "{\"image\": \"Zm9v\", \"labels\": [\"a\"], \"top_k\": 1.5}", 400},
        {C, "{\"image\": \"Zm9v\", \"labels\": [\"a\"], \"top_k\": 1e300}", 413},
        {C, "{\"image\": \"Zm9v\", \"labels\": [\"a\", \"b\", \"c\", \"d\", \"e\"]}", 413},
        {C, "{\"image\": \"Zm9v\", \"labels\": [\"a\", \"b\", \"c\"], \"templates\": [\"{}\", \"x {}\"]}", 413},
        {S, "{\"text\": \"a cat\", \"k\": 5}", 200},
        {S, "{\"image\": \"Zm9v\"}", 200},
        {S, "{\"text\": \"a\", \"image\": \"Zm9v\"}", 400},
        {S, "{\"text\": \"a\", \"k\": 6}", 413},
        {S, "{\"text\": \"a\", \"k\": -1}", 400},
        {S, "{\"text\": \"a\", \"k\": \"3\"}", 400},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int got = parse_status(cases[i].t, cases[i].body, &lim);
        CHECK(got == cases[i].http, "request %zu %s: status %d, expected %d", i, cases[i].body, got, cases[i].http);
    }
    char big[512];
    memset(big, ' ', sizeof big - 1);
    big[sizeof big - 1] = 0;
    big[0] = '{';
    big[sizeof big - 2] = '}';
    CHECK(parse_status(E, big, &lim) == 413, "body over the limit");
    /* what a valid request holds */
    mc_serve_request rq;
    int http;
    mc_error err;
    const char *body = "{\"input\": [\"a\\u00e9\", {\"image\": \"data:image/png;base64,Zm9vYg==\"}]}";
    CHECK(mc_serve_parse(E, body, strlen(body), &lim, &rq, &http, &err) == MC_OK && rq.n_inputs == 2 &&
          rq.inputs[0].kind == MC_INPUT_TEXT && rq.inputs[0].len == 3 && !memcmp(rq.inputs[0].text, "a\xc3\xa9", 3) &&
          rq.inputs[1].kind == MC_INPUT_IMAGE && rq.inputs[1].len == 4 && !memcmp(rq.inputs[1].image, "foob", 4),
          "parsed inputs");
    mc_serve_request_free(&rq);
    body = "{\"image\": \"Zm9v\", \"labels\": [\"a\", \"b\", \"c\"], \"top_k\": 4}";
    CHECK(mc_serve_parse(C, body, strlen(body), &lim, &rq, &http, &err) == MC_OK && rq.k == 3 && rq.n_labels == 3,
          "top_k is capped at the label count");
    mc_serve_request_free(&rq);
    CHECK(mc_serve_parse_count("10", 100) == 10 && mc_serve_parse_count("0", 100) == -1 &&
          mc_serve_parse_count("101", 100) == -1 && mc_serve_parse_count("1x", 100) == -1 &&
          mc_serve_parse_count("", 100) == -1 && mc_serve_parse_count("99999999999999999999", 100) == -1,
          "query counts");

    mc_sbuf b = {0};
    mc_sbuf_json_str(&b, "a\"\\\n\x01\xc3\xa9\xff\xe2\x82", 10);
    CHECK(b.p && !strcmp(b.p, "\"a\\\"\\\\\\u000a\\u0001\xc3\xa9\\ufffd\\ufffd\\ufffd\""), "JSON string escapes: %s", b.p);
    mc_sbuf_free(&b);
    float x[2] = {0.1f, -3.0f};
    mc_sbuf_floats(&b, x, 2);
    CHECK(b.p && !strcmp(b.p, "[0.100000001, -3]"), "floats: %s", b.p);
    mc_sbuf_free(&b);
}

/* ---- a server over sockets ---- */

typedef struct reply {
    int status;
    char *body;      /* NUL-terminated */
    size_t len;
} reply;

/* One request on its own connection ("Connection: close"); status -1 when
 * the connection failed. */
static reply http(int port, const char *method, const char *path, const char *body, size_t blen) {
    reply r = {-1, NULL, 0};
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        if (fd >= 0) close(fd);
        return r;
    }
    char head[512];
    int hl = snprintf(head, sizeof head,
                      "%s %s HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nContent-Type: application/json\r\n"
                      "Content-Length: %zu\r\n\r\n", method, path, blen);
    size_t off = 0;
    while (off < (size_t)hl) {
        ssize_t w = send(fd, head + off, (size_t)hl - off, MSG_NOSIGNAL);
        if (w <= 0) break;
        off += (size_t)w;
    }
    for (off = 0; off < blen;) {
        ssize_t w = send(fd, body + off, blen - off, MSG_NOSIGNAL);
        if (w <= 0) break;   /* the server may answer and close before reading it all */
        off += (size_t)w;
    }
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap);
    for (;;) {
        if (n + 1 >= cap) buf = realloc(buf, cap *= 2);
        ssize_t k = recv(fd, buf + n, cap - n - 1, 0);
        if (k <= 0) break;
        n += (size_t)k;
    }
    buf[n] = 0;
    close(fd);
    char *sep = strstr(buf, "\r\n\r\n");
    if (sscanf(buf, "HTTP/1.%*d %d", &r.status) != 1 || !sep) {
        r.status = -1;
        free(buf);
        return r;
    }
    r.len = n - (size_t)(sep + 4 - buf);
    r.body = malloc(r.len + 1);
    memcpy(r.body, sep + 4, r.len + 1);
    free(buf);
    return r;
}

static reply post(int port, const char *path, const char *body) { return http(port, "POST", path, body, strlen(body)); }

/* The floats of the array after the n-th "embedding": in a response. */
static int embedding_at(const char *body, int n, float *out, int dim) {
    const char *p = body;
    for (int i = 0; i <= n; i++) {
        p = strstr(p, "\"embedding\": [");
        if (!p) return 0;
        p += 14;
    }
    for (int k = 0; k < dim; k++) {
        char *end;
        out[k] = strtof(p, &end);
        if (end == p) return 0;
        p = end;
        while (*p == ',' || *p == ' ') p++;
    }
    return *p == ']';
}

static char *file_b64(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *d = malloc((size_t)n);
    if (fread(d, 1, (size_t)n, f) != (size_t)n) n = 0;
    fclose(f);
    static const char al[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    char *o = malloc((size_t)n / 3 * 4 + 8), *w = o;
    for (long i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)d[i] << 16 | (i + 1 < n ? (uint32_t)d[i + 1] << 8 : 0) | (i + 2 < n ? d[i + 2] : 0);
        *w++ = al[v >> 18];
        *w++ = al[(v >> 12) & 63];
        *w++ = i + 1 < n ? al[(v >> 6) & 63] : '=';
        *w++ = i + 2 < n ? al[v & 63] : '=';
    }
    *w = 0;
    free(d);
    return o;
}

typedef struct client {
    int port, id, dim;
    const char *body;
    const float *want;     /* [2, dim]: a text's and an image's embedding */
    int ok;
} client;

static void *client_run(void *arg) {
    client *c = arg;
    c->ok = 1;
    for (int round = 0; round < 3; round++) {
        reply r = post(c->port, "/v1/embeddings", c->body);
        float got[2][64];
        if (r.status != 200 || !embedding_at(r.body, 0, got[0], c->dim) || !embedding_at(r.body, 1, got[1], c->dim) ||
            max_abs_diff(got[0], c->want, (size_t)c->dim) > 1e-6f ||
            max_abs_diff(got[1], c->want + c->dim, (size_t)c->dim) > 1e-6f)
            c->ok = 0;
        free(r.body);
    }
    return NULL;
}

static void log_quiet(void *user, int level, const char *line) {
    (void)user;
    if (level >= MC_LOG_WARN) fprintf(stderr, "server: %s\n", line);
}

static void test_server(void) {
    mc_error err;
    mc_model_params mp = mc_model_default_params();
    mp.vocab_path = fixture("tokenizer/bpe_simple_vocab_16e6.txt.gz");
    mc_model *m = NULL;
    CHECK(mc_model_load(fixture("models/oc_mobileclip2_s0"), &mp, &m, &err) == MC_OK, "model: %s", err.message);
    if (!m) return;
    mc_model_info info;
    mc_model_get_info(m, &info);
    int D = info.embed_dim;

    /* the oracle: the same inputs through a context directly */
    mc_context_params cp = mc_context_default_params();
    cp.n_threads = 1;
    mc_context *ctx;
    CHECK(mc_context_new(m, &cp, &ctx, &err) == MC_OK, "context");
    float want[2][64];
    int32_t ids[MC_CONTEXT_LENGTH];
    mc_tokenizer_encode(mc_model_tokenizer(m), "a photo of a cat", MC_CONTEXT_LENGTH, ids, &err);
    mc_encode_text(ctx, ids, 1, 1, want[0]);
    float *pix = malloc((size_t)3 * info.image_size * info.image_size * sizeof(float));
    CHECK(mc_image_preprocess_file(fixture("images/chelsea.png"), &info.preprocess, pix, &err) == MC_OK, "pixels");
    mc_encode_image(ctx, pix, 1, 1, want[1]);

    mc_server_params sp = mc_server_default_params();
    sp.port = 0;
    sp.pool.n_workers = 2;
    sp.pool.max_batch = 4;
    sp.limits.max_inputs = 6;
    sp.limits.max_body_bytes = (size_t)2 << 20;
    sp.limits.max_image_pixels = 1000 * 1000;
    sp.model_name = "s0-fixture";
    sp.log = log_quiet;
    mc_server *srv = NULL;
    CHECK(mc_server_start(m, &sp, &srv, &err) == MC_OK, "server: %s", err.message);
    if (!srv) goto out;
    int port = mc_server_port(srv);
    CHECK(port > 0, "a port");

    reply r = http(port, "GET", "/", "", 0);
    CHECK(r.status == 200 && r.body && strstr(r.body, "<title>") && strstr(r.body, "</html>"), "the page");
    free(r.body);
    r = http(port, "GET", "/health", "", 0);
    CHECK(r.status == 200 && strstr(r.body, "\"status\": \"ok\"") && strstr(r.body, "\"name\": \"s0-fixture\""),
          "health: %s", r.body);
    free(r.body);

    char *img = file_b64(fixture("images/chelsea.png"));
    size_t blen = strlen(img) + 256;
    char *body = malloc(blen);
    snprintf(body, blen, "{\"model\": \"s0-fixture\", \"input\": [\"a photo of a cat\", {\"image\": \"data:image/png;base64,%s\"}]}", img);
    r = post(port, "/v1/embeddings", body);
    float got[2][64];
    CHECK(r.status == 200 && embedding_at(r.body, 0, got[0], D) && embedding_at(r.body, 1, got[1], D), "embeddings: %d", r.status);
    CHECK(max_abs_diff(got[0], want[0], (size_t)D) <= 1e-6f, "text embedding = mc_encode_text");
    CHECK(max_abs_diff(got[1], want[1], (size_t)D) <= 1e-6f, "image embedding = mc_encode_image");
    CHECK(r.body && strstr(r.body, "\"model\": \"s0-fixture\"") && strstr(r.body, "\"index\": 1"), "response fields");
    free(r.body);

    /* several clients at once */
    pthread_t th[4];
    client cl[4];
    for (int i = 0; i < 4; i++) {
        cl[i] = (client){port, i, D, body, &want[0][0], 0};
        float *w = malloc(2 * (size_t)D * sizeof(float));
        memcpy(w, want[0], (size_t)D * sizeof(float));
        memcpy(w + D, want[1], (size_t)D * sizeof(float));
        cl[i].want = w;
        pthread_create(&th[i], NULL, client_run, &cl[i]);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        CHECK(cl[i].ok, "concurrent client %d got the same embeddings", i);
        free((void *)cl[i].want);
    }

    /* classification: the probabilities are a softmax over the labels */
    snprintf(body, blen, "{\"image\": \"%s\", \"labels\": [\"cat\", \"dog\", \"car\"], \"top_k\": 3}", img);
    r = post(port, "/v1/classify", body);
    double psum = 0;
    int nl = 0;
    for (const char *p = r.body; p && (p = strstr(p, "\"probability\": ")); p += 15, nl++) psum += atof(p + 15);
    CHECK(r.status == 200 && nl == 3 && fabs(psum - 1) < 1e-5, "classify: %d, %d labels, sum %g", r.status, nl, psum);
    free(r.body);

    /* bad requests: 4xx with a JSON error, and the server goes on */
    struct { const char *method, *path, *body; int http; } bad[] = {
        {"POST", "/v1/embeddings", "{\"input\": [\"a\"", 400},
        {"POST", "/v1/embeddings", "{\"input\": [{\"image\": \"@@@@\"}]}", 400},
        {"POST", "/v1/embeddings", "{\"input\": [{\"image\": \"bm90IGFuIGltYWdl\"}]}", 400},   /* "not an image" */
        {"POST", "/v1/embeddings", "{\"input\": [\"1\", \"2\", \"3\", \"4\", \"5\", \"6\", \"7\"]}", 413},
        {"POST", "/v1/classify", "{\"image\": \"Zm9v\"}", 400},
        {"GET", "/v1/embeddings", "", 405},
        {"POST", "/nowhere", "{}", 404},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        r = http(port, bad[i].method, bad[i].path, bad[i].body, strlen(bad[i].body));
        CHECK(r.status == bad[i].http && r.body && strstr(r.body, "{\"error\": {\"message\": "), "%s %s %s: %d %s",
              bad[i].method, bad[i].path, bad[i].body, r.status, r.body ? r.body : "");
        free(r.body);
    }
    /* an image over the pixel limit: 1100 x 1000 */
    mc_image big = {1100, 1000, calloc((size_t)1100 * 1000 * 3, 1)};
    char bigpath[] = "/tmp/mc_test_serve_XXXXXX";
    int bfd = mkstemp(bigpath);
    if (bfd >= 0) close(bfd);
    CHECK(mc_image_write_png(bigpath, &big, &err) == MC_OK, "write a large PNG");
    mc_image_free(&big);
    char *bigb64 = file_b64(bigpath);
    remove(bigpath);
    char *bigbody = malloc(strlen(bigb64) + 64);
    sprintf(bigbody, "{\"input\": [{\"image\": \"%s\"}]}", bigb64);
    r = post(port, "/v1/embeddings", bigbody);
    CHECK(r.status == 413 && r.body && strstr(r.body, "exceeds the limit"), "image over the pixel limit: %d", r.status);
    free(r.body);
    free(bigb64);
    free(bigbody);
    /* a body over the limit, declared */
    size_t huge = ((size_t)2 << 20) + 1;
    char *hb = malloc(huge);
    memset(hb, ' ', huge);
    r = http(port, "POST", "/v1/embeddings", hb, huge);
    CHECK(r.status == 413, "body over the limit: %d", r.status);
    free(r.body);
    free(hb);
    r = post(port, "/v1/embeddings", "{\"input\": \"still serving\"}");
    CHECK(r.status == 200, "serving after bad requests: %d", r.status);
    free(r.body);

    mc_server_stop(srv, 5);

    /* an index of three images, served */
    char dir[] = "/tmp/mc_test_serve_idx_XXXXXX";
    CHECK(mkdtemp(dir) != NULL, "temporary folder");
    static const char *names[] = {"chelsea.png", "coffee.png", "hubble_deep_field.jpg"};
    char path[4200];
    for (int i = 0; i < 3; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        char rel[64], target[4096];
        snprintf(rel, sizeof rel, "images/%s", names[i]);
        CHECK(realpath(fixture(rel), target) && symlink(target, path) == 0, "link %s", names[i]);
    }
    char db[4200];
    snprintf(db, sizeof db, "%s/photos.db", dir);
    mc_index *idx = NULL;
    mc_index_params ip = mc_index_default_params();
    ip.readonly = 0;
    ip.create = 1;
    const char *dirs[1] = {dir};
    mc_index_update_params up = mc_index_update_default_params();
    mc_index_update_stats us;
    CHECK(mc_index_open(db, &ip, &idx, &err) == MC_OK && mc_index_update(idx, m, dirs, 1, &up, &us, &err) == MC_OK,
          "index: %s", err.message);
    mc_index_close(idx);
    idx = NULL;
    ip = mc_index_default_params();
    CHECK(mc_index_open(db, &ip, &idx, &err) == MC_OK, "open read-only: %s", err.message);
    sp.index = idx;
    sp.thumbnail_size = 64;
    srv = NULL;
    CHECK(idx && mc_server_start(m, &sp, &srv, &err) == MC_OK, "server with an index: %s", err.message);
    if (srv) {
        port = mc_server_port(srv);
        r = http(port, "GET", "/v1/search?q=a%20photo%20of%20a%20cat&k=2", "", 0);
        CHECK(r.status == 200 && r.body && strstr(r.body, "\"score\": ") && strstr(r.body, "\"id\": "), "search: %d %s",
              r.status, r.body ? r.body : "");
        free(r.body);
        snprintf(body, blen, "{\"image\": \"%s\", \"k\": 1}", img);
        r = post(port, "/v1/search", body);
        long long id = -1;
        const char *idp = r.body ? strstr(r.body, "\"id\": ") : NULL;
        if (idp) id = atoll(idp + 6);
        CHECK(r.status == 200 && r.body && strstr(r.body, "chelsea.png") && id >= 0, "search by image: %s",
              r.body ? r.body : "");
        free(r.body);
        char url[64];
        snprintf(url, sizeof url, "/v1/images/%lld", id);
        r = http(port, "GET", url, "", 0);
        FILE *f = fopen(fixture("images/chelsea.png"), "rb");
        char *want_bytes = malloc(r.len + 1);
        size_t got_n = f ? fread(want_bytes, 1, r.len + 1, f) : 0;
        if (f) fclose(f);
        CHECK(r.status == 200 && got_n == r.len && !memcmp(want_bytes, r.body, r.len), "image bytes: %d", r.status);
        free(want_bytes);
        free(r.body);
        snprintf(url, sizeof url, "/v1/thumbnails/%lld", id);
        for (int round = 0; round < 2; round++) {   /* made, then from the cache; 451 x 300 -> 64 x 43 */
            r = http(port, "GET", url, "", 0);
            mc_image tn = {0};
            CHECK(r.status == 200 && mc_image_load_memory(r.body, r.len, 0, &tn, &err) == MC_OK && tn.width == 64 &&
                  tn.height == 43 && (unsigned char)r.body[0] == 0xFF, "thumbnail (round %d): %d %dx%d", round, r.status,
                  tn.width, tn.height);
            mc_image_free(&tn);
            free(r.body);
        }
        static const char *missing[] = {"/v1/images/99999", "/v1/thumbnails/99999", "/v1/images/x", "/v1/images/",
                                        "/v1/images/%2e%2e%2fetc%2fpasswd"};
        for (size_t i = 0; i < sizeof missing / sizeof missing[0]; i++) {
            r = http(port, "GET", missing[i], "", 0);
            CHECK(r.status == 404 && r.body && strstr(r.body, "\"error\""), "%s: %d", missing[i], r.status);
            free(r.body);
        }
        mc_server_stop(srv, 5);
    }
    mc_index_close(idx);
    for (int i = 0; i < 3; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        remove(path);
    }
    char side[4300];
    snprintf(side, sizeof side, "%s-wal", db);
    remove(side);
    snprintf(side, sizeof side, "%s-shm", db);
    remove(side);
    remove(db);
    rmdir(dir);
    free(img);
    free(body);
out:
    free(pix);
    mc_context_free(ctx);
    mc_model_free(m);
}

int main(void) {
    test_b64();
    test_requests();
    test_server();
    return test_summary("test_serve");
}
