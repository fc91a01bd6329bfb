/*
 * replay.c - a fuzz target's entry point without libFuzzer: runs
 * LLVMFuzzerTestOneInput over every file in fuzz/regressions/<target>/ (the
 * inputs that once crashed or hung it; the folder may be absent while none
 * has) and over the files given as arguments.  make test builds one per
 * target with ASan/UBSan (gcc, no clang needed): a crash, a leak or undefined
 * behaviour fails it.  FUZZ_TARGET names the target at build time.
 */
#include "test.h"
#include "mobileclip.h"

#include <dirent.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int n_inputs;

static void replay(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) { CHECK(0, "%s: cannot open", path); return; }
    uint8_t *buf = NULL;
    size_t n = 0, cap = 0;
    for (;;) {
        if (n == cap) {
            cap = cap ? 2 * cap : 65536;
            uint8_t *b = realloc(buf, cap);
            if (!b) break;
            buf = b;
        }
        size_t got = fread(buf + n, 1, cap - n, f);
        if (got == 0) break;
        n += got;
    }
    int bad = ferror(f);
    fclose(f);
    CHECK(!bad && buf, "%s: cannot read", path);
    if (!bad && buf) {
        LLVMFuzzerTestOneInput(buf, n);   /* returns, or ASan/UBSan ends the program */
        n_inputs++;
    }
    free(buf);
}

static int by_name(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static void replay_dir(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return;
    char **names = NULL;
    size_t n = 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        if (de->d_name[0] == '.') continue;
        char **nn = realloc(names, (n + 1) * sizeof *names);
        if (!nn) break;
        names = nn;
        names[n++] = strdup(de->d_name);
    }
    closedir(d);
    qsort(names, n, sizeof *names, by_name);
    for (size_t i = 0; i < n; i++) {
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        struct stat sb;
        if (names[i] && stat(path, &sb) == 0 && S_ISREG(sb.st_mode)) replay(path);
        free(names[i]);
    }
    free(names);
}

int main(int argc, char **argv) {
    /* fuzz_tokenizer's vocabulary: the fixture's unless one is set */
    if (!getenv(MC_VOCAB_ENV)) setenv(MC_VOCAB_ENV, fixture("tokenizer/bpe_simple_vocab_16e6.txt.gz"), 1);
    struct stat sb;
    CHECK(stat("fuzz/regressions", &sb) == 0 && S_ISDIR(sb.st_mode), "fuzz/regressions: no such folder (run from the project root)");
    replay_dir("fuzz/regressions/" FUZZ_TARGET);
    for (int i = 1; i < argc; i++) replay(argv[i]);
    printf("%s: %d inputs replayed\n", FUZZ_TARGET, n_inputs);
    return test_summary("replay_" FUZZ_TARGET);
}
