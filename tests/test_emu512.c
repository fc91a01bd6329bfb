/*
 * test_emu512.c - the emulated AVX-512 operations (src/kernels/emu512.h) against the
 * real instructions of the same lane semantics: each 16-lane operation is
 * checked bit for bit against its AVX2 / FMA counterpart run on both 8-lane
 * halves (add, sub, mul, div, fmadd, fnmadd, max, min, abs, slli, all 32
 * compare predicates, blend, masked load and store), on random values mixed
 * with zeros of both signs, infinities, NaN, denormals and huge values.
 * reduce_add is checked against its documented order.  Needs AVX2+FMA to
 * run; reported NOT RUN otherwise.
 */
#include "test.h"

#include "core/cpu.h"
#include "kernels/kset.h"

#include <immintrin.h>

#define EMU512_NO_ENTRY
#include "kernels/emu512.h"

#define AVX2 __attribute__((target("avx2,fma")))

static const float k_special[] = {0.0f, -0.0f, INFINITY, -INFINITY, NAN, 1.0f, -1.0f, 1e-40f, -3e-39f,
                                  3e38f, -3e38f, 1.5f, 88.0f, -87.5f, 12583039.0f, 0.5f};

static float pick(void) {
    uint32_t r = (uint32_t)((test_frand() + 1) * 1e6f);
    if (r % 3 == 0) return k_special[r / 3 % 16];
    return test_frand() * (r % 5 == 0 ? 1e3f : 2.0f);
}

static void fill(float *v) {
    for (int i = 0; i < 16; i++) v[i] = pick();
}

/* Bitwise equal, or both NaN (the payload of a NaN result depends on operand order). */
static int same_lanes(const float *x, const float *y, int n) {
    for (int i = 0; i < n; i++) {
        if (x[i] != x[i] && y[i] != y[i]) continue;
        if (memcmp(&x[i], &y[i], 4)) return 0;
    }
    return 1;
}

enum { OP_ADD, OP_SUB, OP_MUL, OP_DIV, OP_FMA, OP_FNMA, OP_MAX, OP_MIN, OP_ABS, OP_N };
static const char *const k_op_name[OP_N] = {"add", "sub", "mul", "div", "fmadd", "fnmadd", "max", "min", "abs"};

AVX2 static __m256 ref_op(int op, __m256 a, __m256 b, __m256 c) {
    switch (op) {
    case OP_ADD: return _mm256_add_ps(a, b);
    case OP_SUB: return _mm256_sub_ps(a, b);
    case OP_MUL: return _mm256_mul_ps(a, b);
    case OP_DIV: return _mm256_div_ps(a, b);
    case OP_FMA: return _mm256_fmadd_ps(a, b, c);
    case OP_FNMA: return _mm256_fnmadd_ps(a, b, c);
    case OP_MAX: return _mm256_max_ps(a, b);
    case OP_MIN: return _mm256_min_ps(a, b);
    default: return _mm256_and_ps(a, _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff)));
    }
}

static emu512_ps emu_op(int op, emu512_ps a, emu512_ps b, emu512_ps c) {
    switch (op) {
    case OP_ADD: return _mm512_add_ps(a, b);
    case OP_SUB: return _mm512_sub_ps(a, b);
    case OP_MUL: return _mm512_mul_ps(a, b);
    case OP_DIV: return _mm512_div_ps(a, b);
    case OP_FMA: return _mm512_fmadd_ps(a, b, c);
    case OP_FNMA: return _mm512_fnmadd_ps(a, b, c);
    case OP_MAX: return _mm512_max_ps(a, b);
    case OP_MIN: return _mm512_min_ps(a, b);
    default: return _mm512_abs_ps(a);
    }
}

/* The 8-lane compare mask of predicate p (an immediate in the instruction). */
AVX2 static unsigned ref_cmp(__m256 a, __m256 b, int p) {
    __m256 m;
    switch (p) {
#define C(n) case n: m = _mm256_cmp_ps(a, b, n); break;
        C(0) C(1) C(2) C(3) C(4) C(5) C(6) C(7) C(8) C(9) C(10) C(11) C(12) C(13) C(14) C(15)
        C(16) C(17) C(18) C(19) C(20) C(21) C(22) C(23) C(24) C(25) C(26) C(27) C(28) C(29) C(30) C(31)
#undef C
    default: m = _mm256_setzero_ps();
    }
    return (unsigned)_mm256_movemask_ps(m);
}

AVX2 static void test_ops(void) {
    int bad[OP_N] = {0}, badcmp[32] = {0}, badblend = 0, badshift = 0, badload = 0, badstore = 0, badint[4] = {0};
    for (int it = 0; it < 4000; it++) {
        float a[16], b[16], c[16], r[16], e[16];
        fill(a), fill(b), fill(c);
        emu512_ps va = _mm512_loadu_ps(a), vb = _mm512_loadu_ps(b), vc = _mm512_loadu_ps(c);
        for (int op = 0; op < OP_N; op++) {
            _mm512_storeu_ps(e, emu_op(op, va, vb, vc));
            for (int h = 0; h < 2; h++)
                _mm256_storeu_ps(r + 8 * h, ref_op(op, _mm256_loadu_ps(a + 8 * h), _mm256_loadu_ps(b + 8 * h),
                                                   _mm256_loadu_ps(c + 8 * h)));
            bad[op] += !same_lanes(e, r, 16);
        }
        for (int p = 0; p < 32; p++) {
            unsigned m = _mm512_cmp_ps_mask(va, vb, p);
            unsigned mr = ref_cmp(_mm256_loadu_ps(a), _mm256_loadu_ps(b), p) |
                          ref_cmp(_mm256_loadu_ps(a + 8), _mm256_loadu_ps(b + 8), p) << 8;
            badcmp[p] += m != mr;
        }
        /* blend, masked load / store: vblendvps, vmaskmovps on each half */
        unsigned k = (unsigned)((test_frand() + 1) * 32768) & 0xffff;
        if (it < 17) k = it == 16 ? 0xffff : (1u << it) - 1u;   /* the tail masks */
        __m256i sel[2];
        for (int h = 0; h < 2; h++) {
            int32_t s[8];
            for (int i = 0; i < 8; i++) s[i] = (k >> (8 * h + i) & 1) ? -1 : 0;
            sel[h] = _mm256_loadu_si256((const __m256i *)s);
        }
        _mm512_storeu_ps(e, _mm512_mask_blend_ps((__mmask16)k, va, vb));
        for (int h = 0; h < 2; h++)
            _mm256_storeu_ps(r + 8 * h, _mm256_blendv_ps(_mm256_loadu_ps(a + 8 * h), _mm256_loadu_ps(b + 8 * h),
                                                         _mm256_castsi256_ps(sel[h])));
        badblend += !!memcmp(e, r, sizeof e);
        _mm512_storeu_ps(e, _mm512_maskz_loadu_ps((__mmask16)k, a));
        for (int h = 0; h < 2; h++) _mm256_storeu_ps(r + 8 * h, _mm256_maskload_ps(a + 8 * h, sel[h]));
        badload += !!memcmp(e, r, sizeof e);
        memcpy(e, c, sizeof e), memcpy(r, c, sizeof r);
        _mm512_mask_storeu_ps(e, (__mmask16)k, va);
        for (int h = 0; h < 2; h++) _mm256_maskstore_ps(r + 8 * h, sel[h], _mm256_loadu_ps(a + 8 * h));
        badstore += !!memcmp(e, r, sizeof e);
        /* the shift of v_exp's exponent build, and the edge counts */
        static const int counts[] = {0, 1, 23, 31, 32, 40};
        int cnt = counts[it % 6];
        emu512_si si = _mm512_slli_epi32(_mm512_castps_si512(va), cnt);
        int32_t es[16], rs[16];
        memcpy(es, &si, sizeof es);
        for (int h = 0; h < 2; h++) {
            __m256i x = _mm256_loadu_si256((const __m256i *)(a + 8 * h));
            _mm256_storeu_si256((__m256i *)(rs + 8 * h), _mm256_sll_epi32(x, _mm_cvtsi32_si128(cnt)));
        }
        badshift += !!memcmp(es, rs, sizeof es);
        /* the integer min / max / add on float bits of v_gelu */
        emu512_si ia = _mm512_castps_si512(va), ib = _mm512_castps_si512(vb);
        emu512_si ir[4] = {_mm512_min_epi32(ia, ib), _mm512_max_epi32(ia, ib), _mm512_min_epu32(ia, ib),
                           _mm512_add_epi32(ia, ib)};
        for (int op = 0; op < 4; op++) {
            memcpy(es, &ir[op], sizeof es);
            for (int h = 0; h < 2; h++) {
                __m256i x = _mm256_loadu_si256((const __m256i *)(a + 8 * h));
                __m256i y = _mm256_loadu_si256((const __m256i *)(b + 8 * h));
                __m256i z = op == 0 ? _mm256_min_epi32(x, y) : op == 1 ? _mm256_max_epi32(x, y)
                          : op == 2 ? _mm256_min_epu32(x, y) : _mm256_add_epi32(x, y);
                _mm256_storeu_si256((__m256i *)(rs + 8 * h), z);
            }
            badint[op] += !!memcmp(es, rs, sizeof es);
        }
    }
    static const char *const int_names[4] = {"min_epi32", "max_epi32", "min_epu32", "add_epi32"};
    for (int op = 0; op < 4; op++) CHECK(badint[op] == 0, "emulated %s differs in %d of 4000", int_names[op], badint[op]);
    for (int op = 0; op < OP_N; op++) CHECK(bad[op] == 0, "emulated %s differs from the instruction in %d of 4000", k_op_name[op], bad[op]);
    for (int p = 0; p < 32; p++) CHECK(badcmp[p] == 0, "emulated compare predicate %d differs in %d of 4000", p, badcmp[p]);
    CHECK(badblend == 0, "mask_blend differs in %d", badblend);
    CHECK(badload == 0, "maskz_loadu differs in %d", badload);
    CHECK(badstore == 0, "mask_storeu differs in %d", badstore);
    CHECK(badshift == 0, "slli_epi32 differs in %d", badshift);
}

/* Pairwise: lanes i + (i + 8), then + 4, then {0 + 2, 1 + 3}, then the two. */
static void test_reduce(void) {
    int bad = 0;
    for (int it = 0; it < 1000; it++) {
        float a[16];
        for (int i = 0; i < 16; i++) a[i] = test_frand() * (1 << (it % 20));
        float h[8], q[4];
        for (int i = 0; i < 8; i++) h[i] = a[i] + a[i + 8];
        for (int i = 0; i < 4; i++) q[i] = h[i] + h[i + 4];
        float want = (q[0] + q[2]) + (q[1] + q[3]);
        float got = _mm512_reduce_add_ps(_mm512_loadu_ps(a));
        bad += memcmp(&got, &want, 4) != 0;
    }
    CHECK(bad == 0, "reduce_add order differs in %d of 1000", bad);
    float ones[16];
    for (int i = 0; i < 16; i++) ones[i] = (float)i;
    CHECK(_mm512_reduce_add_ps(_mm512_loadu_ps(ones)) == 120.0f, "reduce_add of 0..15");
}

int main(void) {
    test_seed(5150);
    test_reduce();
    if (mc_cpu_level() >= 1) test_ops();
    else printf("emulated AVX-512 operations against AVX2 instructions: NOT RUN (needs AVX2+FMA)\n");
    return test_summary("test_emu512");
}
