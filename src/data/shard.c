/*
 * data/shard.c - shard lists (brace expansion as the braceexpand package does
 * it), webdataset's member grouping, and DataCompDR record decoding (see
 * shard.h).
 */
#include "data/shard.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ================================================================ lists */

#define BRACE_MAX_DEPTH 64
#define BRACE_MAX_BYTES ((size_t)256 << 20)
#define BRACE_DEFAULT_MAX 1000000

typedef struct strvec {
    char **s;
    size_t n, cap;
} strvec;

typedef struct bctx {
    size_t max_count;
    size_t bytes;
    mc_error *err;
    mc_status st;
} bctx;

static void sv_free(strvec *v) {
    for (size_t i = 0; i < v->n; i++) free(v->s[i]);
    free(v->s);
    v->s = NULL;
    v->n = v->cap = 0;
}

static int bfail(bctx *c, mc_status st, const char *fmt, const char *pat, size_t len) {
    if (c->st == MC_OK) {
        c->st = st;
        mc_fail(c->err, st, fmt, (int)(len > 200 ? 200 : len), pat);
    }
    return 0;
}

/* Appends a copy of s[0..len). */
static int sv_push(bctx *c, strvec *v, const char *s, size_t len) {
    if (v->n >= c->max_count) return bfail(c, MC_ERR_INVALID_ARG, "'%.*s': expands to too many names", s, len);
    if (len > BRACE_MAX_BYTES - c->bytes) return bfail(c, MC_ERR_NOMEM, "'%.*s': expansion too large", s, len);
    if (v->n == v->cap) {
        size_t nc = v->cap ? v->cap * 2 : 8;
        char **ns = realloc(v->s, nc * sizeof *ns);
        if (!ns) return bfail(c, MC_ERR_NOMEM, "'%.*s': out of memory", s, len);
        v->s = ns;
        v->cap = nc;
    }
    char *d = malloc(len + 1);
    if (!d) return bfail(c, MC_ERR_NOMEM, "'%.*s': out of memory", s, len);
    memcpy(d, s, len);
    d[len] = 0;
    v->s[v->n++] = d;
    c->bytes += len;
    return 1;
}

/* acc := [a + b for a in acc for b in item] (itertools.product order). */
static int sv_product(bctx *c, strvec *acc, const strvec *item) {
    strvec out = {0};
    size_t cnt;
    if (!mc_size_mul(acc->n, item->n, &cnt) || cnt > c->max_count)
        return bfail(c, MC_ERR_INVALID_ARG, "brace pattern expands to too many names (more than the limit)%.*s", "", 0);
    for (size_t i = 0; i < acc->n; i++) {
        size_t al = strlen(acc->s[i]);
        for (size_t j = 0; j < item->n; j++) {
            size_t bl = strlen(item->s[j]);
            char *tmp = malloc(al + bl + 1);
            if (!tmp) { sv_free(&out); return bfail(c, MC_ERR_NOMEM, "out of memory%.*s", "", 0); }
            memcpy(tmp, acc->s[i], al);
            memcpy(tmp + al, item->s[j], bl);
            int ok = sv_push(c, &out, tmp, al + bl);
            free(tmp);
            if (!ok) { sv_free(&out); return 0; }
        }
    }
    for (size_t i = 0; i < acc->n; i++) c->bytes -= strlen(acc->s[i]);
    sv_free(acc);
    *acc = out;
    return 1;
}

static int sv_append_all(strvec *dst, strvec *src) {
    for (size_t i = 0; i < src->n; i++) {
        if (dst->n == dst->cap) {
            size_t nc = dst->cap ? dst->cap * 2 : 8;
            char **ns = realloc(dst->s, nc * sizeof *ns);
            if (!ns) return 0;
            dst->s = ns;
            dst->cap = nc;
        }
        dst->s[dst->n++] = src->s[i];
        src->s[i] = NULL;
    }
    free(src->s);
    src->s = NULL;
    src->n = src->cap = 0;
    return 1;
}

static int parse_pattern(bctx *c, const char *p, size_t len, int depth, strvec *out);

/* ^(-?\d+)\.\.(-?\d+)(?:\.\.-?(\d+))?$ and the letter form; 1 when matched
 * (out filled), 0 when not a range, -1 on error. */
static int is_digit(char ch) { return ch >= '0' && ch <= '9'; }
static int is_alpha(char ch) { return (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z'); }

static int parse_range(bctx *c, const char *e, size_t len, strvec *out) {
    /* Python's $ also matches before one final newline */
    if (len && e[len - 1] == '\n') len--;
    size_t p = 0;
    const char *a = NULL, *b = NULL, *st = NULL;
    size_t al = 0, bl = 0, stl = 0;
    int letters = 0;
    if (len >= 4 && is_alpha(e[0]) && e[1] == '.' && e[2] == '.' && is_alpha(e[3])) {
        letters = 1;
        a = e; al = 1; b = e + 3; bl = 1; p = 4;
    } else {
        a = e;
        if (p < len && e[p] == '-') p++;
        size_t d0 = p;
        while (p < len && is_digit(e[p])) p++;
        if (p == d0) return 0;
        al = p;
        if (p + 2 > len || e[p] != '.' || e[p + 1] != '.') return 0;
        p += 2;
        b = e + p;
        size_t bstart = p;
        if (p < len && e[p] == '-') p++;
        d0 = p;
        while (p < len && is_digit(e[p])) p++;
        if (p == d0) return 0;
        bl = p - bstart;
    }
    if (p < len) {
        if (p + 2 > len || e[p] != '.' || e[p + 1] != '.') return 0;
        p += 2;
        if (p < len && e[p] == '-') p++;
        st = e + p;
        while (p < len && is_digit(e[p])) p++;
        stl = (size_t)(e + p - st);
        if (stl == 0 || p != len) return 0;
    }
    long long step = 0;
    for (size_t i = 0; i < stl; i++) {
        if (step > 100000000000000000LL) return bfail(c, MC_ERR_INVALID_ARG, "'%.*s': range step too large", e, len) - 1;
        step = step * 10 + (st[i] - '0');
    }
    if (letters) {
        static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
        long long s = strchr(alphabet, a[0]) - alphabet, t = strchr(alphabet, b[0]) - alphabet;
        if (!st) step = 1;
        else if (step == 0)
            return bfail(c, MC_ERR_INVALID_ARG, "'%.*s': slice step cannot be zero", e, len) - 1;
        /* alphabet[s:t+1:step] or alphabet[s:t-1:-step], with Python's slice rules */
        if (s < t) {
            for (long long i = s; i <= t && i < 52; i += step)
                if (!sv_push(c, out, &alphabet[i], 1)) return -1;
        } else {
            long long stop = t - 1;
            if (stop < 0) stop += 52;
            for (long long i = s; i > stop; i -= step)
                if (!sv_push(c, out, &alphabet[i], 1)) return -1;
        }
        return 1;
    }
    long long vals[2];
    const char *nums[2] = {a, b};
    size_t lens[2] = {al, bl};
    int pad = 0;
    for (int k = 0; k < 2; k++) {
        const char *s = nums[k];
        size_t l = lens[k], i = 0;
        int neg = s[0] == '-';
        if (neg) i = 1;
        long long v = 0;
        for (; i < l; i++) {
            if (v > 100000000000000000LL)
                return bfail(c, MC_ERR_INVALID_ARG, "'%.*s': range bound too large", e, len) - 1;
            v = v * 10 + (s[i] - '0');
        }
        vals[k] = neg ? -v : v;
        int is_zero = (l == 1 && s[0] == '0') || (l == 2 && s[0] == '-' && s[1] == '0');
        if (!is_zero && (s[0] == '0' || (l >= 2 && s[0] == '-' && s[1] == '0'))) pad = 1;
    }
    int width = pad ? (int)(al > bl ? al : bl) : 0;
    if (step == 0) step = 1;
    long long s = vals[0], t = vals[1];
    unsigned long long span = s < t ? (unsigned long long)(t - s) : (unsigned long long)(s - t);
    if (span / (unsigned long long)step + 1 > c->max_count)
        return bfail(c, MC_ERR_INVALID_ARG, "'%.*s': range expands to too many names", e, len) - 1;
    char buf[64];
    if (s < t) {
        for (long long i = s; i <= t; i += step) {
            int n = snprintf(buf, sizeof buf, "%0*lld", width, i);
            if (!sv_push(c, out, buf, (size_t)n)) return -1;
            if (t - i < step) break;
        }
    } else {
        for (long long i = s; i >= t; i -= step) {
            int n = snprintf(buf, sizeof buf, "%0*lld", width, i);
            if (!sv_push(c, out, buf, (size_t)n)) return -1;
            if (i - t < step) break;
        }
    }
    return 1;
}

/* A comma sequence; 1 when it is one (out filled), 0 when not, -1 on error. */
static int parse_sequence(bctx *c, const char *q, size_t len, int depth, strvec *out) {
    size_t start = 0, pos = 0;
    int bd = 0, items = 0;
    strvec acc = {0};
    while (pos < len) {
        if (q[pos] == '\\') { pos += 2; continue; }
        if (q[pos] == '{') bd++;
        else if (q[pos] == '}') bd--;
        else if (q[pos] == ',' && bd == 0) {
            items = 1;
            pos++;
            start = pos;
            continue;
        }
        pos++;
    }
    if (bd != 0 || !items) return 0;
    /* second pass: expand each comma-separated part */
    start = pos = 0;
    bd = 0;
    for (;;) {
        int at_end = pos >= len;
        if (!at_end && q[pos] == '\\') { pos += 2; continue; }
        if (!at_end && q[pos] == '{') bd++;
        else if (!at_end && q[pos] == '}') bd--;
        if (at_end || (q[pos] == ',' && bd == 0)) {
            strvec part = {0};
            size_t end = pos > len ? len : pos;
            if (!parse_pattern(c, q + start, end - start, depth + 1, &part) || !sv_append_all(&acc, &part)) {
                sv_free(&part);
                sv_free(&acc);
                if (c->st == MC_OK) bfail(c, MC_ERR_NOMEM, "'%.*s': out of memory", q, len);
                return -1;
            }
            if (acc.n > c->max_count) {
                sv_free(&acc);
                return bfail(c, MC_ERR_INVALID_ARG, "'%.*s': expands to too many names", q, len) - 1;
            }
            if (at_end) break;
            start = pos + 1;
        }
        pos++;
    }
    *out = acc;
    return 1;
}

static int parse_pattern(bctx *c, const char *p, size_t len, int depth, strvec *out) {
    if (depth > BRACE_MAX_DEPTH) return bfail(c, MC_ERR_INVALID_ARG, "'%.*s': braces nested too deeply", p, len);
    strvec acc = {0};
    if (!sv_push(c, &acc, "", 0)) return 0;
    size_t start = 0, pos = 0;
    int bd = 0;
    while (pos < len) {
        if (p[pos] == '\\') { pos += 2; continue; }
        if (p[pos] == '{') {
            if (bd == 0 && pos > start) {
                strvec lit = {0};
                int ok = sv_push(c, &lit, p + start, pos - start) && sv_product(c, &acc, &lit);
                sv_free(&lit);
                if (!ok) { sv_free(&acc); return 0; }
                start = pos;
            }
            bd++;
        } else if (p[pos] == '}') {
            bd--;
            if (bd == 0) {
                const char *e = p + start + 1;
                size_t el = pos - start - 1;
                strvec item = {0};
                int r = parse_range(c, e, el, &item);
                if (r == 0) r = parse_sequence(c, e, el, depth, &item);
                int ok;
                if (r < 0) ok = 0;
                else if (r == 1) ok = sv_product(c, &acc, &item);
                else {
                    /* neither: "{" + expansion of the inside + "}" */
                    strvec br = {0}, inner = {0};
                    ok = sv_push(c, &br, "{", 1) && sv_product(c, &acc, &br) &&
                         parse_pattern(c, e, el, depth + 1, &inner) && sv_product(c, &acc, &inner);
                    sv_free(&br);
                    sv_free(&inner);
                    strvec cl = {0};
                    ok = ok && sv_push(c, &cl, "}", 1) && sv_product(c, &acc, &cl);
                    sv_free(&cl);
                }
                sv_free(&item);
                if (!ok) { sv_free(&acc); return 0; }
                start = pos + 1;
            }
        }
        pos++;
    }
    if (bd != 0) {
        sv_free(&acc);
        return bfail(c, MC_ERR_INVALID_ARG, "unbalanced braces: '%.*s'", p, len);
    }
    if (start < len) {
        strvec lit = {0};
        int ok = sv_push(c, &lit, p + start, len - start) && sv_product(c, &acc, &lit);
        sv_free(&lit);
        if (!ok) { sv_free(&acc); return 0; }
    }
    *out = acc;
    return 1;
}

/* Python's re.sub(r'\\(.)', r'\1', s): a backslash before any character but
 * a newline is dropped. */
static void unescape(char *s) {
    char *w = s;
    for (char *r = s; *r; r++) {
        if (*r == '\\' && r[1] && r[1] != '\n') r++;
        *w++ = *r;
    }
    *w = 0;
}

void mc_shard_list_free(char **list, size_t n) {
    if (!list) return;
    for (size_t i = 0; i < n; i++) free(list[i]);
    free(list);
}

static mc_status expand_one(bctx *c, const char *pattern, size_t len, strvec *all) {
    strvec v = {0};
    if (!parse_pattern(c, pattern, len, 0, &v)) {
        sv_free(&v);
        return c->st != MC_OK ? c->st : MC_ERR_INTERNAL;
    }
    for (size_t i = 0; i < v.n; i++) unescape(v.s[i]);
    if (all->n + v.n > c->max_count) {
        sv_free(&v);
        bfail(c, MC_ERR_INVALID_ARG, "'%.*s': expands to too many names", pattern, len);
        return c->st;
    }
    if (!sv_append_all(all, &v)) {
        sv_free(&v);
        bfail(c, MC_ERR_NOMEM, "'%.*s': out of memory", pattern, len);
        return c->st;
    }
    return MC_OK;
}

mc_status mc_brace_expand(const char *pattern, size_t max_count, char ***out, size_t *n,
                          mc_error *err) {
    *out = NULL;
    *n = 0;
    bctx c = {max_count ? max_count : BRACE_DEFAULT_MAX, 0, err, MC_OK};
    strvec all = {0};
    mc_status st = expand_one(&c, pattern, strlen(pattern), &all);
    if (st != MC_OK) { sv_free(&all); return st; }
    *out = all.s;
    *n = all.n;
    return MC_OK;
}

mc_status mc_shard_expand(const char *spec, size_t max_count, char ***out, size_t *n,
                          mc_error *err) {
    *out = NULL;
    *n = 0;
    bctx c = {max_count ? max_count : BRACE_DEFAULT_MAX, 0, err, MC_OK};
    strvec all = {0};
    const char *p = spec;
    for (;;) {
        const char *sep = strstr(p, "::");
        size_t len = sep ? (size_t)(sep - p) : strlen(p);
        mc_status st = expand_one(&c, p, len, &all);
        if (st != MC_OK) { sv_free(&all); return st; }
        if (!sep) break;
        p = sep + 2;
    }
    *out = all.s;
    *n = all.n;
    return MC_OK;
}

/* ============================================================== grouping */

int mc_wds_split_name(const char *name, size_t *key_len, const char **ext) {
    /* ^((?:.*|/)[^.]+)[.]([^/]*)$ tried as the regex engine does: the
     * directory part ends at a '/' reachable without crossing a newline,
     * longest first, then the empty directory part. */
    size_t len = strlen(name);
    size_t first_nl = len;
    const char *nl = memchr(name, '\n', len);
    if (nl) first_nl = (size_t)(nl - name);
    const char *last_slash = NULL;
    for (const char *s = name + len; s-- > name;)
        if (*s == '/') { last_slash = s; break; }
    size_t after_last = last_slash ? (size_t)(last_slash - name) + 1 : 0;
    /* candidate starts: after each '/' within the first line, from the right, then 0 */
    size_t pos = first_nl < len ? first_nl : len;
    for (;;) {
        size_t start;
        int found = 0;
        while (pos > 0) {
            pos--;
            if (name[pos] == '/') { found = 1; break; }
        }
        start = found ? pos + 1 : 0;
        const char *dot = memchr(name + start, '.', len - start);
        if (dot && (size_t)(dot - name) > start && (size_t)(dot - name) + 1 >= after_last) {
            *key_len = (size_t)(dot - name);
            *ext = dot + 1;
            return 1;
        }
        if (!found) return 0;
    }
}

/* webdataset skips "__*__" names without a '/', and names whose first
 * component matches __[^/]*__ (its skip_meta pattern). */
static int is_meta(const char *name) {
    size_t len = strlen(name), l = strcspn(name, "/");
    if (l == len && len >= 2 && !strncmp(name, "__", 2) && !strcmp(name + len - 2, "__")) return 1;
    return l >= 4 && name[0] == '_' && name[1] == '_' && name[l - 1] == '_' && name[l - 2] == '_';
}

const mc_wds_member *mc_wds_sample_get(const mc_wds_sample *s, const char *ext) {
    for (size_t i = 0; i < s->n_members; i++)
        if (!strcmp(s->members[i].ext, ext)) return &s->members[i];
    return NULL;
}

void mc_wds_sample_free(mc_wds_sample *s) {
    if (!s) return;
    for (size_t i = 0; i < s->n_members; i++) {
        free(s->members[i].ext);
        free(s->members[i].data);
    }
    free(s->members);
    free(s->key);
    free(s);
}

/* ================================================================ records */

typedef struct dr_impl {
    mc_dr_record pub;
    mc_wds_sample *sample;
    char *shard;
    mc_json *meta, *syn_root, *paug_root, *paug_inner;
    mc_dr_syn *syn;
    const char ***caps;       /* per syn key */
    mc_array_set arrays;
    mc_dr_emb *embs;
} dr_impl;

mc_dr_params mc_dr_default_params(void) {
    mc_dr_params p;
    p.require_image = 1;
    p.decode_embeddings = 1;
    p.max_array_bytes = MC_ARRAY_MAX_BYTES;
    return p;
}

void mc_dr_record_free(mc_dr_record *r) {
    if (!r) return;
    dr_impl *d = (dr_impl *)r;
    mc_wds_sample_free(d->sample);
    free(d->shard);
    mc_json_free(d->meta);
    mc_json_free(d->syn_root);
    mc_json_free(d->paug_root);
    mc_json_free(d->paug_inner);
    if (d->caps)
        for (size_t i = 0; i < r->n_syn; i++) free((void *)d->caps[i]);
    free(d->caps);
    free(d->syn);
    mc_array_set_free(&d->arrays);
    free(d->embs);
    free(d);
}

const mc_dr_emb *mc_dr_find_emb(const mc_dr_record *r, const char *name) {
    for (size_t i = 0; i < r->n_embs; i++)
        if (!strcmp(r->embs[i].name, name)) return &r->embs[i];
    return NULL;
}

const float *mc_dr_syn_embedding(const mc_dr_record *r, const char *syn_key, size_t index,
                                 mc_error *err) {
    const mc_dr_syn *s = NULL;
    for (size_t i = 0; i < r->n_syn && !s; i++)
        if (!syn_key || !strcmp(r->syn[i].key, syn_key)) s = &r->syn[i];
    if (!s) {
        mc_fail(err, MC_ERR_NOT_FOUND, "%s: %s: no synthetic captions under '%s'", r->shard, r->key,
                syn_key ? syn_key : "(any)");
        return NULL;
    }
    if (index >= s->n) {
        mc_fail(err, MC_ERR_INVALID_ARG, "%s: %s: '%s' has %zu captions, asked for %zu", r->shard,
                r->key, s->key, s->n, index);
        return NULL;
    }
    if (!r->text_emb) {
        mc_fail(err, MC_ERR_NOT_FOUND, "%s: %s: embeddings not decoded", r->shard, r->key);
        return NULL;
    }
    if (r->layout == MC_DR_LAYOUT_DATACOMPDR) {
        if ((int64_t)(1 + index) >= r->text_emb->rows) goto range;
        return r->text_emb->data + (size_t)(1 + index) * (size_t)r->dim;
    }
    if (!s->emb || (int64_t)index >= s->emb->rows) goto range;
    return s->emb->data + index * (size_t)s->emb->dim;
range:
    mc_fail(err, MC_ERR_SHAPE, "%s: %s: no embedding row for '%s' caption %zu", r->shard, r->key,
            s->key, index);
    return NULL;
}

static const char *const image_exts[] = {"jpg", "jpeg", "png", "webp"};

/* Parses a member as JSON; label errors "shard: key.ext". */
static mc_status member_json(const mc_wds_member *m, const char *shard, const char *key,
                             mc_json **out, mc_error *err) {
    mc_status st = mc_json_parse((const char *)m->data, m->size, out, err);
    if (st != MC_OK) mc_error_prefix(err, "%s: %s.%s", shard, key, m->ext);
    return st;
}

mc_status mc_dr_record_decode(mc_wds_sample **sample_io, const char *shard, const mc_dr_params *params,
                              mc_dr_record **out, mc_error *err) {
    *out = NULL;
    mc_wds_sample *sample = *sample_io;
    *sample_io = NULL;
    mc_dr_params p = params ? *params : mc_dr_default_params();
    dr_impl *d = calloc(1, sizeof *d);
    if (!d) { mc_wds_sample_free(sample); return mc_fail(err, MC_ERR_NOMEM, "%s: out of memory", shard); }
    d->sample = sample;
    mc_dr_record *r = &d->pub;
    r->key = sample->key;
    if (!(d->shard = strdup(shard))) {
        mc_dr_record_free(r);
        return mc_fail(err, MC_ERR_NOMEM, "%s: out of memory", shard);
    }
    r->shard = d->shard;
    r->sample = sample;
    const char *key = sample->key;
    mc_status st = MC_OK;
    const mc_wds_member *m;

    for (size_t i = 0; i < sizeof image_exts / sizeof image_exts[0] && !r->image; i++)
        if ((m = mc_wds_sample_get(sample, image_exts[i]))) {
            r->image = m->data;
            r->image_size = m->size;
            r->image_ext = m->ext;
        }
    if (!r->image && p.require_image) {
        st = mc_fail(err, MC_ERR_NOT_FOUND, "%s: %s: no image member (jpg, jpeg, png, webp)", shard, key);
        goto fail;
    }
    if (!(m = mc_wds_sample_get(sample, "txt"))) {
        st = mc_fail(err, MC_ERR_NOT_FOUND, "%s: %s: no caption member (txt)", shard, key);
        goto fail;
    }
    r->caption = (const char *)m->data;
    r->caption_len = m->size;
    if ((m = mc_wds_sample_get(sample, "url.txt"))) r->url = (const char *)m->data;
    if ((m = mc_wds_sample_get(sample, "json"))) {
        if ((st = member_json(m, shard, key, &d->meta, err)) != MC_OK) goto fail;
        r->meta = d->meta;
    }

    /* syn.json: {"key": [captions], ...} */
    if (!(m = mc_wds_sample_get(sample, "syn.json"))) {
        st = mc_fail(err, MC_ERR_NOT_FOUND, "%s: %s: no synthetic captions member (syn.json)", shard, key);
        goto fail;
    }
    if ((st = member_json(m, shard, key, &d->syn_root, err)) != MC_OK) goto fail;
    if (d->syn_root->type != MC_JSON_OBJECT) {
        st = mc_fail(err, MC_ERR_FORMAT, "%s: %s.syn.json: not a JSON object", shard, key);
        goto fail;
    }
    size_t ns = d->syn_root->len;
    d->syn = calloc(ns ? ns : 1, sizeof *d->syn);
    d->caps = calloc(ns ? ns : 1, sizeof *d->caps);
    if (!d->syn || !d->caps) { st = mc_fail(err, MC_ERR_NOMEM, "%s: %s: out of memory", shard, key); goto fail; }
    for (size_t i = 0; i < ns; i++) {
        const mc_json *v = &d->syn_root->items[i];
        const char *sk = d->syn_root->keys[i];
        if (v->type != MC_JSON_ARRAY) {
            st = mc_fail(err, MC_ERR_FORMAT, "%s: %s.syn.json: '%s' is not a list of captions", shard, key, sk);
            goto fail;
        }
        for (size_t k = 0; k < i; k++)
            if (!strcmp(d->syn[k].key, sk)) {
                st = mc_fail(err, MC_ERR_FORMAT, "%s: %s.syn.json: key '%s' twice", shard, key, sk);
                goto fail;
            }
        const char **caps = calloc(v->len ? v->len : 1, sizeof *caps);
        if (!caps) { st = mc_fail(err, MC_ERR_NOMEM, "%s: %s: out of memory", shard, key); goto fail; }
        d->caps[i] = caps;
        r->n_syn = i + 1;
        for (size_t k = 0; k < v->len; k++) {
            if (v->items[k].type != MC_JSON_STRING) {
                st = mc_fail(err, MC_ERR_FORMAT, "%s: %s.syn.json: '%s'[%zu] is not a string", shard, key, sk, k);
                goto fail;
            }
            caps[k] = v->items[k].string;
        }
        d->syn[i].key = sk;
        d->syn[i].captions = caps;
        d->syn[i].n = v->len;
    }
    r->n_syn = ns;
    r->syn = d->syn;

    /* paug.json: {"param_aug": [...]} or {"param_aug": "[...]"} */
    if (!(m = mc_wds_sample_get(sample, "paug.json"))) {
        st = mc_fail(err, MC_ERR_NOT_FOUND, "%s: %s: no augmentation member (paug.json)", shard, key);
        goto fail;
    }
    if ((st = member_json(m, shard, key, &d->paug_root, err)) != MC_OK) goto fail;
    const mc_json *pa = mc_json_get(d->paug_root, "param_aug");
    if (!pa) {
        st = mc_fail(err, MC_ERR_FORMAT, "%s: %s.paug.json: no 'param_aug'", shard, key);
        goto fail;
    }
    if (pa->type == MC_JSON_STRING) {
        st = mc_json_parse(pa->string, pa->len, &d->paug_inner, err);
        if (st != MC_OK) {
            mc_error_prefix(err, "%s: %s.paug.json: param_aug string", shard, key);
            goto fail;
        }
        pa = d->paug_inner;
        r->paug_was_string = 1;
    }
    if (pa->type != MC_JSON_ARRAY) {
        st = mc_fail(err, MC_ERR_FORMAT, "%s: %s.paug.json: param_aug is not a list", shard, key);
        goto fail;
    }
    r->aug = pa->items;
    r->n_aug = pa->len;

    /* embeddings */
    const mc_wds_member *npz = mc_wds_sample_get(sample, "npz");
    const mc_wds_member *pth = npz ? NULL : mc_wds_sample_get(sample, "pth.gz");
    if (!p.decode_embeddings) {
        if (npz || pth) r->emb_ext = npz ? "npz" : "pth.gz";
        *out = r;
        return MC_OK;
    }
    if (!npz && !pth) {
        st = mc_fail(err, MC_ERR_NOT_FOUND, "%s: %s: no embeddings member (npz or pth.gz)", shard, key);
        goto fail;
    }
    char label[512];
    snprintf(label, sizeof label, "%s: %s.%s", shard, key, npz ? "npz" : "pth.gz");
    r->emb_ext = npz ? "npz" : "pth.gz";
    st = npz ? mc_npz_read_memory(npz->data, npz->size, label, p.max_array_bytes, &d->arrays, err)
             : mc_pthgz_read_memory(pth->data, pth->size, label, p.max_array_bytes, &d->arrays, err);
    if (st != MC_OK) {
        if (st == MC_ERR_SHAPE || st == MC_ERR_NOT_FOUND) st = MC_ERR_FORMAT;
        if (err) err->status = st;
        goto fail;
    }
    d->embs = calloc(d->arrays.n ? d->arrays.n : 1, sizeof *d->embs);
    if (!d->embs) { st = mc_fail(err, MC_ERR_NOMEM, "%s: out of memory", label); goto fail; }
    int64_t dim = -1;
    for (size_t i = 0; i < d->arrays.n; i++) {
        const mc_array *a = &d->arrays.arrays[i];
        mc_dr_emb *e = &d->embs[i];
        e->name = a->name;
        e->stored = a->stored;
        e->data = a->data;
        e->rows = a->ndim >= 1 ? a->shape[0] : 0;
        e->dim = a->ndim == 2 ? a->shape[1] : 0;
        size_t nl = strlen(a->name);
        if (nl >= 4 && !strcmp(a->name + nl - 4, "_emb")) {
            if (a->ndim != 2) {
                st = mc_fail(err, MC_ERR_SHAPE, "%s: %s has %d dimensions (expected [rows, D])", label,
                             a->name, a->ndim);
                goto fail;
            }
            if (dim < 0) dim = a->shape[1];
            else if (a->shape[1] != dim) {
                st = mc_fail(err, MC_ERR_SHAPE, "%s: %s is [%lld, %lld] but D is %lld elsewhere", label,
                             a->name, (long long)a->shape[0], (long long)a->shape[1], (long long)dim);
                goto fail;
            }
        }
    }
    r->embs = d->embs;
    r->n_embs = d->arrays.n;
    r->dim = dim;
    r->image_emb = mc_dr_find_emb(r, "image_emb");
    r->text_emb = mc_dr_find_emb(r, "text_emb");
    if (!r->image_emb || !r->text_emb) {
        st = mc_fail(err, MC_ERR_SHAPE, "%s: no %s array", label, r->image_emb ? "text_emb" : "image_emb");
        goto fail;
    }
    if (r->image_emb->rows != (int64_t)r->n_aug) {
        st = mc_fail(err, MC_ERR_SHAPE, "%s: image_emb has %lld rows but param_aug has %zu entries",
                     label, (long long)r->image_emb->rows, r->n_aug);
        goto fail;
    }
    int64_t trows = r->text_emb->rows;
    if (trows < 1) {
        st = mc_fail(err, MC_ERR_SHAPE, "%s: text_emb has no rows", label);
        goto fail;
    }
    if (trows > 1) {
        r->layout = MC_DR_LAYOUT_DATACOMPDR;
        if (ns == 0) {
            st = mc_fail(err, MC_ERR_SHAPE, "%s: text_emb has %lld rows but syn.json has no captions",
                         label, (long long)trows);
            goto fail;
        }
        for (size_t i = 0; i < ns; i++)
            if ((int64_t)(1 + d->syn[i].n) != trows) {
                st = mc_fail(err, MC_ERR_SHAPE, "%s: text_emb has %lld rows, expected 1 + %zu ('%s' captions)",
                             label, (long long)trows, d->syn[i].n, d->syn[i].key);
                goto fail;
            }
    } else {
        r->layout = ns ? MC_DR_LAYOUT_DFNDR : MC_DR_LAYOUT_DATACOMPDR;
        for (size_t i = 0; i < ns; i++) {
            char en[512];
            snprintf(en, sizeof en, "%s_emb", d->syn[i].key);
            const mc_dr_emb *e = mc_dr_find_emb(r, en);
            if (!e && d->syn[i].n == 0) continue;
            if (!e) {
                st = mc_fail(err, MC_ERR_SHAPE, "%s: text_emb has 1 row and there is no %s for the %zu "
                             "'%s' captions", label, en, d->syn[i].n, d->syn[i].key);
                goto fail;
            }
            if (e->rows != (int64_t)d->syn[i].n) {
                st = mc_fail(err, MC_ERR_SHAPE, "%s: %s has %lld rows but '%s' has %zu captions", label,
                             en, (long long)e->rows, d->syn[i].key, d->syn[i].n);
                goto fail;
            }
            d->syn[i].emb = e;
        }
    }
    *out = r;
    return MC_OK;
fail:
    mc_dr_record_free(r);
    return st;
}

/* ================================================================ reader */

struct mc_shard_reader {
    mc_tar *tar;
    char *path;
    mc_shard_params p;
    mc_shard_stats stats;
    int done;
    int fatal_pending;        /* a fatal archive error to report after the last sample */
    mc_error fatal;
    /* the member read ahead: the first of the next sample */
    int has_pending;
    char *pend_key, *pend_ext;
    uint8_t *pend_data;
    size_t pend_size;
};

static const char *const skip_names[MC_SKIP_COUNT] = {
    "bad member", "duplicate member", "missing member", "malformed member", "shape mismatch",
    "corrupt shard"};

const char *mc_skip_reason_name(mc_skip_reason r) {
    return (unsigned)r < MC_SKIP_COUNT ? skip_names[r] : "?";
}

mc_shard_params mc_shard_default_params(void) {
    mc_shard_params p;
    p.tar = mc_tar_default_params();
    p.dr = mc_dr_default_params();
    p.strict = 0;
    return p;
}

static mc_status reader_new(const char *path, const mc_shard_params *params, mc_shard_reader **out,
                            mc_error *err) {
    mc_shard_reader *r = calloc(1, sizeof *r);
    if (!r || !(r->path = strdup(path))) {
        free(r);
        return mc_fail(err, MC_ERR_NOMEM, "%s: out of memory", path);
    }
    r->p = params ? *params : mc_shard_default_params();
    mc_error_clear(&r->stats.last_skip);
    *out = r;
    return MC_OK;
}

mc_status mc_shard_open(const char *path, const mc_shard_params *params, mc_shard_reader **out,
                        mc_error *err) {
    *out = NULL;
    mc_shard_reader *r;
    mc_status st = reader_new(path, params, &r, err);
    if (st != MC_OK) return st;
    st = mc_tar_open_file(path, &r->p.tar, &r->tar, err);
    if (st != MC_OK) { mc_shard_close(r); return st; }
    *out = r;
    return MC_OK;
}

mc_status mc_shard_open_memory(const void *data, size_t len, const char *name,
                               const mc_shard_params *params, mc_shard_reader **out, mc_error *err) {
    *out = NULL;
    if (!name) name = "<memory>";
    mc_shard_reader *r;
    mc_status st = reader_new(name, params, &r, err);
    if (st != MC_OK) return st;
    st = mc_tar_open_memory(data, len, name, &r->p.tar, &r->tar, err);
    if (st != MC_OK) { mc_shard_close(r); return st; }
    *out = r;
    return MC_OK;
}

static void clear_pending_member(mc_shard_reader *r) {
    free(r->pend_key);
    free(r->pend_ext);
    free(r->pend_data);
    r->pend_key = r->pend_ext = NULL;
    r->pend_data = NULL;
    r->has_pending = 0;
}

void mc_shard_close(mc_shard_reader *r) {
    if (!r) return;
    mc_tar_close(r->tar);
    free(r->path);
    clear_pending_member(r);
    free(r);
}

const mc_shard_stats *mc_shard_reader_stats(const mc_shard_reader *r) { return &r->stats; }

/* Counts a skip; returns MC_OK (go on) or, when strict, the error. */
static mc_status skip(mc_shard_reader *r, mc_skip_reason why, const mc_error *e, mc_error *err) {
    r->stats.skipped++;
    r->stats.skipped_by[why]++;
    r->stats.last_skip = *e;
    if (r->p.strict) {
        if (err) *err = *e;
        return e->status != MC_OK ? e->status : MC_ERR_FORMAT;
    }
    return MC_OK;
}

static mc_status add_member(mc_wds_sample *s, char *ext, uint8_t *data, size_t size) {
    mc_wds_member *nm = realloc(s->members, (s->n_members + 1) * sizeof *nm);
    if (!nm) return MC_ERR_NOMEM;
    s->members = nm;
    s->members[s->n_members].ext = ext;
    s->members[s->n_members].data = data;
    s->members[s->n_members].size = size;
    s->n_members++;
    return MC_OK;
}

mc_status mc_shard_next_sample(mc_shard_reader *r, mc_wds_sample **out, mc_error *err) {
    *out = NULL;
    mc_wds_sample *s = NULL;
    int dup = 0;
    char dup_ext[64] = "";
    mc_error e;
    if (r->fatal_pending) {
        r->fatal_pending = 0;
        return skip(r, MC_SKIP_SHARD, &r->fatal, err);
    }
    for (;;) {
        char *key = NULL, *ext = NULL;
        uint8_t *data = NULL;
        size_t size = 0;
        int at_end = 0;
        if (r->has_pending) {
            key = r->pend_key;
            ext = r->pend_ext;
            data = r->pend_data;
            size = r->pend_size;
            r->pend_key = r->pend_ext = NULL;
            r->pend_data = NULL;
            r->has_pending = 0;
        } else if (r->done) {
            at_end = 1;
        } else {
            mc_tar_member m;
            int eof;
            mc_error_clear(&e);
            mc_status st = mc_tar_next(r->tar, &m, &eof, &e);
            if (st != MC_OK) {
                if (mc_tar_failed(r->tar)) {
                    /* the shard ends here; the sample being grouped is
                     * returned (its decoding finds what it lacks), the
                     * error reported on the next call */
                    r->done = 1;
                    r->fatal_pending = 1;
                    r->fatal = e;
                    at_end = 1;
                    goto finish;
                }
                mc_status sst = skip(r, MC_SKIP_MEMBER, &e, err);
                if (sst != MC_OK) { mc_wds_sample_free(s); return sst; }
                continue;
            }
            if (eof) {
                r->done = 1;
                at_end = 1;
            } else {
                r->stats.members++;
                size_t kl;
                const char *x;
                if (is_meta(m.name) || !mc_wds_split_name(m.name, &kl, &x)) {
                    r->stats.members_ignored++;
                    continue;
                }
                key = malloc(kl + 1);
                ext = strdup(x);
                if (!key || !ext) {
                    free(key);
                    free(ext);
                    mc_wds_sample_free(s);
                    return mc_fail(err, MC_ERR_NOMEM, "%s: out of memory", r->path);
                }
                memcpy(key, m.name, kl);
                key[kl] = 0;
                for (char *c = ext; *c; c++)
                    if (*c >= 'A' && *c <= 'Z') *c = (char)(*c - 'A' + 'a');
                size = m.size;
                data = mc_tar_take_data(r->tar);
            }
        }
        if (!at_end && s && strcmp(key, s->key) != 0) {
            /* first member of the next sample: keep it for later */
            r->pend_key = key;
            r->pend_ext = ext;
            r->pend_data = data;
            r->pend_size = size;
            r->has_pending = 1;
            at_end = 1;
        }
    finish:
        if (at_end) {
            if (!s) {
                if (r->fatal_pending) {
                    r->fatal_pending = 0;
                    return skip(r, MC_SKIP_SHARD, &r->fatal, err);
                }
                return MC_OK;   /* end of the shard */
            }
            if (dup) {
                mc_fail(&e, MC_ERR_FORMAT, "%s: %s: duplicate member '%s'", r->path, s->key, dup_ext);
                mc_wds_sample_free(s);
                s = NULL;
                dup = 0;
                mc_status sst = skip(r, MC_SKIP_DUPLICATE, &e, err);
                if (sst != MC_OK) return sst;
                if (!r->has_pending && r->done) return MC_OK;
                continue;
            }
            *out = s;
            return MC_OK;
        }
        if (!s) {
            s = calloc(1, sizeof *s);
            if (!s) {
                free(key);
                free(ext);
                free(data);
                return mc_fail(err, MC_ERR_NOMEM, "%s: out of memory", r->path);
            }
            s->key = key;
            key = NULL;
        }
        free(key);
        if (mc_wds_sample_get(s, ext)) {
            if (!dup) snprintf(dup_ext, sizeof dup_ext, "%s", ext);
            dup = 1;
            free(ext);
            free(data);
            continue;
        }
        if (add_member(s, ext, data, size) != MC_OK) {
            free(ext);
            free(data);
            mc_wds_sample_free(s);
            return mc_fail(err, MC_ERR_NOMEM, "%s: out of memory", r->path);
        }
    }
}

mc_status mc_shard_next(mc_shard_reader *r, mc_dr_record **out, mc_error *err) {
    *out = NULL;
    for (;;) {
        mc_wds_sample *s;
        mc_status st = mc_shard_next_sample(r, &s, err);
        if (st != MC_OK || !s) return st;
        mc_error e;
        mc_error_clear(&e);
        mc_dr_record *rec;
        st = mc_dr_record_decode(&s, r->path, &r->p.dr, &rec, &e);
        if (st == MC_OK) {
            r->stats.samples++;
            *out = rec;
            return MC_OK;
        }
        mc_skip_reason why = st == MC_ERR_NOT_FOUND ? MC_SKIP_MISSING
                           : st == MC_ERR_SHAPE ? MC_SKIP_SHAPE : MC_SKIP_DECODE;
        st = skip(r, why, &e, err);
        if (st != MC_OK) return st;
    }
}
