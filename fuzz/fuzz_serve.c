/*
 * fuzz_serve.c - libFuzzer entry point for the server's untrusted input:
 * request bodies (the first byte picks embeddings, classify or search; the
 * rest is the body), the base64 / data-URL decoder on the raw bytes, the
 * images a parsed request carries (decoded with a small pixel limit), and
 * the JSON string writer (its output must parse back to valid JSON).
 */
#include "core/json.h"
#include "io/image.h"
#include "serve/b64.h"
#include "serve/request.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    mc_serve_limits lim = mc_serve_default_limits();
    lim.max_inputs = 8;
    lim.max_image_bytes = 1 << 16;
    lim.max_text_bytes = 1 << 12;
    lim.max_labels = 64;
    lim.max_k = 100;
    lim.max_body_bytes = 1 << 17;
    mc_serve_req_type type = (mc_serve_req_type)(data[0] % 3);
    const char *body = (const char *)data + 1;
    size_t len = size - 1;
    mc_serve_request rq;
    int http;
    mc_error err;
    if (mc_serve_parse(type, body, len, &lim, &rq, &http, &err) == MC_OK) {
        for (int i = 0; i < rq.n_inputs; i++) {
            if (rq.inputs[i].kind != MC_INPUT_IMAGE) continue;
            mc_image img;
            int over;
            if (mc_image_load_memory_max(rq.inputs[i].image, rq.inputs[i].len, 1, 1 << 18, &img, &over, &err) == MC_OK)
                mc_image_free(&img);
        }
        mc_serve_request_free(&rq);
    } else if (http < 400 || http > 503 || !err.message[0]) {
        __builtin_trap();   /* a refusal without its status or reason */
    }
    unsigned char *out;
    size_t n;
    if (mc_data_url_decode(body, len, &out, &n, &err) == MC_OK) {
        if (n > mc_b64_decoded_max(len)) __builtin_trap();
        free(out);
    }
    /* the writer's output is always valid JSON holding one string */
    mc_sbuf b = {0};
    mc_sbuf_json_str(&b, body, len);
    mc_json *root = NULL;
    if (!b.oom) {
        if (mc_json_parse(b.p, b.len, &root, &err) != MC_OK || root->type != MC_JSON_STRING) __builtin_trap();
        mc_json_free(root);
    }
    mc_sbuf_free(&b);
    return 0;
}
