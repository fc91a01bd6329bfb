/*
 * train/loss.c - the DR loss of multi-modal reinforced training (loss.h):
 * CLIP contrastive loss plus distillation from an ensemble of teachers
 * (mean over teachers of softmax(scale x teacher similarity) as the target of
 * the student's log-softmax), image-to-text and text-to-image averaged, with
 * its gradient; over the whole batch or over a block of its rows (open_clip's
 * --local-loss).
 */
#include "train/loss.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* row softmax of s[rows, cols] into p (double) */
static void softmax_rows_d(const double *s, int rows, int cols, double *p) {
    for (int i = 0; i < rows; i++) {
        const double *si = s + (size_t)i * cols;
        double *pi = p + (size_t)i * cols;
        double mx = -INFINITY, sum = 0;
        for (int j = 0; j < cols; j++) mx = si[j] > mx ? si[j] : mx;
        for (int j = 0; j < cols; j++) { pi[j] = exp(si[j] - mx); sum += pi[j]; }
        for (int j = 0; j < cols; j++) pi[j] /= sum;
    }
}

/* target[i, j] = mean_k softmax_j(scale_k <a_i^k, c_j^k>) for rows a [rows, tot]
 * against c [cols, tot] */
static void teacher_targets(const mc_dr_loss_params *p, const float *a, int rows, const float *c, int cols,
                            double *target, double *tmp, double *tmp2) {
    int tot = 0;
    for (int k = 0; k < p->n_teachers; k++) tot += p->teacher_dims[k];
    const size_t rc = (size_t)rows * cols;
    memset(target, 0, sizeof(double) * rc);
    int off = 0;
    for (int k = 0; k < p->n_teachers; k++) {
        int dk = p->teacher_dims[k];
        for (int i = 0; i < rows; i++)
            for (int j = 0; j < cols; j++) {
                double s = 0;
                for (int q = 0; q < dk; q++)
                    s += (double)a[(size_t)i * tot + off + q] * c[(size_t)j * tot + off + q];
                tmp[(size_t)i * cols + j] = p->teacher_scales[k] * s;
            }
        softmax_rows_d(tmp, rows, cols, tmp2);
        for (size_t i = 0; i < rc; i++) target[i] += tmp2[i] / p->n_teachers;
        off += dk;
    }
}

void mc_train_dr_loss(const mc_dr_loss_params *p, const float *img, const float *txt, int b, int e,
                      const float *t_img, const float *t_txt, float logit_scale_raw,
                      float terms[2], float *d_img, float *d_txt, float *d_scale) {
    mc_train_dr_loss_rows(p, img, txt, b, e, 0, b, t_img, t_txt, logit_scale_raw, terms, d_img, d_txt, d_scale);
}

/* With R = [r0, r0 + n): the image side's rows i in R (image i against every
 * text, label i) and the text side's rows j in R (text j against every image,
 * label j), each side's cross-entropies summed and divided by 2 G. */
void mc_train_dr_loss_rows(const mc_dr_loss_params *p, const float *img, const float *txt, int G, int e,
                           int r0, int n, const float *t_img, const float *t_txt, float logit_scale_raw,
                           float terms[2], float *d_img, float *d_txt, float *d_scale) {
    const size_t nG = (size_t)n * G;
    int tot = 0;
    for (int k = 0; k < p->n_teachers; k++) tot += p->teacher_dims[k];
    double *mem = calloc(nG * 8 + 2 * (size_t)n + 1, sizeof(double));
    if (!mem || r0 < 0 || n < 1 || r0 + n > G) { free(mem); terms[0] = terms[1] = NAN; return; }
    /* sI[i - r0, j] = <img_i, txt_j> for i in R; sT[j - r0, i] = <img_i, txt_j> for j in R;
     * pI, pT: the softmaxes of scale x those rows, then their logs; tI, tT: the
     * teachers' targets of the same rows; rI, rT: the targets' row sums */
    double *sI = mem, *sT = sI + nG, *pI = sT + nG, *pT = pI + nG, *tI = pT + nG, *tT = tI + nG,
           *tmp = tT + nG, *tmp2 = tmp + nG, *rI = tmp2 + nG, *rT = rI + n;
    const double scale = exp((double)logit_scale_raw);
    for (int i = 0; i < G; i++)
        for (int j = 0; j < G; j++) {
            const int inI = i >= r0 && i < r0 + n, inT = j >= r0 && j < r0 + n;
            if (!inI && !inT) continue;
            double s = 0;
            for (int q = 0; q < e; q++) s += (double)img[(size_t)i * e + q] * txt[(size_t)j * e + q];
            if (inI) sI[(size_t)(i - r0) * G + j] = s, tmp[(size_t)(i - r0) * G + j] = scale * s;
            if (inT) sT[(size_t)(j - r0) * G + i] = s, tmp2[(size_t)(j - r0) * G + i] = scale * s;
        }
    softmax_rows_d(tmp, n, G, pI);
    softmax_rows_d(tmp2, n, G, pT);
    if (p->n_teachers > 0) {
        teacher_targets(p, t_img + (size_t)r0 * tot, n, t_txt, G, tI, tmp, tmp2);
        teacher_targets(p, t_txt + (size_t)r0 * tot, n, t_img, G, tT, tmp, tmp2);
    }
    double ce_i = 0, ce_t = 0, kd_i = 0, kd_t = 0;
    for (int r = 0; r < n; r++) {
        ce_i -= log(pI[(size_t)r * G + r0 + r]);
        ce_t -= log(pT[(size_t)r * G + r0 + r]);
    }
    for (size_t q = 0; q < nG; q++) {
        double lpi = log(pI[q]), lpt = log(pT[q]);
        kd_i -= tI[q] * lpi;
        kd_t -= tT[q] * lpt;
    }
    for (int r = 0; r < n; r++) {
        double si = 0, st = 0;
        for (int q = 0; q < G; q++) { si += tI[(size_t)r * G + q]; st += tT[(size_t)r * G + q]; }
        rI[r] = si;
        rT[r] = st;
    }
    const double wc = p->w_contrastive, wd = p->w_distill;
    terms[0] = (float)(wc * (ce_i + ce_t) / (2.0 * G));
    terms[1] = (float)(wd * (kd_i + kd_t) / (2.0 * G));
    /* dL/dlogit(img i, txt j) = 0.5/G [ (wc + wd sum(target row)) p - wc onehot - wd target ],
     * from the image side's row i when i is in R and the text side's row j when j is */
    double dscale = 0;
    for (int i = 0; i < G; i++)
        for (int j = 0; j < G; j++) {
            const int inI = i >= r0 && i < r0 + n, inT = j >= r0 && j < r0 + n;
            if (!inI && !inT) continue;
            const size_t qi = (size_t)(i - r0) * G + j, qt = (size_t)(j - r0) * G + i;
            double gi = inI ? (wc + wd * rI[i - r0]) * pI[qi] - (i == j ? wc : 0) - wd * tI[qi] : 0;
            double gt = inT ? (wc + wd * rT[j - r0]) * pT[qt] - (i == j ? wc : 0) - wd * tT[qt] : 0;
            double g = (gi + gt) * 0.5 / G;
            dscale += g * scale * (inI ? sI[qi] : sT[qt]);
            double gs = g * scale;
            if (d_img)
                for (int q = 0; q < e; q++) d_img[(size_t)i * e + q] += (float)(gs * txt[(size_t)j * e + q]);
            if (d_txt)
                for (int q = 0; q < e; q++) d_txt[(size_t)j * e + q] += (float)(gs * img[(size_t)i * e + q]);
        }
    if (d_scale) *d_scale += (float)dscale;
    free(mem);
}
