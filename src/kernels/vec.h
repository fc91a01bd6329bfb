/*
 * kernels/vec.h - vector math and the bias + activation epilogue, written
 * once over a vector type and included by kernels/set_avx2.c (ymm) and
 * kernels/set_avx512.c (zmm), so both sets run the same code.  The includer
 * defines the vector operations used below (V* macros: VF vector, VM
 * compare mask, VTM tail mask, VW lanes) and EPI_NAME / ACT_NAME / GEMV_NAME.
 */

/* exp(x): range reduction x = n ln2 + r, |r| <= ln2 / 2, degree-7 Taylor
 * polynomial (truncation < 1e-8 relative) evaluated with Estrin's scheme
 * (short dependency chains), 2^n built in the exponent field.  Below -87.34
 * gives 0, NaN stays NaN. */
static inline VF v_exp(VF x) {
    const VF lo = VSET1(-87.33654f), hi = VSET1(88.37626f);
    VM nan = VCMP_UNORD(x);
    VM under = VCMP_LT(x, lo);
    /* n = round(x log2 e) by adding M = 1.5 2^23 + 127 (one ulp at M is 1,
     * so the sum is rounded to an integer); the low bits of the sum are then
     * n + 127, and 2^n is a shift into the exponent field.  No float->int
     * conversion or rounding instruction. */
    const VF magic = VSET1(12583039.0f);
    VF xc = VMIN(VMAX(x, lo), hi);
    VF nm = VADD(VMUL(xc, VSET1(1.44269504088896341f)), magic);
    VF n = VSUB(nm, magic);
    VF r = VFNMA(n, VSET1(0.693359375f), xc);
    r = VFNMA(n, VSET1(-2.12194440e-4f), r);
    VF r2 = VMUL(r, r), r4 = VMUL(r2, r2);
    VF p01 = VADD(r, VSET1(1.0f));
    VF p23 = VFMA(r, VSET1(1.0f / 6), VSET1(0.5f));
    VF p45 = VFMA(r, VSET1(1.0f / 120), VSET1(1.0f / 24));
    VF p67 = VFMA(r, VSET1(1.0f / 5040), VSET1(1.0f / 720));
    VF p = VFMA(VFMA(p67, r2, p45), r4, VFMA(p23, r2, p01));
    VF y = VMUL(p, VSHL23(nm));
    y = VSEL(under, y, VZERO());
    return VSEL(nan, y, VADD(x, x));
}

static inline VF v_sigmoid(VF x) {
    const VF one = VSET1(1.0f);
    return VDIV(one, VADD(one, v_exp(VSUB(VZERO(), x))));
}

/* GELU(x) = x Phi(x) = relu(x) - |x| Q(|x|), Q(a) = Phi(-a) = erfc(a / sqrt 2) / 2
 * (for x >= 0: x - x Q; for x < 0: x Q; one FMA, no cancellation since
 * Q <= 1/2).  Q(a) = exp(-a^2 / 2) R(a), R = N / D a (4, 4) rational fitted
 * (relative minimax, N(0) = 1/2) on [0, 4.5], 2e-8 there, 2e-5 out to the
 * clamp a <= 12.5 where Q < 1e-34.  exp(-a^2 / 2) = 2^n exp(s / 2) with
 * n = floor(-a^2 / (2 ln 2)) and s = -a^2 - 2 n ln 2 in [0, 2 ln 2], a^2 exact
 * inside the FMA, ln 2 in two parts; exp(s / 2) = 1 + s P(s), degree 6.
 * |x| multiplies into that polynomial's last step and 2^n goes into R's
 * exponent field (an integer add: R >= 0.077 and n >= -113 stay normal).
 * The clamps use integer min / max on the float bits (x < 0 orders below
 * every positive float): |min(x, 12.5)| keeps |x| for negative x, so
 * -inf gives -inf as x Q does, +inf and large x give x, NaN of either sign
 * gives NaN.  Max error measured against double erfc: see
 * docs/performance.md and tests/test_kernels.c. */
static inline VF v_gelu(VF x) {
    const VF clampv = VSET1(12.5f), magic = VSET1(12582912.0f);   /* 1.5 2^23 */
    VF am = VABS(VMINI(x, clampv));
    VF ac = VMINU(am, clampv);
    VF relu = VMAXI(x, VZERO());
    VF nn = VFMA(VFMA(VFMA(VFMA(VSET1(9.94473226e-07f), ac, VSET1(0.0112905968f)), ac,
                           VSET1(0.0931359455f)), ac, VSET1(0.311016828f)), ac, VSET1(0.5f));
    VF dd = VFMA(VFMA(VFMA(VFMA(VSET1(0.0283870548f), ac, VSET1(0.232180133f)), ac,
                           VSET1(0.819210708f)), ac, VSET1(1.41991758f)), ac, VSET1(1.0f));
    VF r = VDIV(nn, dd);
    /* n + M in nm: -a^2 / (2 ln 2) - 1/2 rounded to an integer (the floor) */
    VF nm = VADD(VFMA(ac, VMUL(ac, VSET1(-0.72134752044448170f)), VSET1(-0.5f)), magic);
    VF n = VSUB(nm, magic);
    VF s = VFNMA(ac, ac, VMUL(n, VSET1(-1.38671875f)));   /* exact: -a^2 - 2 n ln2_hi */
    s = VFMA(n, VSET1(4.24388880e-4f), s);                /* - 2 n ln2_lo */
    VF p = VFMA(VFMA(VFMA(VFMA(VFMA(VSET1(3.04642599e-05f), s, VSET1(0.000243454924f)), s,
                               VSET1(0.00261975871f)), s, VSET1(0.0208262242f)), s,
                     VSET1(0.12500146f)), s, VSET1(0.499999911f));
    VF w = VFMA(s, VMUL(am, p), am);                      /* |x| exp(s / 2) */
    r = VADDI(r, VSHL23(nm));                             /* R 2^n: low bits of nm are n */
    return VFNMA(w, r, relu);
}

/* 0.5 x (1 + tanh u) = x sigmoid(2u), u = sqrt(2/pi) (x + 0.044715 x^3). */
static inline VF v_gelu_tanh(VF x) {
    VF x2 = VMUL(x, x);
    VF u = VMUL(x, VFMA(x2, VSET1(0.044715f), VSET1(1.0f)));
    return VMUL(x, v_sigmoid(VMUL(u, VSET1(2.0f * 0.7978845608028654f))));
}

/* x[0..n) = act(x + br + bcol[j]) (bcol may be NULL); four vectors per step
 * so the polynomial chains of independent vectors overlap. */
#define ROW_LOOP(ACT)                                                                    \
    do {                                                                                 \
        int j = 0;                                                                       \
        for (; j + 4 * VW <= n; j += 4 * VW) {                                           \
            VF v0 = VADD(VLOAD(x + j), vbr), v1 = VADD(VLOAD(x + j + VW), vbr);          \
            VF v2 = VADD(VLOAD(x + j + 2 * VW), vbr), v3 = VADD(VLOAD(x + j + 3 * VW), vbr); \
            if (bcol) {                                                                  \
                v0 = VADD(v0, VLOAD(bcol + j)), v1 = VADD(v1, VLOAD(bcol + j + VW));     \
                v2 = VADD(v2, VLOAD(bcol + j + 2 * VW));                                 \
                v3 = VADD(v3, VLOAD(bcol + j + 3 * VW));                                 \
            }                                                                            \
            VSTORE(x + j, ACT(v0)), VSTORE(x + j + VW, ACT(v1));                         \
            VSTORE(x + j + 2 * VW, ACT(v2)), VSTORE(x + j + 3 * VW, ACT(v3));            \
        }                                                                                \
        for (; j + VW <= n; j += VW) {                                                   \
            VF v = VADD(VLOAD(x + j), vbr);                                              \
            if (bcol) v = VADD(v, VLOAD(bcol + j));                                      \
            VSTORE(x + j, ACT(v));                                                       \
        }                                                                                \
        if (j < n) {                                                                     \
            VTM m = VTAIL(n - j);                                                        \
            VF v = VADD(VLOAD_TAIL(x + j, m), vbr);                                      \
            if (bcol) v = VADD(v, VLOAD_TAIL(bcol + j, m));                              \
            VSTORE_TAIL(x + j, m, ACT(v));                                               \
        }                                                                                \
    } while (0)

#define A_RELU(v) VMAX(v, VZERO())
#define A_QGELU(v) VMUL(v, v_sigmoid(VMUL(v, VSET1(1.702f))))
#define A_NONE(v) (v)

/* One switch, then the rows of the tile.  A full-width GEMM tile (two
 * vectors per row) goes two rows at a time, so four independent polynomial
 * chains overlap as in ROW_LOOP (one row alone would give only two); the
 * same operations in the same order as ROW_LOOP, so the results are identical. */
#define EPI_ROWS(ACT)                                                                    \
    do {                                                                                 \
        int i = 0;                                                                       \
        if (n == 2 * VW) {                                                               \
            VF c0 = bcol ? VLOAD(bcol) : VZERO(), c1 = bcol ? VLOAD(bcol + VW) : VZERO(); \
            for (; i + 2 <= mr; i += 2) {                                                \
                float *x0 = c + i * ldc, *x1 = x0 + ldc;                                 \
                VF b0 = VSET1(brow ? brow[i] : 0.0f), b1 = VSET1(brow ? brow[i + 1] : 0.0f); \
                VF v0 = VADD(VLOAD(x0), b0), v1 = VADD(VLOAD(x0 + VW), b0);              \
                VF v2 = VADD(VLOAD(x1), b1), v3 = VADD(VLOAD(x1 + VW), b1);              \
                if (bcol) v0 = VADD(v0, c0), v1 = VADD(v1, c1), v2 = VADD(v2, c0), v3 = VADD(v3, c1); \
                VSTORE(x0, ACT(v0)), VSTORE(x0 + VW, ACT(v1));                           \
                VSTORE(x1, ACT(v2)), VSTORE(x1 + VW, ACT(v3));                           \
            }                                                                            \
        }                                                                                \
        for (; i < mr; i++) {                                                            \
            float *x = c + i * ldc;                                                      \
            VF vbr = VSET1(brow ? brow[i] : 0.0f);                                       \
            ROW_LOOP(ACT);                                                               \
        }                                                                                \
    } while (0)

static void EPI_NAME(float *c, size_t ldc, int mr, int n, const float *brow, const float *bcol,
                     mc_act act) {
    switch (act) {
    case MC_ACT_RELU: EPI_ROWS(A_RELU); break;
    case MC_ACT_GELU: EPI_ROWS(v_gelu); break;
    case MC_ACT_GELU_TANH: EPI_ROWS(v_gelu_tanh); break;
    case MC_ACT_QUICK_GELU: EPI_ROWS(A_QGELU); break;
    case MC_ACT_SIGMOID: EPI_ROWS(v_sigmoid); break;
    default: EPI_ROWS(A_NONE); break;
    }
}

static void ACT_NAME(float *x, size_t n, mc_act act) {
    if (act == MC_ACT_NONE) return;
    while (n > 0) {
        int chunk = n > (1u << 30) ? (1 << 30) : (int)n;
        EPI_NAME(x, 0, 1, chunk, NULL, NULL, act);
        x += chunk;
        n -= (size_t)chunk;
    }
}

/* y[i * ldy + j] = x[i, :] . w[j, :] for i < m (few rows), j < n: dot products
 * straight from the unpacked weights (packing would cost more than the
 * product).  Rows go four at a time; missing rows repeat the last one. */
static void GEMV_NAME(const float *x, int m, int k, const float *w, int n, float *y, size_t ldy) {
    for (int i0 = 0; i0 < m; i0 += 4) {
        const float *x0 = x + (size_t)i0 * k;
        const float *x1 = x + (size_t)(i0 + 1 < m ? i0 + 1 : m - 1) * k;
        const float *x2 = x + (size_t)(i0 + 2 < m ? i0 + 2 : m - 1) * k;
        const float *x3 = x + (size_t)(i0 + 3 < m ? i0 + 3 : m - 1) * k;
        for (int j = 0; j < n; j++) {
            const float *wj = w + (size_t)j * k;
            VF a0 = VZERO(), a1 = VZERO(), a2 = VZERO(), a3 = VZERO();
            int p = 0;
            for (; p + VW <= k; p += VW) {
                VF wv = VLOAD(wj + p);
                a0 = VFMA(VLOAD(x0 + p), wv, a0);
                a1 = VFMA(VLOAD(x1 + p), wv, a1);
                a2 = VFMA(VLOAD(x2 + p), wv, a2);
                a3 = VFMA(VLOAD(x3 + p), wv, a3);
            }
            if (p < k) {
                VTM tm = VTAIL(k - p);
                VF wv = VLOAD_TAIL(wj + p, tm);
                a0 = VFMA(VLOAD_TAIL(x0 + p, tm), wv, a0);
                a1 = VFMA(VLOAD_TAIL(x1 + p, tm), wv, a1);
                a2 = VFMA(VLOAD_TAIL(x2 + p, tm), wv, a2);
                a3 = VFMA(VLOAD_TAIL(x3 + p, tm), wv, a3);
            }
            y[(size_t)i0 * ldy + j] = VHSUM(a0);
            if (i0 + 1 < m) y[(size_t)(i0 + 1) * ldy + j] = VHSUM(a1);
            if (i0 + 2 < m) y[(size_t)(i0 + 2) * ldy + j] = VHSUM(a2);
            if (i0 + 3 < m) y[(size_t)(i0 + 3) * ldy + j] = VHSUM(a3);
        }
    }
}
