/*
 * core/json.c - strict JSON parser (see json.h).  Recursive descent with a depth
 * limit; strings are decoded to UTF-8 (\u escapes, surrogate pairs).
 */
#include "core/json.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    const char *p;
    const char *end;
    const char *start;
    mc_error *err;
} jparser;

static mc_status jfail(jparser *ps, const char *what) {
    return mc_fail(ps->err, MC_ERR_FORMAT, "JSON: %s at byte %zu", what,
                   (size_t)(ps->p - ps->start));
}

static void skip_ws(jparser *ps) {
    while (ps->p < ps->end && (*ps->p == ' ' || *ps->p == '\t' || *ps->p == '\n' || *ps->p == '\r'))
        ps->p++;
}

static void json_free_node(mc_json *v) {
    if (!v) return;
    free(v->string);
    if (v->type == MC_JSON_ARRAY || v->type == MC_JSON_OBJECT) {
        for (size_t i = 0; i < v->len; i++) {
            json_free_node(&v->items[i]);
            if (v->keys) free(v->keys[i]);
        }
        free(v->items);
        free(v->keys);
    }
}

void mc_json_free(mc_json *root) {
    if (!root) return;
    json_free_node(root);
    free(root);
}

static int hexval(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

static bool read_hex4(jparser *ps, unsigned *out) {
    if (ps->end - ps->p < 4) return false;
    unsigned v = 0;
    for (int i = 0; i < 4; i++) {
        int h = hexval(ps->p[i]);
        if (h < 0) return false;
        v = v * 16 + (unsigned)h;
    }
    ps->p += 4;
    *out = v;
    return true;
}

static size_t put_utf8(char *o, unsigned cp) {
    if (cp < 0x80) { o[0] = (char)cp; return 1; }
    if (cp < 0x800) { o[0] = (char)(0xC0 | (cp >> 6)); o[1] = (char)(0x80 | (cp & 0x3F)); return 2; }
    if (cp < 0x10000) {
        o[0] = (char)(0xE0 | (cp >> 12)); o[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        o[2] = (char)(0x80 | (cp & 0x3F)); return 3;
    }
    o[0] = (char)(0xF0 | (cp >> 18)); o[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    o[2] = (char)(0x80 | ((cp >> 6) & 0x3F)); o[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

/* ps->p at the opening quote. Output is never longer than the input span. */
static mc_status parse_string(jparser *ps, char **out, size_t *out_len) {
    ps->p++;
    const char *s = ps->p;
    while (s < ps->end && *s != '"') {
        if (*s == '\\') s++;
        s++;
    }
    if (s >= ps->end) return jfail(ps, "unterminated string");
    size_t cap = (size_t)(s - ps->p) + 1;
    char *buf = malloc(cap);
    if (!buf) return mc_fail(ps->err, MC_ERR_NOMEM, "JSON: out of memory");
    size_t n = 0;
    while (ps->p < ps->end && *ps->p != '"') {
        unsigned char c = (unsigned char)*ps->p;
        if (c < 0x20) { free(buf); return jfail(ps, "control character in string"); }
        if (c != '\\') { buf[n++] = (char)c; ps->p++; continue; }
        ps->p++;
        if (ps->p >= ps->end) { free(buf); return jfail(ps, "bad escape"); }
        char e = *ps->p++;
        switch (e) {
        case '"': buf[n++] = '"'; break;
        case '\\': buf[n++] = '\\'; break;
        case '/': buf[n++] = '/'; break;
        case 'b': buf[n++] = '\b'; break;
        case 'f': buf[n++] = '\f'; break;
        case 'n': buf[n++] = '\n'; break;
        case 'r': buf[n++] = '\r'; break;
        case 't': buf[n++] = '\t'; break;
        case 'u': {
            unsigned cp;
            if (!read_hex4(ps, &cp)) { free(buf); return jfail(ps, "bad \\u escape"); }
            if (cp >= 0xD800 && cp < 0xDC00 && ps->end - ps->p >= 6 && ps->p[0] == '\\' &&
                ps->p[1] == 'u') {
                const char *save = ps->p;
                unsigned lo;
                ps->p += 2;
                if (read_hex4(ps, &lo) && lo >= 0xDC00 && lo < 0xE000)
                    cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                else
                    ps->p = save;
            }
            /* a lone surrogate is kept as U+FFFD */
            if (cp >= 0xD800 && cp < 0xE000) cp = 0xFFFD;
            /* "\uXXXX" is 6 bytes of input and at most 4 of output */
            n += put_utf8(buf + n, cp);
            break;
        }
        default: free(buf); return jfail(ps, "bad escape");
        }
    }
    ps->p++; /* closing quote */
    buf[n] = 0;
    *out = buf;
    *out_len = n;
    return MC_OK;
}

static mc_status parse_value(jparser *ps, mc_json *v, int depth);

static mc_status grow(jparser *ps, mc_json *v, size_t *cap, bool with_keys) {
    if (v->len < *cap) return MC_OK;
    size_t nc = *cap ? *cap * 2 : 8;
    mc_json *ni = realloc(v->items, nc * sizeof *ni);
    if (!ni) return mc_fail(ps->err, MC_ERR_NOMEM, "JSON: out of memory");
    v->items = ni;
    if (with_keys) {
        char **nk = realloc(v->keys, nc * sizeof *nk);
        if (!nk) return mc_fail(ps->err, MC_ERR_NOMEM, "JSON: out of memory");
        v->keys = nk;
    }
    *cap = nc;
    return MC_OK;
}

static mc_status parse_value(jparser *ps, mc_json *v, int depth) {
    memset(v, 0, sizeof *v);
    if (depth > MC_JSON_MAX_DEPTH) return jfail(ps, "nesting too deep");
    skip_ws(ps);
    if (ps->p >= ps->end) return jfail(ps, "unexpected end");
    char c = *ps->p;
    mc_status st;
    if (c == '{' || c == '[') {
        bool obj = c == '{';
        v->type = obj ? MC_JSON_OBJECT : MC_JSON_ARRAY;
        size_t cap = 0;
        ps->p++;
        skip_ws(ps);
        if (ps->p < ps->end && *ps->p == (obj ? '}' : ']')) { ps->p++; return MC_OK; }
        for (;;) {
            if ((st = grow(ps, v, &cap, obj)) != MC_OK) return st;
            skip_ws(ps);
            char *key = NULL;
            size_t klen;
            if (obj) {
                if (ps->p >= ps->end || *ps->p != '"') return jfail(ps, "expected key");
                if ((st = parse_string(ps, &key, &klen)) != MC_OK) return st;
                skip_ws(ps);
                if (ps->p >= ps->end || *ps->p != ':') { free(key); return jfail(ps, "expected ':'"); }
                ps->p++;
                v->keys[v->len] = key;
            }
            st = parse_value(ps, &v->items[v->len], depth + 1);
            v->len++;
            if (st != MC_OK) return st;
            skip_ws(ps);
            if (ps->p >= ps->end) return jfail(ps, "unexpected end");
            if (*ps->p == ',') { ps->p++; continue; }
            if (*ps->p == (obj ? '}' : ']')) { ps->p++; return MC_OK; }
            return jfail(ps, "expected ',' or closing bracket");
        }
    }
    if (c == '"') {
        v->type = MC_JSON_STRING;
        return parse_string(ps, &v->string, &v->len);
    }
    if (ps->end - ps->p >= 4 && !memcmp(ps->p, "true", 4)) { v->type = MC_JSON_BOOL; v->boolean = true; ps->p += 4; return MC_OK; }
    if (ps->end - ps->p >= 5 && !memcmp(ps->p, "false", 5)) { v->type = MC_JSON_BOOL; ps->p += 5; return MC_OK; }
    if (ps->end - ps->p >= 4 && !memcmp(ps->p, "null", 4)) { v->type = MC_JSON_NULL; ps->p += 4; return MC_OK; }
    /* number: validate the grammar, then strtod on a bounded copy */
    const char *s = ps->p;
    const char *q = s;
    if (q < ps->end && *q == '-') q++;
    if (q >= ps->end || !(*q >= '0' && *q <= '9')) {
        /* non-standard but written by Python's json: NaN, Infinity, -Infinity */
        const char *w = (q < ps->end && *s == '-') ? q : s;
        if (ps->end - w >= 8 && !memcmp(w, "Infinity", 8)) {
            v->type = MC_JSON_NUMBER; v->number = (*s == '-') ? -INFINITY : INFINITY;
            ps->p = w + 8; return MC_OK;
        }
        if (w == s && ps->end - s >= 3 && !memcmp(s, "NaN", 3)) {
            v->type = MC_JSON_NUMBER; v->number = NAN; ps->p = s + 3; return MC_OK;
        }
        return jfail(ps, "unexpected character");
    }
    if (*q == '0') q++;
    else while (q < ps->end && *q >= '0' && *q <= '9') q++;
    if (q < ps->end && *q == '.') {
        q++;
        if (q >= ps->end || !(*q >= '0' && *q <= '9')) return jfail(ps, "bad number");
        while (q < ps->end && *q >= '0' && *q <= '9') q++;
    }
    if (q < ps->end && (*q == 'e' || *q == 'E')) {
        q++;
        if (q < ps->end && (*q == '+' || *q == '-')) q++;
        if (q >= ps->end || !(*q >= '0' && *q <= '9')) return jfail(ps, "bad number");
        while (q < ps->end && *q >= '0' && *q <= '9') q++;
    }
    size_t n = (size_t)(q - s);
    if (n > 512) return jfail(ps, "number too long");
    char tmp[520];
    memcpy(tmp, s, n);
    tmp[n] = 0;
    v->type = MC_JSON_NUMBER;
    v->number = strtod(tmp, NULL);
    ps->p = q;
    return MC_OK;
}

mc_status mc_json_parse(const char *text, size_t len, mc_json **out, mc_error *err) {
    *out = NULL;
    mc_json *root = calloc(1, sizeof *root);
    if (!root) return mc_fail(err, MC_ERR_NOMEM, "JSON: out of memory");
    jparser ps = {text, text + len, text, err};
    mc_status st = parse_value(&ps, root, 0);
    if (st == MC_OK) {
        skip_ws(&ps);
        if (ps.p != ps.end) st = jfail(&ps, "trailing characters");
    }
    if (st != MC_OK) { mc_json_free(root); return st; }
    *out = root;
    return MC_OK;
}

const mc_json *mc_json_get(const mc_json *obj, const char *key) {
    if (!obj || obj->type != MC_JSON_OBJECT) return NULL;
    for (size_t i = 0; i < obj->len; i++)
        if (!strcmp(obj->keys[i], key)) return &obj->items[i];
    return NULL;
}

const mc_json *mc_json_path(const mc_json *obj, const char *path) {
    char key[256];
    while (obj && *path) {
        const char *dot = strchr(path, '.');
        size_t n = dot ? (size_t)(dot - path) : strlen(path);
        if (n >= sizeof key) return NULL;
        memcpy(key, path, n);
        key[n] = 0;
        obj = mc_json_get(obj, key);
        path += n + (dot ? 1 : 0);
    }
    return obj;
}

double mc_json_number(const mc_json *v, double dflt) {
    return (v && v->type == MC_JSON_NUMBER) ? v->number : dflt;
}
int mc_json_int(const mc_json *v, int dflt) {
    if (!v || v->type != MC_JSON_NUMBER || !(v->number > -2147483648.0 && v->number < 2147483648.0))
        return dflt;
    return (int)v->number;
}
bool mc_json_bool(const mc_json *v, bool dflt) {
    return (v && v->type == MC_JSON_BOOL) ? v->boolean : dflt;
}
const char *mc_json_str(const mc_json *v, const char *dflt) {
    return (v && v->type == MC_JSON_STRING) ? v->string : dflt;
}

void mc_json_write_str(FILE *f, const char *s) {
    fputc('"', f);
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') fprintf(f, "\\%c", c);
        else if (c < 0x20) fprintf(f, "\\u%04x", c);
        else fputc(c, f);
    }
    fputc('"', f);
}
