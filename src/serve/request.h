/*
 * serve/request.h - the server's request and response bodies: limits, the
 * JSON requests parsed and checked against them (every length, count and
 * type), images decoded from base64 / data URLs, and a growable buffer that
 * writes JSON responses.  No sockets here: this is what the fuzz target and
 * the sanitizer tests drive.
 */
#ifndef MC_SERVE_REQUEST_H
#define MC_SERVE_REQUEST_H

#include "core/json.h"

#include <stdarg.h>

typedef struct mc_serve_limits {
    size_t max_body_bytes;       /* a request body (default 32 MiB) */
    size_t max_image_bytes;      /* one image's encoded bytes after base64 (default 16 MiB) */
    size_t max_image_pixels;     /* one image's width x height (default 40 megapixels) */
    size_t max_text_bytes;       /* one text (default 16 KiB) */
    int max_inputs;              /* texts and images in one request (default 64) */
    int max_labels;              /* labels x templates of one classification (default 1024) */
    int max_k;                   /* search results (default 1000) */
    double request_timeout_s;    /* waiting for a worker before 503 (default 30) */
    int connection_timeout_s;    /* an idle or stalled connection is closed (default 30) */
} mc_serve_limits;

mc_serve_limits mc_serve_default_limits(void);

typedef enum mc_serve_req_type {
    MC_REQ_EMBEDDINGS,   /* {"model"?, "input": TEXT | [TEXT | {"text"} | {"image"}], "encoding_format"?} */
    MC_REQ_CLASSIFY,     /* {"image": IMG | "images": [IMG], "labels": [..], "templates"?: [..], "top_k"?} */
    MC_REQ_SEARCH        /* {"image": IMG | "text": TEXT, "k"?} */
} mc_serve_req_type;

typedef enum mc_serve_kind { MC_INPUT_TEXT = 0, MC_INPUT_IMAGE } mc_serve_kind;

typedef struct mc_serve_input {
    mc_serve_kind kind;
    const char *text;            /* TEXT: into the request's JSON tree, len bytes */
    size_t len;
    unsigned char *image;        /* IMAGE: the decoded file bytes (malloc'd), len bytes */
} mc_serve_input;

typedef struct mc_serve_request {
    mc_serve_req_type type;
    mc_json *root;
    mc_serve_input *inputs;      /* embeddings: input; classify: images; search: the query */
    int n_inputs;
    const mc_json **labels;      /* classify: strings of the tree */
    int n_labels;
    const mc_json **templates;   /* classify: strings with "{}" (none: "a photo of a {}.") */
    int n_templates;
    int k;                       /* classify: top_k (default 5, at most n_labels); search: k (default 10) */
} mc_serve_request;

/* Parses and checks a request body.  On failure *http is the status to
 * answer (400 malformed or wrong types, 413 over a limit) and err says why. */
mc_status mc_serve_parse(mc_serve_req_type type, const char *body, size_t len, const mc_serve_limits *lim,
                         mc_serve_request *req, int *http, mc_error *err);
void mc_serve_request_free(mc_serve_request *req);

/* Parses a positive decimal count (query parameters: k); -1 when s is not one. */
long mc_serve_parse_count(const char *s, long max);

/* A growable byte buffer for response bodies; an allocation failure sets
 * oom and makes every later write a no-op. */
typedef struct mc_sbuf {
    char *p;
    size_t len, cap;
    int oom;
} mc_sbuf;

void mc_sbuf_put(mc_sbuf *b, const char *s, size_t n);
void mc_sbuf_puts(mc_sbuf *b, const char *s);
void mc_sbuf_printf(mc_sbuf *b, const char *fmt, ...) MC_PRINTF(2, 3);
/* s[0..n) as a JSON string literal: quotes, backslashes and control
 * characters escaped, invalid UTF-8 replaced by U+FFFD. */
void mc_sbuf_json_str(mc_sbuf *b, const char *s, size_t n);
/* [x0, x1, ...] with 9 significant digits (float32 round-trips). */
void mc_sbuf_floats(mc_sbuf *b, const float *x, int n);
void mc_sbuf_free(mc_sbuf *b);

/* {"error": {"message": MSG, "type": TYPE, "code": HTTP}} */
void mc_sbuf_error(mc_sbuf *b, int http, const char *msg);

#endif /* MC_SERVE_REQUEST_H */
