/*
 * serve/request.c - request bodies parsed and checked, response bodies
 * written (see request.h).
 */
#include "serve/request.h"
#include "serve/b64.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

mc_serve_limits mc_serve_default_limits(void) {
    mc_serve_limits l;
    memset(&l, 0, sizeof l);
    l.max_body_bytes = (size_t)32 << 20;
    l.max_image_bytes = (size_t)16 << 20;
    l.max_image_pixels = (size_t)40 * 1000 * 1000;
    l.max_text_bytes = (size_t)16 << 10;
    l.max_inputs = 64;
    l.max_labels = 1024;
    l.max_k = 1000;
    l.request_timeout_s = 30;
    l.connection_timeout_s = 30;
    return l;
}

/* ---- parsing ---- */

static mc_status bad(int *http, int code, mc_error *err, const char *fmt, ...) MC_PRINTF(4, 5);
static mc_status bad(int *http, int code, mc_error *err, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    mc_failv(err, code == 413 ? MC_ERR_INVALID_ARG : MC_ERR_FORMAT, fmt, ap);
    va_end(ap);
    *http = code;
    return code == 413 ? MC_ERR_INVALID_ARG : MC_ERR_FORMAT;
}

static mc_status take_text(mc_serve_input *in, const mc_json *v, const char *what, const mc_serve_limits *lim,
                           int *http, mc_error *err) {
    if (!v || v->type != MC_JSON_STRING) return bad(http, 400, err, "%s: expected a string", what);
    if (v->len > lim->max_text_bytes)
        return bad(http, 413, err, "%s: text of %zu bytes exceeds the limit of %zu bytes", what, v->len,
                   lim->max_text_bytes);
    in->kind = MC_INPUT_TEXT;
    in->text = v->string;
    in->len = v->len;
    return MC_OK;
}

static mc_status take_image(mc_serve_input *in, const mc_json *v, const char *what, const mc_serve_limits *lim,
                            int *http, mc_error *err) {
    if (!v || v->type != MC_JSON_STRING)
        return bad(http, 400, err, "%s: expected an image as a base64 string or a data URL", what);
    mc_error e;
    size_t plen;
    const char *p = mc_data_url_payload(v->string, v->len, &plen, &e);
    if (!p) return bad(http, 400, err, "%s: %s", what, e.message);
    if (plen == 0) return bad(http, 400, err, "%s: empty image", what);
    /* the bound before anything is decoded */
    if (mc_b64_decoded_max(plen) - 1 > lim->max_image_bytes)
        return bad(http, 413, err, "%s: image of about %zu bytes exceeds the limit of %zu bytes", what,
                   mc_b64_decoded_max(plen) - 1, lim->max_image_bytes);
    size_t n;
    mc_status st = mc_b64_decode(p, plen, &in->image, &n, &e);
    if (st == MC_ERR_NOMEM) { *http = 503; return mc_fail(err, st, "%s: %s", what, e.message); }
    if (st != MC_OK) return bad(http, 400, err, "%s: %s", what, e.message);
    in->kind = MC_INPUT_IMAGE;
    in->len = n;
    return MC_OK;
}

static mc_status alloc_inputs(mc_serve_request *req, size_t n, const mc_serve_limits *lim, int *http, mc_error *err) {
    if (n == 0) return bad(http, 400, err, "no inputs");
    if (n > (size_t)lim->max_inputs)
        return bad(http, 413, err, "%zu inputs exceed the limit of %d per request", n, lim->max_inputs);
    req->inputs = calloc(n, sizeof *req->inputs);
    if (!req->inputs) { *http = 503; return mc_fail(err, MC_ERR_NOMEM, "out of memory"); }
    return MC_OK;
}

/* "k" / "top_k": absent gives dflt; else an integer in 1..max */
static mc_status take_count(const mc_json *root, const char *key, int dflt, int max, int *out, int *http,
                            mc_error *err) {
    const mc_json *v = mc_json_get(root, key);
    *out = dflt;
    if (!v) return MC_OK;
    if (v->type != MC_JSON_NUMBER || !(v->number >= 1))
        return bad(http, 400, err, "\"%s\": expected an integer >= 1", key);
    if (v->number > max) return bad(http, 413, err, "\"%s\": %g exceeds the limit of %d", key, v->number, max);
    if (v->number != (double)(int)v->number) return bad(http, 400, err, "\"%s\": expected an integer", key);
    *out = (int)v->number;
    return MC_OK;
}

static mc_status parse_embeddings(mc_serve_request *req, const mc_serve_limits *lim, int *http, mc_error *err) {
    const mc_json *in = mc_json_get(req->root, "input");
    if (!in) return bad(http, 400, err, "missing \"input\"");
    const mc_json *fmt = mc_json_get(req->root, "encoding_format");
    if (fmt && (fmt->type != MC_JSON_STRING || strcmp(fmt->string, "float") != 0))
        return bad(http, 400, err, "\"encoding_format\": only \"float\" is supported");
    if (in->type == MC_JSON_STRING) {
        mc_status st = alloc_inputs(req, 1, lim, http, err);
        if (st) return st;
        req->n_inputs = 1;
        return take_text(&req->inputs[0], in, "input", lim, http, err);
    }
    if (in->type != MC_JSON_ARRAY)
        return bad(http, 400, err, "\"input\": expected a string or an array");
    mc_status st = alloc_inputs(req, in->len, lim, http, err);
    if (st) return st;
    for (size_t i = 0; i < in->len; i++) {
        const mc_json *e = &in->items[i];
        char what[48];
        snprintf(what, sizeof what, "input[%zu]", i);
        req->n_inputs = (int)i + 1;
        if (e->type == MC_JSON_STRING) {
            st = take_text(&req->inputs[i], e, what, lim, http, err);
        } else if (e->type == MC_JSON_OBJECT && e->len == 1 && mc_json_get(e, "text")) {
            st = take_text(&req->inputs[i], mc_json_get(e, "text"), what, lim, http, err);
        } else if (e->type == MC_JSON_OBJECT && e->len == 1 && mc_json_get(e, "image")) {
            st = take_image(&req->inputs[i], mc_json_get(e, "image"), what, lim, http, err);
        } else {
            st = bad(http, 400, err, "%s: expected a text string, {\"text\": ...} or {\"image\": ...}", what);
        }
        if (st) return st;
    }
    return MC_OK;
}

static mc_status take_strings(const mc_json *v, const char *key, const mc_json ***out, int *n, int max,
                              size_t max_len, int *http, mc_error *err) {
    if (v->type != MC_JSON_ARRAY) return bad(http, 400, err, "\"%s\": expected an array of strings", key);
    if (v->len == 0) return bad(http, 400, err, "\"%s\": empty", key);
    if (v->len > (size_t)max)
        return bad(http, 413, err, "\"%s\": %zu entries exceed the limit of %d", key, v->len, max);
    *out = calloc(v->len, sizeof **out);
    if (!*out) { *http = 503; return mc_fail(err, MC_ERR_NOMEM, "out of memory"); }
    for (size_t i = 0; i < v->len; i++) {
        const mc_json *s = &v->items[i];
        if (s->type != MC_JSON_STRING || s->len == 0)
            return bad(http, 400, err, "\"%s\"[%zu]: expected a non-empty string", key, i);
        if (s->len > max_len)
            return bad(http, 413, err, "\"%s\"[%zu]: %zu bytes exceed the limit of %zu", key, i, s->len, max_len);
        if (strlen(s->string) != s->len) return bad(http, 400, err, "\"%s\"[%zu]: holds a NUL character", key, i);
        (*out)[i] = s;
    }
    *n = (int)v->len;
    return MC_OK;
}

static mc_status parse_classify(mc_serve_request *req, const mc_serve_limits *lim, int *http, mc_error *err) {
    const mc_json *one = mc_json_get(req->root, "image"), *many = mc_json_get(req->root, "images");
    if (!!one == !!many) return bad(http, 400, err, "expected one of \"image\" or \"images\"");
    mc_status st;
    if (one) {
        if ((st = alloc_inputs(req, 1, lim, http, err))) return st;
        req->n_inputs = 1;
        if ((st = take_image(&req->inputs[0], one, "image", lim, http, err))) return st;
    } else {
        if (many->type != MC_JSON_ARRAY) return bad(http, 400, err, "\"images\": expected an array");
        if ((st = alloc_inputs(req, many->len, lim, http, err))) return st;
        for (size_t i = 0; i < many->len; i++) {
            char what[48];
            snprintf(what, sizeof what, "images[%zu]", i);
            req->n_inputs = (int)i + 1;
            if ((st = take_image(&req->inputs[i], &many->items[i], what, lim, http, err))) return st;
        }
    }
    const mc_json *labels = mc_json_get(req->root, "labels");
    if (!labels) return bad(http, 400, err, "missing \"labels\"");
    if ((st = take_strings(labels, "labels", &req->labels, &req->n_labels, lim->max_labels, lim->max_text_bytes,
                           http, err)))
        return st;
    const mc_json *tmpl = mc_json_get(req->root, "templates");
    if (tmpl) {
        if ((st = take_strings(tmpl, "templates", &req->templates, &req->n_templates, lim->max_labels,
                               lim->max_text_bytes, http, err)))
            return st;
        for (int i = 0; i < req->n_templates; i++)
            if (!strstr(req->templates[i]->string, "{}"))
                return bad(http, 400, err, "\"templates\"[%d]: no {} for the label", i);
        if ((long)req->n_labels * req->n_templates > lim->max_labels)
            return bad(http, 413, err, "%d labels x %d templates exceed the limit of %d texts", req->n_labels,
                       req->n_templates, lim->max_labels);
    }
    if ((st = take_count(req->root, "top_k", 5, lim->max_labels, &req->k, http, err))) return st;
    if (req->k > req->n_labels) req->k = req->n_labels;
    return MC_OK;
}

static mc_status parse_search(mc_serve_request *req, const mc_serve_limits *lim, int *http, mc_error *err) {
    const mc_json *img = mc_json_get(req->root, "image"), *txt = mc_json_get(req->root, "text");
    if (!!img == !!txt) return bad(http, 400, err, "expected one of \"image\" or \"text\"");
    mc_status st = alloc_inputs(req, 1, lim, http, err);
    if (st) return st;
    req->n_inputs = 1;
    st = img ? take_image(&req->inputs[0], img, "image", lim, http, err)
             : take_text(&req->inputs[0], txt, "text", lim, http, err);
    if (st) return st;
    return take_count(req->root, "k", 10, lim->max_k, &req->k, http, err);
}

mc_status mc_serve_parse(mc_serve_req_type type, const char *body, size_t len, const mc_serve_limits *lim,
                         mc_serve_request *req, int *http, mc_error *err) {
    memset(req, 0, sizeof *req);
    req->type = type;
    *http = 200;
    if (len > lim->max_body_bytes)
        return bad(http, 413, err, "body of %zu bytes exceeds the limit of %zu bytes", len, lim->max_body_bytes);
    if (len == 0) return bad(http, 400, err, "empty body (expected a JSON object)");
    mc_error e;
    mc_status st = mc_json_parse(body, len, &req->root, &e);
    if (st == MC_ERR_NOMEM) { *http = 503; return mc_fail(err, st, "%s", e.message); }
    if (st != MC_OK) return bad(http, 400, err, "malformed JSON: %s", e.message);
    if (req->root->type != MC_JSON_OBJECT) st = bad(http, 400, err, "expected a JSON object");
    /* "model": one model is served; a string is accepted and not compared */
    const mc_json *model = mc_json_get(req->root, "model");
    if (!st && model && model->type != MC_JSON_STRING) st = bad(http, 400, err, "\"model\": expected a string");
    if (!st) {
        switch (type) {
        case MC_REQ_EMBEDDINGS: st = parse_embeddings(req, lim, http, err); break;
        case MC_REQ_CLASSIFY: st = parse_classify(req, lim, http, err); break;
        case MC_REQ_SEARCH: st = parse_search(req, lim, http, err); break;
        default: st = bad(http, 400, err, "unknown request type");
        }
    }
    if (st) mc_serve_request_free(req);
    return st;
}

void mc_serve_request_free(mc_serve_request *req) {
    if (!req) return;
    for (int i = 0; i < req->n_inputs; i++) free(req->inputs[i].image);
    free(req->inputs);
    free(req->labels);
    free(req->templates);
    mc_json_free(req->root);
    memset(req, 0, sizeof *req);
}

long mc_serve_parse_count(const char *s, long max) {
    if (!s || !*s) return -1;
    long v = 0;
    for (const char *p = s; *p; p++) {
        if (*p < '0' || *p > '9') return -1;
        v = v * 10 + (*p - '0');
        if (v > max) return -1;
    }
    return v >= 1 ? v : -1;
}

/* ---- response bodies ---- */

static int sbuf_reserve(mc_sbuf *b, size_t n) {
    if (b->oom) return 0;
    size_t need;
    if (!mc_size_add(b->len, n + 1, &need)) { b->oom = 1; return 0; }
    if (need <= b->cap) return 1;
    size_t nc = b->cap ? b->cap : 256;
    while (nc < need) {
        if (nc > SIZE_MAX / 2) { b->oom = 1; return 0; }
        nc *= 2;
    }
    char *np = realloc(b->p, nc);
    if (!np) { b->oom = 1; return 0; }
    b->p = np;
    b->cap = nc;
    return 1;
}

void mc_sbuf_put(mc_sbuf *b, const char *s, size_t n) {
    if (!sbuf_reserve(b, n)) return;
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = 0;
}

void mc_sbuf_puts(mc_sbuf *b, const char *s) { mc_sbuf_put(b, s, strlen(s)); }

void mc_sbuf_printf(mc_sbuf *b, const char *fmt, ...) {
    char tmp[256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n < 0) { b->oom = 1; return; }
    if ((size_t)n < sizeof tmp) { mc_sbuf_put(b, tmp, (size_t)n); return; }
    if (!sbuf_reserve(b, (size_t)n)) return;
    va_start(ap, fmt);
    vsnprintf(b->p + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

/* length of the valid UTF-8 sequence at s[0..n), 0 when invalid */
static size_t utf8_seq(const unsigned char *s, size_t n) {
    unsigned c = s[0];
    size_t len;
    unsigned min;
    if (c < 0x80) return 1;
    if (c >= 0xC2 && c <= 0xDF) { len = 2; min = 0x80; }
    else if (c >= 0xE0 && c <= 0xEF) { len = 3; min = 0x800; }
    else if (c >= 0xF0 && c <= 0xF4) { len = 4; min = 0x10000; }
    else return 0;
    if (n < len) return 0;
    unsigned cp = c & (0x7F >> len);
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80) return 0;
        cp = (cp << 6) | (s[i] & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
    return len;
}

void mc_sbuf_json_str(mc_sbuf *b, const char *s, size_t n) {
    const unsigned char *u = (const unsigned char *)s;
    mc_sbuf_put(b, "\"", 1);
    size_t i = 0;
    while (i < n) {
        unsigned char c = u[i];
        if (c == '"' || c == '\\') {
            char e[2] = {'\\', (char)c};
            mc_sbuf_put(b, e, 2);
            i++;
        } else if (c < 0x20 || c == 0x7F) {
            mc_sbuf_printf(b, "\\u%04x", c);
            i++;
        } else {
            size_t k = utf8_seq(u + i, n - i);
            if (k == 0) {
                mc_sbuf_puts(b, "\\ufffd");
                i++;
            } else {
                mc_sbuf_put(b, s + i, k);
                i += k;
            }
        }
    }
    mc_sbuf_put(b, "\"", 1);
}

void mc_sbuf_floats(mc_sbuf *b, const float *x, int n) {
    mc_sbuf_put(b, "[", 1);
    for (int i = 0; i < n; i++) mc_sbuf_printf(b, i ? ", %.9g" : "%.9g", x[i]);
    mc_sbuf_put(b, "]", 1);
}

void mc_sbuf_free(mc_sbuf *b) {
    free(b->p);
    memset(b, 0, sizeof *b);
}

static const char *error_type(int http) {
    switch (http) {
    case 400: return "invalid_request";
    case 404: return "not_found";
    case 405: return "method_not_allowed";
    case 413: return "too_large";
    case 415: return "unsupported_media";
    case 503: return "unavailable";
    default: return http >= 500 ? "server_error" : "invalid_request";
    }
}

void mc_sbuf_error(mc_sbuf *b, int http, const char *msg) {
    mc_sbuf_puts(b, "{\"error\": {\"message\": ");
    mc_sbuf_json_str(b, msg, strlen(msg));
    mc_sbuf_printf(b, ", \"type\": \"%s\", \"code\": %d}}\n", error_type(http), http);
}
