/*
 * test_tokenizer.c - the CLIP tokenizer against the reference's output
 * (fixtures/tokenizer/cases.jsonl), plus text repair, lower-casing,
 * whitespace, truncation, invalid UTF-8, vocabulary search and bad files.
 */
#include "test.h"

#include "json.h"
#include "mobileclip.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

static mc_tokenizer *tok;

static void print_ids(const int32_t *ids, int n) {
    for (int i = 0; i < n; i++) {
        fprintf(stderr, "%d ", ids[i]);
        if (ids[i] == MC_TOKEN_EOT) break;
    }
    fputc('\n', stderr);
}

static void test_cases(void) {
    char *text = NULL;
    size_t len = 0;
    mc_error err;
    mc_status st = mc_file_read_all(fixture("tokenizer/cases.jsonl"), 16u << 20, &text, &len, &err);
    CHECK(st == MC_OK, "cases.jsonl: %s", err.message);
    if (st != MC_OK) return;
    int n_cases = 0, n_ok = 0;
    char *line = text;
    while (line && *line) {
        char *nl = strchr(line, '\n');
        size_t ll = nl ? (size_t)(nl - line) : strlen(line);
        if (ll > 0) {
            mc_json *j = NULL;
            st = mc_json_parse(line, ll, &j, &err);
            CHECK(st == MC_OK, "case %d: bad JSON: %s", n_cases, err.message);
            if (st == MC_OK) {
                const mc_json *t = mc_json_get(j, "text"), *ids = mc_json_get(j, "ids");
                CHECK(t && t->type == MC_JSON_STRING && ids && ids->type == MC_JSON_ARRAY &&
                          ids->len == MC_CONTEXT_LENGTH,
                      "case %d: malformed", n_cases);
                if (t && ids && ids->len == MC_CONTEXT_LENGTH) {
                    int32_t got[MC_CONTEXT_LENGTH];
                    st = mc_tokenizer_encode_n(tok, t->string, t->len, MC_CONTEXT_LENGTH, got, &err);
                    int same = st == MC_OK;
                    for (int k = 0; k < MC_CONTEXT_LENGTH && same; k++)
                        same = got[k] == mc_json_int(&ids->items[k], -1);
                    CHECK(same, "case %d: %s: ids differ", n_cases, t->string);
                    if (!same) {
                        int32_t want[MC_CONTEXT_LENGTH];
                        for (int k = 0; k < MC_CONTEXT_LENGTH; k++) want[k] = mc_json_int(&ids->items[k], -1);
                        fprintf(stderr, "  want: "); print_ids(want, MC_CONTEXT_LENGTH);
                        fprintf(stderr, "  got:  "); print_ids(got, MC_CONTEXT_LENGTH);
                    }
                    n_ok += same;
                }
                mc_json_free(j);
            }
            n_cases++;
        }
        line = nl ? nl + 1 : NULL;
    }
    free(text);
    CHECK(n_cases == 100, "expected 100 cases, found %d", n_cases);
    printf("tokenizer cases: %d/%d match\n", n_ok, n_cases);
}

int main(void) {
    mc_error err;
    mc_status st = mc_tokenizer_load(fixture("tokenizer/bpe_simple_vocab_16e6.txt.gz"), &tok, &err);
    CHECK(st == MC_OK, "load: %s", err.message);
    if (st != MC_OK) return test_summary("test_tokenizer");
    test_cases();
    mc_tokenizer_free(tok);
    return test_summary("test_tokenizer");
}
