/*
 * test_tokenizer.c - the CLIP tokenizer against the reference's output
 * (fixtures/tokenizer/cases.jsonl), plus text repair, lower-casing,
 * whitespace, truncation, invalid UTF-8, the regex's character classes,
 * vocabulary search and bad files.
 */
#include "test.h"

#include "core/json.h"
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


/* Cleaning (ftfy repair, HTML unescape, whitespace, Python lower case):
 * inputs and the reference's cleaned text. */
static const struct { const char *in, *want; } clean_cases[] = {
    {"s\303\203\302\263",
     "s\303\263"},
    {"voil\303\203 le travail",
     "voil\303\240 le travail"},
    {"\303\203 la mode",
     "\303\240 la mode"},
    {"sch\303\203\302\266n",
     "sch\303\266n"},
    {"The Mona Lisa doesn\303\203\302\242\303\242\342\200\232\302\254\303\242\342\200\236\302\242t have eyebrows.",
     "the mona lisa doesn't have eyebrows."},
    {"\303\242\305\223\342\200\235 No problems",
     "\342\234\224 no problems"},
    {"&macr;\134_(\303\243\302\203\302\204)_/&macr;",
     "\302\257\134_(\343\203\204)_/\302\257"},
    {"Broken text&hellip; it&#x2019;s \357\254\202ubberi\357\254\201c!",
     "broken text\342\200\246 it's flubberific!"},
    {"\357\274\254\357\274\257\357\274\265\357\274\244\343\200\200\357\274\256\357\274\257\357\274\251\357\274\263\357\274\245\357\274\263",
     "loud noises"},
    {"na\303\257ve caf\303\251",
     "na\303\257ve caf\303\251"},
    {"\303\203\302\251t\303\203\302\251 \303\203  Paris",
     "\303\251t\303\251 \303\240 paris"},
    {"\303\220\305\270\303\221\342\202\254\303\220\302\270\303\220\302\262\303\220\302\265\303\221\342\200\232",
     "\320\277\321\200\320\270\320\262\320\265\321\202"},
    {"I \342\231\245 NY",
     "i \342\231\245 ny"},
    {"10\342\202\254 and 5\302\243",
     "10\342\202\254 and 5\302\243"},
    {"\342\200\234Hello,\342\200\235 she said.",
     "\042hello,\042 she said."},
    {"<b>&amp;</b> &amp;",
     "<b>&</b> &"},
    {"line1\015\012line2\015line3\342\200\250line4\302\205end",
     "line1 line2 line3 line4\342\200\246end"},
    {"\357\273\277BOM text",
     "bom text"},
    {"soft\302\255hyphen",
     "soft\302\255hyphen"},
    {"\304\260STANBUL",
     "i\314\207stanbul"},
    {"\316\237\316\224\316\237\316\243 \316\243\316\221 \316\221\316\243. \316\243",
     "\316\277\316\264\316\277\317\202 \317\203\316\261 \316\261\317\202. \317\203"},
    {"\341\272\236 stra\303\237e \307\205",
     "\303\237 stra\303\237e d\305\276"},
    {"\343\200\200a\342\200\203b\034 c\302\205 d\302\240e\342\200\257",
     "a b c\342\200\246 d e"},
    {"&EACUTE;t&eacute; &amp;amp; &lt;3 &#128; &#0; &#xD800; &copy",
     "\303\251t\303\251 & <3 \342\202\254 \357\277\275 \357\277\275 \302\251"},
    {"\357\254\200\357\254\203 \304\263 \307\210",
     "ffffi ij lj"},
    {"\033[1;31mbold\033[0m",
     "bold"},
    {"\303\237 \303\277 \305\270 \305\223 \305\222uvre",
     "\303\237 \303\277 \303\277 \305\223 \305\223uvre"},
};

static void test_clean(void) {
    int n = (int)(sizeof clean_cases / sizeof clean_cases[0]);
    for (int i = 0; i < n; i++) {
        char *out = NULL;
        mc_error err;
        mc_status st = mc_tokenizer_clean(clean_cases[i].in, &out, &err);
        CHECK(st == MC_OK && out && !strcmp(out, clean_cases[i].want), "clean %d: '%s' -> '%s', want '%s'", i,
              clean_cases[i].in, out ? out : "(null)", clean_cases[i].want);
        free(out);
    }
}

static int encode(const char *text, int ctx, int32_t *ids) {
    mc_error err;
    return mc_tokenizer_encode(tok, text, ctx, ids, &err) == MC_OK;
}

static int ids_equal(const int32_t *got, const int32_t *want, int n) {
    for (int i = 0; i < n; i++)
        if (got[i] != want[i]) return 0;
    return 1;
}

static void test_truncation(void) {
    int32_t ids[MC_CONTEXT_LENGTH + 8];
    /* "a photo of a dog" is SOT 320 1125 539 320 1929 EOT */
    static const int32_t full[7] = {MC_TOKEN_SOT, 320, 1125, 539, 320, 1929, MC_TOKEN_EOT};
    CHECK(encode("a photo of a dog", 7, ids) && ids_equal(ids, full, 7), "exact fit");
    static const int32_t six[6] = {MC_TOKEN_SOT, 320, 1125, 539, 320, MC_TOKEN_EOT};
    CHECK(encode("a photo of a dog", 6, ids) && ids_equal(ids, six, 6), "cut by one");
    static const int32_t three[3] = {MC_TOKEN_SOT, 320, MC_TOKEN_EOT};
    CHECK(encode("a photo of a dog", 3, ids) && ids_equal(ids, three, 3), "cut to 3");
    CHECK(encode("a photo of a dog", 1, ids) && ids[0] == MC_TOKEN_EOT, "context 1 keeps EOT only");
    static const int32_t padded[10] = {MC_TOKEN_SOT, 320, 1125, 539, 320, 1929, MC_TOKEN_EOT, 0, 0, 0};
    CHECK(encode("a photo of a dog", 10, ids) && ids_equal(ids, padded, 10), "zero padding");
    ids[MC_CONTEXT_LENGTH] = 12345;   /* nothing is written past the context */
    CHECK(encode("", MC_CONTEXT_LENGTH, ids) && ids[0] == MC_TOKEN_SOT && ids[1] == MC_TOKEN_EOT &&
              ids[2] == 0 && ids[MC_CONTEXT_LENGTH - 1] == 0 && ids[MC_CONTEXT_LENGTH] == 12345,
          "empty text");
    CHECK(encode(" \t\n\xe3\x80\x80 ", MC_CONTEXT_LENGTH, ids) && ids[1] == MC_TOKEN_EOT && ids[2] == 0,
          "whitespace only");
    /* a long text: 77 ids, EOT last, no zero */
    char longtext[4000] = "";
    for (int i = 0; i < 100; i++) strcat(longtext, "a dog ");
    CHECK(encode(longtext, MC_CONTEXT_LENGTH, ids) && ids[0] == MC_TOKEN_SOT &&
              ids[MC_CONTEXT_LENGTH - 1] == MC_TOKEN_EOT && ids[MC_CONTEXT_LENGTH - 2] == 320 && ids[MC_CONTEXT_LENGTH - 3] == 1929 &&
              ids[1] == 320 && ids[MC_CONTEXT_LENGTH] == 12345,
          "long text cut at 77 with EOT last");
    mc_error err;
    CHECK(mc_tokenizer_encode(tok, "x", 0, ids, &err) == MC_ERR_INVALID_ARG, "context 0 is rejected");
    CHECK(mc_tokenizer_encode(tok, NULL, 77, ids, &err) == MC_ERR_INVALID_ARG, "NULL text");
}

static void test_utf8(void) {
    int32_t ids[MC_CONTEXT_LENGTH];
    mc_error err;
    static const char *const bad[] = {"bad \xff byte", "overlong \xc0\x80", "surrogate \xed\xa0\x80",
                                      "cut \xe2\x82", "too big \xf4\x90\x80\x80", "lone \x80"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        mc_status st = mc_tokenizer_encode(tok, bad[i], MC_CONTEXT_LENGTH, ids, &err);
        CHECK(st == MC_ERR_INVALID_ARG && strstr(err.message, "UTF-8"), "invalid UTF-8 %zu accepted", i);
        char *out = NULL;
        CHECK(mc_tokenizer_clean(bad[i], &out, &err) == MC_ERR_INVALID_ARG && !out, "clean: invalid UTF-8 %zu", i);
    }
    /* NUL characters are text too when the length is given (and are removed) */
    int32_t a[MC_CONTEXT_LENGTH], b[MC_CONTEXT_LENGTH];
    CHECK(mc_tokenizer_encode_n(tok, "a\0 dog", 6, MC_CONTEXT_LENGTH, a, &err) == MC_OK &&
              mc_tokenizer_encode(tok, "a dog", MC_CONTEXT_LENGTH, b, &err) == MC_OK &&
              ids_equal(a, b, MC_CONTEXT_LENGTH),
          "NUL inside text");
    CHECK(mc_tokenizer_encode(tok, "a\0 cat", MC_CONTEXT_LENGTH, a, &err) == MC_OK && a[1] == 320 &&
              a[2] == MC_TOKEN_EOT,
          "encode stops at NUL");
}

/* Specials and the regex's contractions */
static void test_pieces(void) {
    int32_t ids[MC_CONTEXT_LENGTH];
    CHECK(encode("<start_of_text>a dog<end_of_text>", MC_CONTEXT_LENGTH, ids) && ids[1] == MC_TOKEN_SOT &&
              ids[2] == 320 && ids[3] == 1929 && ids[4] == MC_TOKEN_EOT && ids[5] == MC_TOKEN_EOT,
          "special tokens in text");
    int32_t up[MC_CONTEXT_LENGTH];
    CHECK(encode("A DOG'S", MC_CONTEXT_LENGTH, up) && encode("a dog's", MC_CONTEXT_LENGTH, ids) &&
              ids_equal(up, ids, MC_CONTEXT_LENGTH),
          "case-insensitive");
}

/* Where PCRE2's character classes differ from the reference's (Python's
 * regex module, IGNORECASE); ids from the reference tokenizer. */
static void test_regex_classes(void) {
    static const struct {
        const char *text;
        int n;
        int32_t ids[6];
    } cases[] = {
        /* U+0345 matches no alternative under IGNORECASE: dropped */
        {"\xcd\x85", 0, {0}},
        {"!\xcd\x85", 1, {256}},
        {"a\xcd\x85" "b", 2, {320, 321}},
        {"1\xcd\x85", 1, {272}},
        {"\xe2\x80\x8c\xcd\x85", 2, {728, 490}},
        {"\xce\xb1\xcd\x85", 3, {157, 122, 367}},   /* NFC: U+1FB3, a letter */
        /* U+180E is no \s for the regex module: a symbol piece */
        {"\xe1\xa0\x8e", 3, {157, 254, 492}},
        {"a\xe1\xa0\x8e" "b", 5, {320, 157, 254, 492, 321}},
        {"\xe1\xa0\x8e\xe2\x80\xaf!", 4, {157, 254, 492, 256}},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int32_t ids[MC_CONTEXT_LENGTH];
        int ok = encode(cases[i].text, MC_CONTEXT_LENGTH, ids) && ids[0] == MC_TOKEN_SOT &&
                 ids_equal(ids + 1, cases[i].ids, cases[i].n) && ids[1 + cases[i].n] == MC_TOKEN_EOT;
        CHECK(ok, "regex classes case %zu", i);
        if (!ok) { fprintf(stderr, "  got: "); print_ids(ids, MC_CONTEXT_LENGTH); }
    }
}

static char tmpdir[256];

static int write_file(const char *path, const void *data, size_t n) {
    FILE *f = fopen(path, "wb");
    if (!f) return 0;
    int ok = fwrite(data, 1, n, f) == n;
    return fclose(f) == 0 && ok;
}

static void test_vocab_files(void) {
    mc_error err;
    char path[512], found[1024];
    const char *vocab = fixture("tokenizer/bpe_simple_vocab_16e6.txt.gz");
    char abs_vocab[4096];
    CHECK(realpath(vocab, abs_vocab) != NULL, "realpath");

    /* search order: env, then near_path's folder */
    unsetenv(MC_VOCAB_ENV);
    snprintf(path, sizeof path, "%s/%s", tmpdir, MC_VOCAB_FILENAME);
    CHECK(symlink(abs_vocab, path) == 0, "symlink");
    CHECK(mc_tokenizer_find_vocab(tmpdir, found, sizeof found, &err) == MC_OK && !strcmp(found, path),
          "near folder: %s", found);
    char model[512];
    snprintf(model, sizeof model, "%s/model.pt", tmpdir);
    CHECK(mc_tokenizer_find_vocab(model, found, sizeof found, &err) == MC_OK && !strcmp(found, path),
          "near file: %s", found);
    setenv(MC_VOCAB_ENV, abs_vocab, 1);
    CHECK(mc_tokenizer_find_vocab(tmpdir, found, sizeof found, &err) == MC_OK && !strcmp(found, abs_vocab),
          "env first: %s", found);
    setenv(MC_VOCAB_ENV, "/nonexistent/vocab.gz", 1);
    CHECK(mc_tokenizer_find_vocab(tmpdir, found, sizeof found, &err) == MC_OK && !strcmp(found, path),
          "missing env file falls through: %s", found);
    unlink(path);
    char share[512];
    snprintf(share, sizeof share, "%s/%s", MC_SHARE_DIR, MC_VOCAB_FILENAME);
    if (access(share, F_OK) != 0 && access(MC_VOCAB_FILENAME, F_OK) != 0) {
        mc_status st = mc_tokenizer_find_vocab(tmpdir, found, sizeof found, &err);
        CHECK(st == MC_ERR_NOT_FOUND && strstr(err.message, "/nonexistent/vocab.gz") &&
                  strstr(err.message, tmpdir) && strstr(err.message, MC_SHARE_DIR),
              "not found lists the places tried: %s", err.message);
        mc_tokenizer *t = NULL;
        CHECK(mc_tokenizer_load(NULL, &t, &err) == MC_ERR_NOT_FOUND && !t, "load without a vocabulary");
    }
    setenv(MC_VOCAB_ENV, abs_vocab, 1);
    mc_tokenizer *t = NULL;
    CHECK(mc_tokenizer_load(NULL, &t, &err) == MC_OK && t, "load through $%s: %s", MC_VOCAB_ENV, err.message);
    mc_tokenizer_free(t);
    unsetenv(MC_VOCAB_ENV);

    /* an uncompressed copy works the same */
    gzFile gz = gzopen(vocab, "rb");
    static char plain[4 << 20];
    int n = gz ? gzread(gz, plain, sizeof plain) : -1;
    if (gz) gzclose(gz);
    CHECK(n > 1000000, "decompress the vocabulary");
    if (n <= 0) return;
    snprintf(path, sizeof path, "%s/plain.txt", tmpdir);
    CHECK(write_file(path, plain, (size_t)n), "write plain");
    t = NULL;
    CHECK(mc_tokenizer_load(path, &t, &err) == MC_OK, "plain vocabulary: %s", err.message);
    if (t) {
        int32_t a[MC_CONTEXT_LENGTH], b[MC_CONTEXT_LENGTH];
        const char *s = "A photo of a Granny Smith, supercalifragilisticexpialidocious!";
        CHECK(mc_tokenizer_encode(t, s, MC_CONTEXT_LENGTH, a, &err) == MC_OK &&
                  mc_tokenizer_encode(tok, s, MC_CONTEXT_LENGTH, b, &err) == MC_OK && ids_equal(a, b, MC_CONTEXT_LENGTH),
              "plain and gzip vocabularies agree");
        mc_tokenizer_free(t);
    }

    /* bad files */
    t = NULL;
    CHECK(mc_tokenizer_load("/nonexistent/x.gz", &t, &err) == MC_ERR_IO && !t, "missing file");
    CHECK(write_file(path, "hello\nworld\n", 12), "write");
    CHECK(mc_tokenizer_load(path, &t, &err) == MC_ERR_TOKENIZER && !t && strstr(err.message, "#version"),
          "no header: %s", err.message);
    CHECK(write_file(path, plain, 100000), "write");
    CHECK(mc_tokenizer_load(path, &t, &err) == MC_ERR_TOKENIZER && !t && strstr(err.message, "truncated"),
          "truncated: %s", err.message);
    char *broken = malloc((size_t)n);
    if (broken) {
        memcpy(broken, plain, (size_t)n);
        char *third = broken;
        for (int k = 0; k < 3; k++) third = strchr(third, '\n') + 1;
        *strchr(third, ' ') = 'x';   /* line 4 loses its separator */
        CHECK(write_file(path, broken, (size_t)n), "write");
        CHECK(mc_tokenizer_load(path, &t, &err) == MC_ERR_TOKENIZER && !t && strstr(err.message, "line 4"),
              "bad merge line: %s", err.message);
        free(broken);
    }
    /* a gzip stream cut short */
    FILE *f = fopen(vocab, "rb");
    static unsigned char gzdata[1 << 20];
    size_t gn = f ? fread(gzdata, 1, 300000, f) : 0;
    if (f) fclose(f);
    CHECK(gn == 300000 && write_file(path, gzdata, gn), "write cut gzip");
    mc_error_clear(&err);
    mc_status st = mc_tokenizer_load(path, &t, &err);
    CHECK(st == MC_ERR_TOKENIZER && !t && strstr(err.message, "gzip"), "cut gzip: %d %s", st, err.message);
    unlink(path);
}

int main(void) {
    mc_error err;
    mc_status st = mc_tokenizer_load(fixture("tokenizer/bpe_simple_vocab_16e6.txt.gz"), &tok, &err);
    CHECK(st == MC_OK, "load: %s", err.message);
    if (st != MC_OK) return test_summary("test_tokenizer");
    test_cases();
    test_clean();
    test_truncation();
    test_utf8();
    test_pieces();
    test_regex_classes();
    snprintf(tmpdir, sizeof tmpdir, "/tmp/mc_test_tok_XXXXXX");
    CHECK(mkdtemp(tmpdir) != NULL, "mkdtemp");
    test_vocab_files();
    rmdir(tmpdir);
    mc_tokenizer_free(tok);
    return test_summary("test_tokenizer");
}
