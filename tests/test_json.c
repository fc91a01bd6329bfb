/*
 * test_json.c - the JSON reader: valid documents and typed access, invalid
 * documents, nesting limits, string escapes and \u / surrogate decoding.
 */
#include "test.h"

#include "core/json.h"

static mc_json *parse_ok(const char *s) {
    mc_json *j = NULL;
    mc_error err;
    mc_error_clear(&err);
    mc_status st = mc_json_parse(s, strlen(s), &j, &err);
    CHECK(st == MC_OK && j, "should parse: %s (%s)", s, err.message);
    return j;
}

static void parse_bad(const char *s, size_t len) {
    mc_json *j = NULL;
    mc_error err;
    mc_error_clear(&err);
    mc_status st = mc_json_parse(s, len, &j, &err);
    CHECK(st == MC_ERR_FORMAT && j == NULL && err.message[0], "should fail: %.*s", (int)(len > 60 ? 60 : len), s);
    mc_json_free(j);
}

static void test_valid(void) {
    mc_json *j = parse_ok(" {\"a\": 1, \"b\": [true, false, null, -2.5e3, 0], \"c\": {\"d\": \"x\"}, \"e\": {}} ");
    if (j) {
        CHECK(j->type == MC_JSON_OBJECT && j->len == 4, "object");
        CHECK(mc_json_int(mc_json_get(j, "a"), -1) == 1, "a");
        const mc_json *b = mc_json_get(j, "b");
        CHECK(b && b->type == MC_JSON_ARRAY && b->len == 5, "b");
        if (b && b->len == 5) {
            CHECK(mc_json_bool(&b->items[0], false) == true && mc_json_bool(&b->items[1], true) == false, "bools");
            CHECK(b->items[2].type == MC_JSON_NULL, "null");
            CHECK(mc_json_number(&b->items[3], 0) == -2500.0, "number");
            CHECK(mc_json_int(&b->items[4], 7) == 0, "zero");
        }
        CHECK(!strcmp(mc_json_str(mc_json_path(j, "c.d"), ""), "x"), "path");
        CHECK(mc_json_path(j, "c.zz") == NULL && mc_json_get(j, "zz") == NULL, "missing");
        CHECK(mc_json_int(mc_json_get(j, "c"), 5) == 5, "typed default");
        CHECK(mc_json_get(mc_json_get(j, "e"), "x") == NULL, "empty object");
        mc_json_free(j);
    }
    const char *scalars[] = {"0", "-0", "1e10", "1E-2", "3.25", "\"\"", "true", "null", "[]", "[[]]",
                             "NaN", "Infinity", "-Infinity"};
    for (size_t i = 0; i < sizeof scalars / sizeof scalars[0]; i++) mc_json_free(parse_ok(scalars[i]));
    j = parse_ok("123456789012");
    CHECK(j && mc_json_int(j, -7) == -7, "int out of range gives the default");
    CHECK(j && mc_json_number(j, 0) == 123456789012.0, "large number");
    mc_json_free(j);
}

static void test_strings(void) {
    mc_json *j = parse_ok("\"a\\\"b\\\\c\\/d\\b\\f\\n\\r\\t\"");
    CHECK(j && !strcmp(j->string, "a\"b\\c/d\b\f\n\r\t"), "simple escapes");
    mc_json_free(j);
    j = parse_ok("\"\\u00e9\\u4e2d\\ud83d\\ude00\"");
    CHECK(j && !strcmp(j->string, "\xc3\xa9\xe4\xb8\xad\xf0\x9f\x98\x80"), "unicode escapes and surrogate pair");
    mc_json_free(j);
    j = parse_ok("\"\\ud800x\"");
    CHECK(j && !strcmp(j->string, "\xef\xbf\xbdx"), "lone surrogate becomes U+FFFD");
    mc_json_free(j);
    j = parse_ok("\"a\\u0000b\"");
    CHECK(j && j->len == 3 && j->string[1] == 0 && j->string[2] == 'b', "embedded NUL keeps its length");
    mc_json_free(j);
    j = parse_ok("\"\xc3\xa9 raw utf-8\"");
    CHECK(j && !strcmp(j->string, "\xc3\xa9 raw utf-8"), "raw UTF-8 passes through");
    mc_json_free(j);
}

static void test_invalid(void) {
    const char *bad[] = {"", " ", "{", "}", "[1,]", "[1 2]", "{\"a\" 1}", "{\"a\":}", "{a:1}", "{\"a\":1,}",
                         "\"abc", "\"\\x\"", "\"\\u12\"", "\"\\u12g4\"", "tru", "nul", "01", "1.", ".5",
                         "-", "1e", "1e+", "+1", "[1]x", "{} {}", "\"a\nb\"", "[\"\\", "nan", "-NaN",
                         "'a'"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) parse_bad(bad[i], strlen(bad[i]));
    /* length is honoured: a valid prefix followed by a cut */
    parse_bad("[1, 2]", 4);
    char longnum[700];
    memset(longnum, '1', sizeof longnum - 1);
    longnum[sizeof longnum - 1] = 0;
    parse_bad(longnum, strlen(longnum));
}

static void test_nesting(void) {
    size_t n = 100000;
    char *s = malloc(2 * n + 1);
    for (size_t i = 0; i < n; i++) { s[i] = '['; s[n + i] = ']'; }
    s[2 * n] = 0;
    parse_bad(s, 2 * n);
    for (size_t i = 0; i < n; i++) s[i] = '{';
    parse_bad(s, n);
    /* exactly at the limit still parses */
    size_t d = MC_JSON_MAX_DEPTH;
    for (size_t i = 0; i < d; i++) { s[i] = '['; s[d + i] = ']'; }
    s[2 * d] = 0;
    mc_json_free(parse_ok(s));
    free(s);
    /* many items */
    size_t m = 200000;
    char *arr = malloc(2 * m + 2);
    arr[0] = '[';
    for (size_t i = 0; i < m; i++) { arr[1 + 2 * i] = '1'; arr[2 + 2 * i] = ','; }
    arr[2 * m] = ']';
    arr[2 * m + 1] = 0;
    mc_json *j = parse_ok(arr);
    CHECK(j && j->len == m, "large array");
    mc_json_free(j);
    free(arr);
}

int main(void) {
    test_valid();
    test_strings();
    test_invalid();
    test_nesting();
    return test_summary("test_json");
}
