/*
 * serve/server.c - the HTTP server (see server.h, docs/serve.md).
 *
 * libmicrohttpd runs one thread per connection (at most max_connections).
 * A connection thread reads the body (bounded), parses it (request.c),
 * tokenizes texts and decodes images itself, then hands the encoding to the
 * pool and waits: decoding runs in parallel across connections while the
 * pool's workers batch the forward passes.  Stopping: the listening socket
 * is closed first (MHD_quiesce_daemon), requests in progress finish, then
 * the daemon and the pool stop.
 */
#include "serve/server.h"
#include "io/image.h"
#include "io/image_write.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <math.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define DEFAULT_TEMPLATE "a photo of a {}."
#define THUMB_SLOTS 1024          /* thumbnails kept in memory, by id modulo this */
#define THUMB_QUALITY 85

/* a thumbnail made earlier, valid while the file's size and mtime are the same */
typedef struct thumb {
    int64_t id, size, mtime_ns;
    unsigned char *jpeg;
    size_t len;
} thumb;

struct mc_server {
    const mc_model *model;
    mc_model_info info;
    const mc_tokenizer *tok;
    mc_server_params p;
    char host[256];
    char model_name[256];
    mc_pool *pool;
    struct MHD_Daemon *d;
    int port;
    pthread_mutex_t lock;
    pthread_cond_t idle;
    int active;                  /* requests between their first call and completion */
    int draining;
    int64_t served;
    double started;
    mc_index *index;             /* NULL: no search, images or thumbnails */
    mc_index_info iinfo;
    thumb *thumbs;               /* [THUMB_SLOTS] */
    pthread_mutex_t thumb_lock;
};

/* one request's state, from the first call of the handler to completion */
typedef struct req_state {
    mc_sbuf body;
    int too_big;                 /* the body went over the limit: read and dropped */
    double t0;
    char what[160];              /* "METHOD /path" for the log */
} req_state;

mc_server_params mc_server_default_params(void) {
    mc_server_params p;
    memset(&p, 0, sizeof p);
    p.host = "127.0.0.1";
    p.port = 8080;
    p.max_connections = 64;
    p.model_name = "mobileclip";
    p.pool = mc_pool_default_params();
    p.limits = mc_serve_default_limits();
    p.thumbnail_size = 256;
    return p;
}

static void logf_(mc_server *s, int level, const char *fmt, ...) MC_PRINTF(3, 4);
static void logf_(mc_server *s, int level, const char *fmt, ...) {
    if (!s->p.log) return;
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    s->p.log(s->p.log_user, level, line);
}

static void mhd_logger(void *cls, const char *fmt, va_list ap) {
    mc_server *s = cls;
    if (!s->p.log) return;
    char line[1024];
    vsnprintf(line, sizeof line, fmt, ap);
    size_t n = strlen(line);
    while (n && (line[n - 1] == '\n' || line[n - 1] == '\r')) line[--n] = 0;
    s->p.log(s->p.log_user, MC_LOG_WARN, line);
}

/* ---- responses ---- */

/* Queues r with the common headers (cache: a Cache-Control value or NULL). */
static enum MHD_Result send_response(mc_server *s, struct MHD_Connection *c, int http, const char *type,
                                     const char *cache, struct MHD_Response *r) {
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, type);
    if (cache) MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, cache);
    MHD_add_response_header(r, "X-Content-Type-Options", "nosniff");
    if (http == 503) MHD_add_response_header(r, MHD_HTTP_HEADER_RETRY_AFTER, "1");
    pthread_mutex_lock(&s->lock);
    int draining = s->draining;
    pthread_mutex_unlock(&s->lock);
    if (draining) MHD_add_response_header(r, MHD_HTTP_HEADER_CONNECTION, "close");
    enum MHD_Result ret = MHD_queue_response(c, (unsigned)http, r);
    MHD_destroy_response(r);
    return ret;
}

static enum MHD_Result send_buf(mc_server *s, struct MHD_Connection *c, int http, const char *type, void *data,
                                size_t len, int must_free) {
    struct MHD_Response *r =
        MHD_create_response_from_buffer(len, data, must_free ? MHD_RESPMEM_MUST_FREE : MHD_RESPMEM_PERSISTENT);
    if (!r) {
        if (must_free) free(data);
        return MHD_NO;
    }
    return send_response(s, c, http, type, NULL, r);
}

static enum MHD_Result send_json(mc_server *s, struct MHD_Connection *c, int http, mc_sbuf *b) {
    if (b->oom) {
        mc_sbuf_free(b);
        static const char oom[] = "{\"error\": {\"message\": \"out of memory\", \"type\": \"unavailable\", \"code\": 503}}\n";
        return send_buf(s, c, 503, "application/json", (void *)oom, sizeof oom - 1, 0);
    }
    char *p = b->p ? b->p : strdup("");
    size_t len = b->len;
    memset(b, 0, sizeof *b);
    return send_buf(s, c, http, "application/json", p, len, 1);
}

static enum MHD_Result send_error(mc_server *s, struct MHD_Connection *c, int http, const char *msg) {
    mc_sbuf b = {0};
    mc_sbuf_error(&b, http, msg);
    return send_json(s, c, http, &b);
}

/* ---- encoding ---- */

typedef struct encoded {
    float *emb;                  /* [n, D], in input order */
    int n_tokens;                /* tokens of the texts (usage) */
} encoded;

/* Tokenizes the texts and decodes the images of inputs[0..n) here, encodes
 * them in the pool; on failure *http and err say why. */
static mc_status encode_inputs(mc_server *s, const mc_serve_input *in, int n, encoded *e, int *http, mc_error *err) {
    memset(e, 0, sizeof *e);
    size_t D = (size_t)s->info.embed_dim, L = (size_t)s->info.context_length;
    size_t S = (size_t)s->info.image_size, plane = 3 * S * S;
    int n_text = 0, n_img = 0;
    for (int i = 0; i < n; i++) {
        if (in[i].kind == MC_INPUT_TEXT) n_text++;
        else n_img++;
    }
    *http = 400;
    if (n_text && !s->tok) return mc_fail(err, MC_ERR_UNSUPPORTED, "the model has no text tower or tokenizer");
    if (n_img && !plane) return mc_fail(err, MC_ERR_UNSUPPORTED, "the model has no image tower");
    int32_t *tokens = n_text ? mc_malloc_array((size_t)n_text * L, sizeof *tokens) : NULL;
    float *pixels = n_img ? mc_malloc_array((size_t)n_img * plane, sizeof *pixels) : NULL;
    float *temb = n_text ? mc_malloc_array((size_t)n_text * D, sizeof(float)) : NULL;
    float *iemb = n_img ? mc_malloc_array((size_t)n_img * D, sizeof(float)) : NULL;
    e->emb = mc_malloc_array((size_t)n * D, sizeof(float));
    mc_status st = MC_OK;
    if ((n_text && (!tokens || !temb)) || (n_img && (!pixels || !iemb)) || !e->emb) {
        *http = 503;
        st = mc_fail(err, MC_ERR_NOMEM, "out of memory for %d inputs", n);
    }
    const mc_preprocess_params *pp = &s->info.preprocess;
    for (int i = 0, t = 0, m = 0; i < n && st == MC_OK; i++) {
        mc_error e1;
        if (in[i].kind == MC_INPUT_TEXT) {
            int32_t *ids = tokens + (size_t)t++ * L;
            if (mc_tokenizer_encode_n(s->tok, in[i].text, in[i].len, (int)L, ids, &e1) != MC_OK) {
                st = mc_fail(err, e1.status, "input %d: %s", i, e1.message);
                break;
            }
            for (size_t k = 0; k < L; k++) e->n_tokens += ids[k] != 0;
            continue;
        }
        mc_image img, res;
        int over = 0;
        st = mc_image_load_memory_max(in[i].image, in[i].len, pp->apply_exif, s->p.limits.max_image_pixels, &img,
                                      &over, &e1);
        if (st != MC_OK) {
            *http = over ? 413 : st == MC_ERR_NOMEM ? 503 : 400;
            st = mc_fail(err, st, "input %d: %s", i, e1.message);
            break;
        }
        st = mc_image_resize_crop(&img, pp->size, pp->interp, pp->resize_mode, &res, &e1);
        mc_image_free(&img);
        if (st != MC_OK) {
            *http = st == MC_ERR_NOMEM ? 503 : 400;
            st = mc_fail(err, st, "input %d: %s", i, e1.message);
            break;
        }
        mc_image_to_tensor(&res, pp->mean, pp->std, pixels + (size_t)m++ * plane);
        mc_image_free(&res);
    }
    int timed_out = 0;
    if (st == MC_OK && n_text)
        st = mc_pool_encode(s->pool, MC_POOL_TEXT, tokens, n_text, temb, s->p.limits.request_timeout_s, &timed_out, err);
    if (st == MC_OK && n_img)
        st = mc_pool_encode(s->pool, MC_POOL_IMAGE, pixels, n_img, iemb, s->p.limits.request_timeout_s, &timed_out, err);
    if (st != MC_OK && (timed_out || st == MC_ERR_NOMEM)) *http = 503;
    else if (st != MC_OK && *http == 400 && st != MC_ERR_IMAGE && st != MC_ERR_TOKENIZER && st != MC_ERR_FORMAT &&
             st != MC_ERR_UNSUPPORTED && st != MC_ERR_INVALID_ARG)
        *http = 500;
    if (st == MC_OK) {
        for (int i = 0, t = 0, m = 0; i < n; i++) {
            const float *src = in[i].kind == MC_INPUT_TEXT ? temb + (size_t)t++ * D : iemb + (size_t)m++ * D;
            memcpy(e->emb + (size_t)i * D, src, D * sizeof(float));
        }
        *http = 200;
    } else {
        free(e->emb);
        e->emb = NULL;
    }
    free(tokens);
    free(pixels);
    free(temb);
    free(iemb);
    return st;
}

/* ---- endpoints ---- */

static enum MHD_Result do_embeddings(mc_server *s, struct MHD_Connection *c, const mc_serve_request *rq) {
    encoded e;
    int http;
    mc_error err;
    if (encode_inputs(s, rq->inputs, rq->n_inputs, &e, &http, &err) != MC_OK)
        return send_error(s, c, http, err.message);
    int D = s->info.embed_dim;
    mc_sbuf b = {0};
    mc_sbuf_puts(&b, "{\"object\": \"list\", \"data\": [");
    for (int i = 0; i < rq->n_inputs; i++) {
        mc_sbuf_printf(&b, "%s{\"object\": \"embedding\", \"index\": %d, \"embedding\": ", i ? ", " : "", i);
        mc_sbuf_floats(&b, e.emb + (size_t)i * D, D);
        mc_sbuf_puts(&b, "}");
    }
    mc_sbuf_puts(&b, "], \"model\": ");
    mc_sbuf_json_str(&b, s->model_name, strlen(s->model_name));
    mc_sbuf_printf(&b, ", \"usage\": {\"prompt_tokens\": %d, \"total_tokens\": %d}}\n", e.n_tokens, e.n_tokens);
    free(e.emb);
    return send_json(s, c, 200, &b);
}

/* Zero-shot classification as 'mobileclip classify' does it: each label's
 * classifier is the mean of its normalised template embeddings,
 * re-normalised; probabilities are softmax(min(logit_scale, 100) * cosine). */
static enum MHD_Result do_classify(mc_server *s, struct MHD_Connection *c, const mc_serve_request *rq) {
    int nl = rq->n_labels, nt = rq->n_templates ? rq->n_templates : 1, D = s->info.embed_dim;
    int n_prompts = nl * nt, n_img = rq->n_inputs, total = n_prompts + n_img;
    mc_serve_input *in = calloc((size_t)total, sizeof *in);
    char **prompts = calloc((size_t)n_prompts, sizeof *prompts);
    float *cls = calloc((size_t)nl * (size_t)D, sizeof *cls);
    double *prob = malloc((size_t)nl * sizeof *prob);
    int *order = malloc((size_t)nl * sizeof *order);
    enum MHD_Result ret;
    encoded e = {0};
    if (!in || !prompts || !cls || !prob || !order) {
        ret = send_error(s, c, 503, "out of memory");
        goto out;
    }
    for (int l = 0; l < nl; l++)
        for (int t = 0; t < nt; t++) {
            const char *tmpl = rq->n_templates ? rq->templates[t]->string : DEFAULT_TEMPLATE;
            char *p = mc_fill_template(tmpl, rq->labels[l]->string);
            if (!p) {
                ret = send_error(s, c, 503, "out of memory");
                goto out;
            }
            prompts[l * nt + t] = p;
            in[l * nt + t] = (mc_serve_input){MC_INPUT_TEXT, p, strlen(p), NULL};
        }
    for (int i = 0; i < n_img; i++) in[n_prompts + i] = rq->inputs[i];
    int http;
    mc_error err;
    if (encode_inputs(s, in, total, &e, &http, &err) != MC_OK) {
        ret = send_error(s, c, http, err.message);
        goto out;
    }
    mc_zeroshot_classifiers(e.emb, nl, nt, D, cls);
    mc_sbuf b = {0};
    mc_sbuf_puts(&b, "{\"object\": \"list\", \"data\": [");
    for (int i = 0; i < n_img; i++) {
        mc_zeroshot_probs(e.emb + (size_t)(n_prompts + i) * D, cls, nl, D, s->info.logit_scale, prob);
        for (int l = 0; l < nl; l++) order[l] = l;
        mc_sbuf_printf(&b, "%s{\"index\": %d, \"labels\": [", i ? ", " : "", i);
        for (int k = 0; k < rq->k; k++) {   /* top k by selection, ties keep label order */
            int best = k;
            for (int l = k + 1; l < nl; l++)
                if (prob[order[l]] > prob[order[best]]) best = l;
            int tmp = order[k];
            order[k] = order[best];
            order[best] = tmp;
            mc_sbuf_puts(&b, k ? ", {\"label\": " : "{\"label\": ");
            mc_sbuf_json_str(&b, rq->labels[order[k]]->string, rq->labels[order[k]]->len);
            mc_sbuf_printf(&b, ", \"probability\": %.6f}", prob[order[k]]);
        }
        mc_sbuf_puts(&b, "]}");
    }
    mc_sbuf_puts(&b, "], \"model\": ");
    mc_sbuf_json_str(&b, s->model_name, strlen(s->model_name));
    mc_sbuf_puts(&b, "}\n");
    ret = send_json(s, c, 200, &b);
out:
    if (prompts)
        for (int i = 0; i < n_prompts; i++) free(prompts[i]);
    free(prompts);
    free(in);
    free(cls);
    free(prob);
    free(order);
    free(e.emb);
    return ret;
}

static enum MHD_Result do_health(mc_server *s, struct MHD_Connection *c) {
    mc_pool_stats ps;
    mc_pool_get_stats(s->pool, &ps);
    pthread_mutex_lock(&s->lock);
    int64_t served = s->served;
    int active = s->active;
    pthread_mutex_unlock(&s->lock);
    mc_sbuf b = {0};
    mc_sbuf_puts(&b, "{\"status\": \"ok\", \"version\": ");
    mc_sbuf_json_str(&b, mc_version(), strlen(mc_version()));
    mc_sbuf_puts(&b, ", \"model\": {\"name\": ");
    mc_sbuf_json_str(&b, s->model_name, strlen(s->model_name));
    mc_sbuf_puts(&b, ", \"image_arch\": ");
    mc_sbuf_json_str(&b, s->info.image_arch ? s->info.image_arch : "", s->info.image_arch ? strlen(s->info.image_arch) : 0);
    mc_sbuf_puts(&b, ", \"text_arch\": ");
    mc_sbuf_json_str(&b, s->info.text_arch ? s->info.text_arch : "", s->info.text_arch ? strlen(s->info.text_arch) : 0);
    mc_sbuf_printf(&b, ", \"embed_dim\": %d, \"image_size\": %d}", s->info.embed_dim, s->info.image_size);
    mc_sbuf_printf(&b, ", \"workers\": %d, \"max_batch\": %d, \"uptime_s\": %.1f", s->p.pool.n_workers,
                   s->p.pool.max_batch, mc_now_s() - s->started);
    mc_sbuf_printf(&b, ", \"requests\": {\"served\": %lld, \"active\": %d}", (long long)served, active);
    mc_sbuf_printf(&b, ", \"encoder\": {\"passes\": %lld, \"items\": %lld, \"shared_passes\": %lld, \"largest_batch\": %d}",
                   (long long)ps.passes, (long long)ps.items, (long long)ps.shared_passes, ps.max_batch_seen);
    if (s->index) {
        pthread_mutex_lock(&s->lock);
        mc_index_info ii = s->iinfo;
        pthread_mutex_unlock(&s->lock);
        mc_sbuf_printf(&b, ", \"index\": {\"count\": %lld, \"dim\": %d, \"model\": ", (long long)ii.count, ii.dim);
        const char *mp = ii.model_path, *base = strrchr(mp, '/');
        base = base ? base + 1 : mp;
        mc_sbuf_json_str(&b, base, strlen(base));
        mc_sbuf_puts(&b, ", \"model_id\": ");
        mc_sbuf_json_str(&b, ii.model_id, strlen(ii.model_id));
        mc_sbuf_puts(&b, "}}\n");
    } else {
        mc_sbuf_puts(&b, ", \"index\": null}\n");
    }
    return send_json(s, c, 200, &b);
}

/* ---- search, images, thumbnails ---- */

static enum MHD_Result no_index(mc_server *s, struct MHD_Connection *c) {
    return send_error(s, c, 404, "no index: start the server with --db photos.db ('mobileclip index' makes one)");
}

/* The k nearest indexed images of one query (a text or an image). */
static enum MHD_Result do_search(mc_server *s, struct MHD_Connection *c, const mc_serve_input *q, int k) {
    if (!s->index) return no_index(s, c);
    encoded e;
    int http, n = 0;
    mc_error err;
    if (encode_inputs(s, q, 1, &e, &http, &err) != MC_OK) return send_error(s, c, http, err.message);
    mc_search_hit *hits = mc_malloc_array((size_t)k, sizeof *hits);
    mc_index_image *im = malloc(sizeof *im);
    if (!hits || !im) {
        free(e.emb);
        free(hits);
        free(im);
        return send_error(s, c, 503, "out of memory");
    }
    mc_status st = mc_index_search(s->index, e.emb, s->info.embed_dim, k, hits, &n, &err);
    free(e.emb);
    if (st != MC_OK) {
        free(hits);
        free(im);
        return send_error(s, c, 500, err.message);
    }
    mc_sbuf b = {0};
    mc_sbuf_puts(&b, "{\"object\": \"list\", \"data\": [");
    for (int i = 0, w = 0; i < n; i++) {
        /* an image forgotten since the scan's snapshot is left out */
        if (mc_index_get_image(s->index, hits[i].id, im, &err) != MC_OK) continue;
        mc_sbuf_printf(&b, "%s{\"id\": %lld, \"score\": %.6f, \"path\": ", w++ ? ", " : "", (long long)hits[i].id,
                       hits[i].score);
        mc_sbuf_json_str(&b, im->path, strlen(im->path));
        mc_sbuf_printf(&b, ", \"width\": %d, \"height\": %d}", im->width, im->height);
    }
    mc_sbuf_puts(&b, "], \"model\": ");
    mc_sbuf_json_str(&b, s->model_name, strlen(s->model_name));
    mc_sbuf_puts(&b, "}\n");
    free(hits);
    free(im);
    return send_json(s, c, 200, &b);
}

static enum MHD_Result do_search_get(mc_server *s, struct MHD_Connection *c) {
    if (!s->index) return no_index(s, c);
    const char *q = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "q");
    const char *ks = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "k");
    if (!q || !*q) return send_error(s, c, 400, "missing query: /v1/search?q=TEXT[&k=N]");
    size_t len = strlen(q);
    if (len > s->p.limits.max_text_bytes) {
        char msg[128];
        snprintf(msg, sizeof msg, "q: text of %zu bytes exceeds the limit of %zu bytes", len, s->p.limits.max_text_bytes);
        return send_error(s, c, 413, msg);
    }
    long k = 10;
    if (ks && (k = mc_serve_parse_count(ks, s->p.limits.max_k)) < 1) {
        char msg[96];
        snprintf(msg, sizeof msg, "k: expected an integer from 1 to %d", s->p.limits.max_k);
        return send_error(s, c, 400, msg);
    }
    mc_serve_input in = {MC_INPUT_TEXT, q, len, NULL};
    return do_search(s, c, &in, (int)k);
}

/* "/v1/images/123" -> 123; -1 when the rest is not a decimal id */
static int64_t path_id(const char *rest) {
    int64_t v = 0;
    if (!*rest || strlen(rest) > 18) return -1;
    for (const char *p = rest; *p; p++) {
        if (*p < '0' || *p > '9') return -1;
        v = v * 10 + (*p - '0');
    }
    return v;
}

static const char *sniff_type(const unsigned char *d, size_t n) {
    if (n >= 3 && d[0] == 0xFF && d[1] == 0xD8 && d[2] == 0xFF) return "image/jpeg";
    if (n >= 8 && !memcmp(d, "\x89PNG\r\n\x1a\n", 8)) return "image/png";
    if (n >= 12 && !memcmp(d, "RIFF", 4) && !memcmp(d + 8, "WEBP", 4)) return "image/webp";
    return "application/octet-stream";
}

static enum MHD_Result not_indexed(mc_server *s, struct MHD_Connection *c, int64_t id) {
    char msg[96];
    snprintf(msg, sizeof msg, "no indexed image with id %lld", (long long)id);
    return send_error(s, c, 404, msg);
}

/* The indexed file itself (id's stored path), streamed from its descriptor. */
static enum MHD_Result do_image(mc_server *s, struct MHD_Connection *c, int64_t id, const char *path) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat sb;
    unsigned char head[16];
    ssize_t hn;
    if (fd < 0 || fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode) || (hn = pread(fd, head, sizeof head, 0)) < 0) {
        if (fd >= 0) close(fd);
        char msg[96];
        snprintf(msg, sizeof msg, "image %lld is indexed but its file cannot be read now", (long long)id);
        return send_error(s, c, 404, msg);
    }
    struct MHD_Response *r = MHD_create_response_from_fd((uint64_t)sb.st_size, fd);   /* closes fd */
    if (!r) {
        close(fd);
        return MHD_NO;
    }
    return send_response(s, c, 200, sniff_type(head, (size_t)hn), "private, max-age=300", r);
}

/* A JPEG of the image scaled to fit in thumbnail_size (never enlarged),
 * kept in memory until the file changes. */
static enum MHD_Result do_thumbnail(mc_server *s, struct MHD_Connection *c, int64_t id, const char *path) {
    mc_error err;
    struct stat sb;
    int64_t mtime = 0;
    if (stat(path, &sb) == 0) mtime = (int64_t)sb.st_mtim.tv_sec * 1000000000 + sb.st_mtim.tv_nsec;
    thumb *slot = &s->thumbs[(uint64_t)id % THUMB_SLOTS];
    unsigned char *jpeg = NULL;
    size_t len = 0;
    pthread_mutex_lock(&s->thumb_lock);
    if (slot->jpeg && slot->id == id && slot->mtime_ns == mtime && slot->size == (int64_t)sb.st_size &&
        (jpeg = malloc(slot->len))) {
        memcpy(jpeg, slot->jpeg, slot->len);
        len = slot->len;
    }
    pthread_mutex_unlock(&s->thumb_lock);
    if (jpeg) {
        struct MHD_Response *r = MHD_create_response_from_buffer(len, jpeg, MHD_RESPMEM_MUST_FREE);
        if (!r) { free(jpeg); return MHD_NO; }
        return send_response(s, c, 200, "image/jpeg", "private, max-age=300", r);
    }
    mc_file_map map;
    mc_image img = {0}, small = {0};
    int over = 0, http = 404;
    mc_status st = mc_file_map_open(path, &map, &err);
    if (st == MC_OK) {
        st = mc_image_load_memory_max(map.data, map.size, 1, s->p.limits.max_image_pixels, &img, &over, &err);
        mc_file_map_close(&map);
        if (st != MC_OK) http = over ? 413 : 415;
    }
    if (st == MC_OK) {
        int T = s->p.thumbnail_size, w = img.width, h = img.height;
        if (w > T || h > T) {
            if (w >= h) { h = (int)((double)h * T / w + 0.5); w = T; }
            else { w = (int)((double)w * T / h + 0.5); h = T; }
            if (w < 1) w = 1;
            if (h < 1) h = 1;
            st = mc_image_resample(&img, w, h, MC_INTERP_BILINEAR, &small, &err);
            mc_image_free(&img);
        } else {
            small = img;
        }
        if (st == MC_OK) st = mc_image_encode_jpeg(&small, THUMB_QUALITY, &jpeg, &len, &err);
        mc_image_free(&small);
        if (st != MC_OK) http = 500;
    }
    if (st != MC_OK) {
        char msg[MC_ERROR_MESSAGE_MAX + 64];
        snprintf(msg, sizeof msg, "thumbnail of image %lld: %s", (long long)id, err.message);
        return send_error(s, c, http, msg);
    }
    unsigned char *keep = malloc(len);
    if (keep) {
        memcpy(keep, jpeg, len);
        pthread_mutex_lock(&s->thumb_lock);
        free(slot->jpeg);
        *slot = (thumb){id, (int64_t)sb.st_size, mtime, keep, len};
        pthread_mutex_unlock(&s->thumb_lock);
    }
    struct MHD_Response *r = MHD_create_response_from_buffer(len, jpeg, MHD_RESPMEM_MUST_FREE);
    if (!r) { free(jpeg); return MHD_NO; }
    return send_response(s, c, 200, "image/jpeg", "private, max-age=300", r);
}

/* ---- dispatch ---- */

static enum MHD_Result route(mc_server *s, struct MHD_Connection *c, const char *url, const char *method,
                             req_state *rs) {
    int get = !strcmp(method, "GET") || !strcmp(method, "HEAD"), post = !strcmp(method, "POST");
    if (!strcmp(url, "/")) {
        if (!get) return send_error(s, c, 405, "use GET");
        return send_buf(s, c, 200, "text/html; charset=utf-8", (void *)mc_serve_page, strlen(mc_serve_page), 0);
    }
    if (!strcmp(url, "/health")) {
        if (!get) return send_error(s, c, 405, "use GET");
        return do_health(s, c);
    }
    if (!strncmp(url, "/v1/images/", 11) || !strncmp(url, "/v1/thumbnails/", 15)) {
        if (!get) return send_error(s, c, 405, "use GET");
        int is_thumb = url[4] == 't';
        int64_t id = path_id(url + (is_thumb ? 15 : 11));
        /* only paths the index holds are ever served: the id's stored path */
        if (!s->index) return no_index(s, c);
        mc_index_image *im = malloc(sizeof *im);
        mc_error err;
        if (!im) return send_error(s, c, 503, "out of memory");
        if (id < 0 || mc_index_get_image(s->index, id, im, &err) != MC_OK) {
            free(im);
            return not_indexed(s, c, id);
        }
        enum MHD_Result ret = is_thumb ? do_thumbnail(s, c, id, im->path) : do_image(s, c, id, im->path);
        free(im);
        return ret;
    }
    mc_serve_req_type type;
    if (!strcmp(url, "/v1/embeddings")) type = MC_REQ_EMBEDDINGS;
    else if (!strcmp(url, "/v1/classify")) type = MC_REQ_CLASSIFY;
    else if (!strcmp(url, "/v1/search")) type = MC_REQ_SEARCH;
    else return send_error(s, c, 404, "no such endpoint");
    if (type == MC_REQ_SEARCH && get) return do_search_get(s, c);
    if (!post) return send_error(s, c, 405, type == MC_REQ_SEARCH ? "use GET ?q= or POST with a JSON body"
                                                                     : "use POST with a JSON body");
    if (type == MC_REQ_SEARCH && !s->index) return no_index(s, c);
    if (rs->too_big) {
        char msg[128];
        snprintf(msg, sizeof msg, "body exceeds the limit of %zu bytes", s->p.limits.max_body_bytes);
        return send_error(s, c, 413, msg);
    }
    mc_serve_request rq;
    int http;
    mc_error err;
    if (mc_serve_parse(type, rs->body.p, rs->body.len, &s->p.limits, &rq, &http, &err) != MC_OK)
        return send_error(s, c, http, err.message);
    enum MHD_Result ret = type == MC_REQ_EMBEDDINGS ? do_embeddings(s, c, &rq)
                          : type == MC_REQ_CLASSIFY ? do_classify(s, c, &rq)
                                                    : do_search(s, c, &rq.inputs[0], rq.k);
    mc_serve_request_free(&rq);
    return ret;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                                  const char *version, const char *upload_data, size_t *upload_size, void **con_cls) {
    mc_server *s = cls;
    req_state *rs = *con_cls;
    if (!rs) {
        rs = calloc(1, sizeof *rs);
        if (!rs) return MHD_NO;
        rs->t0 = mc_now_s();
        snprintf(rs->what, sizeof rs->what, "%.15s %.140s", method, url);
        *con_cls = rs;
        pthread_mutex_lock(&s->lock);
        s->active++;
        int draining = s->draining;
        pthread_mutex_unlock(&s->lock);
        if (draining) return send_error(s, c, 503, "the server is shutting down");
        /* a declared oversized body is refused before it is read */
        const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
        if (cl) {
            char *end;
            unsigned long long v = strtoull(cl, &end, 10);
            if (*end == 0 && v > s->p.limits.max_body_bytes) {
                rs->too_big = 1;
                return route(s, c, url, method, rs);
            }
        }
        return MHD_YES;
    }
    if (*upload_size) {
        if (!rs->too_big && rs->body.len + *upload_size > s->p.limits.max_body_bytes) {
            rs->too_big = 1;
            mc_sbuf_free(&rs->body);
        }
        if (!rs->too_big) mc_sbuf_put(&rs->body, upload_data, *upload_size);
        *upload_size = 0;
        return MHD_YES;
    }
    if (rs->body.oom) return send_error(s, c, 503, "out of memory reading the body");
    return route(s, c, url, method, rs);
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls, enum MHD_RequestTerminationCode toe) {
    mc_server *s = cls;
    req_state *rs = *con_cls;
    if (!rs) return;
    if (s->p.log_requests) {
        const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_HTTP_STATUS);
        logf_(s, MC_LOG_INFO, "%s %u %.1f ms%s", rs->what, ci ? ci->http_status : 0, (mc_now_s() - rs->t0) * 1e3,
              toe == MHD_REQUEST_TERMINATED_COMPLETED_OK ? "" : " (connection ended early)");
    }
    mc_sbuf_free(&rs->body);
    free(rs);
    *con_cls = NULL;
    pthread_mutex_lock(&s->lock);
    s->active--;
    s->served++;
    if (s->active == 0) pthread_cond_broadcast(&s->idle);
    pthread_mutex_unlock(&s->lock);
}

/* ---- start and stop ---- */

/* Frees what mc_server_start made (the daemon is stopped by then). */
static void server_free(mc_server *s) {
    mc_pool_free(s->pool);
    if (s->thumbs)
        for (int i = 0; i < THUMB_SLOTS; i++) free(s->thumbs[i].jpeg);
    free(s->thumbs);
    pthread_mutex_destroy(&s->thumb_lock);
    pthread_mutex_destroy(&s->lock);
    pthread_cond_destroy(&s->idle);
    free(s);
}

mc_status mc_server_start(const mc_model *model, const mc_server_params *params, mc_server **out, mc_error *err) {
    *out = NULL;
    if (!model) return mc_fail(err, MC_ERR_INVALID_ARG, "server: no model");
    mc_server_params p = params ? *params : mc_server_default_params();
    if (p.port < 0 || p.port > 65535) return mc_fail(err, MC_ERR_INVALID_ARG, "server: port %d is not in 0..65535", p.port);
    if (p.max_connections < 1) return mc_fail(err, MC_ERR_INVALID_ARG, "server: max_connections %d", p.max_connections);
    const mc_serve_limits *l = &p.limits;
    if (l->max_inputs < 1 || l->max_labels < 1 || l->max_k < 1 || !l->max_body_bytes || !l->max_image_bytes ||
        !l->max_image_pixels || !l->max_text_bytes || l->connection_timeout_s < 0 || !(l->request_timeout_s >= 0))
        return mc_fail(err, MC_ERR_INVALID_ARG, "server: a limit is zero or negative");
    const char *host = p.host ? p.host : "127.0.0.1";
    struct sockaddr_storage addr;
    memset(&addr, 0, sizeof addr);
    struct sockaddr_in *a4 = (struct sockaddr_in *)&addr;
    struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&addr;
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION | MHD_USE_ITC | MHD_USE_ERROR_LOG;
    if (inet_pton(AF_INET, host, &a4->sin_addr) == 1) {
        a4->sin_family = AF_INET;
        a4->sin_port = htons((uint16_t)p.port);
    } else if (inet_pton(AF_INET6, host, &a6->sin6_addr) == 1) {
        a6->sin6_family = AF_INET6;
        a6->sin6_port = htons((uint16_t)p.port);
        flags |= MHD_USE_IPv6;
    } else {
        return mc_fail(err, MC_ERR_INVALID_ARG, "server: host '%s' is not a numeric IPv4 or IPv6 address", host);
    }
    if (p.thumbnail_size < 16 || p.thumbnail_size > 4096)
        return mc_fail(err, MC_ERR_INVALID_ARG, "server: thumbnail size %d is not in 16..4096", p.thumbnail_size);
    mc_server *s = calloc(1, sizeof *s);
    if (!s) return mc_fail(err, MC_ERR_NOMEM, "out of memory");
    s->model = model;
    mc_model_get_info(model, &s->info);
    if (p.index) {
        char id[256];
        mc_status ist = mc_index_get_info(p.index, &s->iinfo, err);
        if (ist == MC_OK) ist = mc_model_id(model, id, sizeof id, err);
        if (ist == MC_OK && s->iinfo.count > 0 && s->iinfo.dim != s->info.embed_dim)
            ist = mc_fail(err, MC_ERR_INVALID_ARG, "the index holds %d-d embeddings, the model makes %d-d ones",
                          s->iinfo.dim, s->info.embed_dim);
        else if (ist == MC_OK && s->iinfo.model_id[0] && strcmp(s->iinfo.model_id, id) != 0)
            ist = mc_fail(err, MC_ERR_INVALID_ARG, "the index was made with another model (%s%s%s); serve it with that one",
                          s->iinfo.model_path[0] ? s->iinfo.model_path : "id ", s->iinfo.model_path[0] ? "" : s->iinfo.model_id,
                          "");
        s->thumbs = ist == MC_OK ? calloc(THUMB_SLOTS, sizeof *s->thumbs) : NULL;
        if (ist == MC_OK && !s->thumbs) ist = mc_fail(err, MC_ERR_NOMEM, "out of memory");
        if (ist != MC_OK) {
            free(s);
            return ist;
        }
        s->index = p.index;
    }
    pthread_mutex_init(&s->thumb_lock, NULL);
    s->tok = mc_model_tokenizer(model);
    snprintf(s->host, sizeof s->host, "%s", host);
    snprintf(s->model_name, sizeof s->model_name, "%s", p.model_name ? p.model_name : "mobileclip");
    p.host = s->host;
    p.model_name = s->model_name;
    s->p = p;
    s->started = mc_now_s();
    pthread_mutex_init(&s->lock, NULL);
    pthread_cond_init(&s->idle, NULL);
    mc_status st = mc_pool_new(model, &p.pool, &s->pool, err);
    if (st != MC_OK) {
        server_free(s);
        return st;
    }
    s->d = MHD_start_daemon(flags, (uint16_t)p.port, NULL, NULL, on_request, s,
                            MHD_OPTION_EXTERNAL_LOGGER, mhd_logger, s,
                            MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&addr,
                            MHD_OPTION_CONNECTION_LIMIT, (unsigned)p.max_connections,
                            MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)l->connection_timeout_s,
                            MHD_OPTION_NOTIFY_COMPLETED, on_completed, s,
                            MHD_OPTION_END);
    if (!s->d) {
        server_free(s);
        return mc_fail(err, MC_ERR_IO, "server: cannot listen on %s port %d (in use, or not allowed)", host, p.port);
    }
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(s->d, MHD_DAEMON_INFO_BIND_PORT);
    s->port = di ? di->port : p.port;
    *out = s;
    return MC_OK;
}

int mc_server_port(const mc_server *s) { return s->port; }

mc_status mc_server_reload_index(mc_server *s, mc_error *err) {
    if (!s->index) return MC_OK;
    mc_index_info ii;
    mc_status st = mc_index_reload(s->index, err);
    if (st == MC_OK) st = mc_index_get_info(s->index, &ii, err);
    if (st != MC_OK) return st;
    pthread_mutex_lock(&s->lock);
    s->iinfo = ii;
    pthread_mutex_unlock(&s->lock);
    logf_(s, MC_LOG_INFO, "index reloaded: %lld images", (long long)ii.count);
    return MC_OK;
}

void mc_server_stop(mc_server *s, double drain_s) {
    if (!s) return;
    /* no new connections; connections already open get 503 for new requests */
    MHD_socket ls = MHD_quiesce_daemon(s->d);
    if (ls != MHD_INVALID_SOCKET) close(ls);
    pthread_mutex_lock(&s->lock);
    s->draining = 1;
    struct timespec dl;
    clock_gettime(CLOCK_REALTIME, &dl);
    double whole = floor(drain_s > 0 ? drain_s : 0);
    dl.tv_sec += (time_t)whole;
    dl.tv_nsec += (long)((drain_s - whole) * 1e9);
    if (dl.tv_nsec >= 1000000000L) { dl.tv_sec++; dl.tv_nsec -= 1000000000L; }
    int left = s->active;
    if (left) logf_(s, MC_LOG_INFO, "draining: %d request%s in progress", left, left == 1 ? "" : "s");
    while (s->active > 0 && drain_s > 0)
        if (pthread_cond_timedwait(&s->idle, &s->lock, &dl) != 0) break;
    left = s->active;
    pthread_mutex_unlock(&s->lock);
    if (left) logf_(s, MC_LOG_WARN, "stopping with %d request%s unfinished after %.3g s", left, left == 1 ? "" : "s", drain_s);
    MHD_stop_daemon(s->d);
    server_free(s);
}
