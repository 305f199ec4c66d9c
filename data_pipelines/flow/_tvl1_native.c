/* TV-L1 optical flow for one pair of frames on the CPU: the algorithm of tf_tvl1.py, step for step, with
 * each inner iteration as one sweep over the level's rows (issue 15).
 *
 * tf_tvl1.tvl1_graph is the specification (OpenCV's DualTVL1 choices, documented there and in docs/flow.md);
 * this file computes the same operations in the same order for one pair, single-threaded (callers run pairs
 * in parallel threads: ctypes releases the GIL).  XLA runs an iteration as 16 kernels, each a pass over the
 * level's arrays; here the primal step of row r and the dual step of row r - 1 share one pass, which reads
 * every array once.  Not bitwise equal to the XLA program (XLA's resize is a convolution, fused
 * multiply-adds differ); tests/test_tvl1_native.py bounds the difference.
 *
 * Built by setup.py as the optional extension data_pipelines.flow._tvl1_native (no Python API is used but the
 * module's init); data_pipelines/flow/native.py loads it with ctypes.  On x86-64 the hot functions are
 * compiled for AVX-512, AVX2 and the baseline, chosen at load time (GCC target_clones).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && defined(__linux__)
#define CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define CLONES
#endif

#define MAXK 3 /* flow (u1, u2) and the illumination field u3 */

typedef struct {
  float l_t, taut, theta, eps2, gamma;
  int warps, inner, outer, early, bicubic, constant, median;
} params_t;

/* The calling convention native.py was written for: it refuses a kernel built from another version of this
 * file (an editable install not rebuilt after a pull). */
#define ABI_VERSION 2
int i3d_tvl1_abi(void) { return ABI_VERSION; }

/* tf.image.resize(method='bilinear', antialias=False): half-pixel centres, edge-clamped taps. */
static int resize_bilinear(const float *src, int sh, int sw, float *dst, int dh, int dw, float mul) {
  const float sy = (float)sh / (float)dh, sx = (float)sw / (float)dw;
  int *x_lo = malloc(sizeof(int) * dw), *x_hi = malloc(sizeof(int) * dw);
  float *x_t = malloc(sizeof(float) * dw);
  if (!x_lo || !x_hi || !x_t) {
    free(x_lo);
    free(x_hi);
    free(x_t);
    return 1;
  }
  for (int x = 0; x < dw; ++x) {
    float in = ((float)x + 0.5f) * sx - 0.5f, f = floorf(in);
    x_lo[x] = f < 0.0f ? 0 : (int)f;
    x_hi[x] = (int)ceilf(in) > sw - 1 ? sw - 1 : (int)ceilf(in);
    if (x_hi[x] < 0) x_hi[x] = 0;
    x_t[x] = in - f;
  }
  for (int y = 0; y < dh; ++y) {
    float in = ((float)y + 0.5f) * sy - 0.5f, f = floorf(in);
    int lo = f < 0.0f ? 0 : (int)f, hi = (int)ceilf(in) > sh - 1 ? sh - 1 : (int)ceilf(in);
    if (hi < 0) hi = 0;
    float t = in - f;
    const float *r0 = src + (size_t)lo * sw, *r1 = src + (size_t)hi * sw;
    float *out = dst + (size_t)y * dw;
    for (int x = 0; x < dw; ++x) {
      float top = r0[x_lo[x]] + (r0[x_hi[x]] - r0[x_lo[x]]) * x_t[x];
      float bottom = r1[x_lo[x]] + (r1[x_hi[x]] - r1[x_lo[x]]) * x_t[x];
      out[x] = (top + (bottom - top) * t) * mul;
    }
  }
  free(x_lo);
  free(x_hi);
  free(x_t);
  return 0;
}

/* Centred differences, one-sided halves on the border (replicated edge). */
static void centered_gradient(const float *img, int h, int w, float *dx, float *dy) {
  for (int y = 0; y < h; ++y) {
    const float *r = img + (size_t)y * w;
    const float *up = img + (size_t)(y > 0 ? y - 1 : 0) * w, *down = img + (size_t)(y < h - 1 ? y + 1 : h - 1) * w;
    float *ox = dx + (size_t)y * w, *oy = dy + (size_t)y * w;
    for (int x = 0; x < w; ++x) {
      ox[x] = 0.5f * (r[x < w - 1 ? x + 1 : w - 1] - r[x > 0 ? x - 1 : 0]);
      oy[x] = 0.5f * (down[x] - up[x]);
    }
  }
}

static inline void cubic_weights(float t, float *wt) {
  const float a = -0.75f;
  float t1 = t + 1.0f;
  wt[0] = ((a * t1 - 5.0f * a) * t1 + 8.0f * a) * t1 - 4.0f * a;
  wt[1] = ((a + 2.0f) * t - (a + 3.0f)) * t * t + 1.0f;
  float s = 1.0f - t;
  wt[2] = ((a + 2.0f) * s - (a + 3.0f)) * s * s + 1.0f;
  wt[3] = 1.0f - wt[0] - wt[1] - wt[2];
}

/* fminf(fmaxf(v, lo), hi), bitwise, NaN giving lo as fmaxf does, without the libm calls GCC makes for those
 * (which kept the warp from being compiled inline). */
static inline float clampf(float v, float lo, float hi) {
  const float m = v > lo ? v : lo;
  return m < hi ? m : hi;
}

/* Samples (i1, ix, iy) at (x + u1, y + v1) like tf_tvl1.warp (taps in the same order), then the data term's
 * fields: ix, iy, 1 / max(|grad|^2, FLT_EPSILON) and rho_c = i1w - ix u1 - iy u2 - i0. */
#define WARP_TAPS(N, OFF, WEIGHTS)                                                                          \
  for (int y = 0; y < h; ++y) {                                                                             \
    const size_t o = (size_t)y * w;                                                                         \
    _Pragma("omp simd")                                                                                     \
    for (int x = 0; x < w; ++x) {                                                                           \
      const size_t k = o + x;                                                                               \
      /* clamped a few pixels outside the image: every tap beyond reads the same (0, or the edge) */        \
      const float xs = clampf((float)x + u1[k], -4.0f, (float)w + 3.0f);                                    \
      const float ys = clampf((float)y + u2[k], -4.0f, (float)h + 3.0f);                                    \
      const float x0f = floorf(xs), y0f = floorf(ys);                                                       \
      const float tx = xs - x0f, ty = ys - y0f;                                                             \
      const int x0 = (int)x0f + (OFF), y0 = (int)y0f + (OFF);                                               \
      float wx[N], wy[N];                                                                                   \
      WEIGHTS;                                                                                              \
      float a0 = 0.0f, a1 = 0.0f, a2 = 0.0f;                                                                \
      _Pragma("GCC unroll 4")                                                                               \
      for (int i = 0; i < (N); ++i) {                                                                       \
        int yy = y0 + i;                                                                                    \
        const int y_ok = (yy >= 0) & (yy < h);                                                              \
        yy = yy < 0 ? 0 : (yy > h - 1 ? h - 1 : yy);                                                        \
        _Pragma("GCC unroll 4")                                                                             \
        for (int j = 0; j < (N); ++j) {                                                                     \
          int xx = x0 + j;                                                                                  \
          float weight = wy[i] * wx[j];                                                                     \
          weight = (y_ok & (xx >= 0) & (xx < w)) | !constant ? weight : 0.0f;                               \
          xx = xx < 0 ? 0 : (xx > w - 1 ? w - 1 : xx);                                                      \
          const int q = yy * w + xx;                                                                        \
          a0 += weight * i1[q];                                                                             \
          a1 += weight * g1x[q];                                                                            \
          a2 += weight * g1y[q];                                                                            \
        }                                                                                                   \
      }                                                                                                     \
      const float grad = a1 * a1 + a2 * a2;                                                                 \
      ix[k] = a1;                                                                                           \
      iy[k] = a2;                                                                                           \
      inv_grad[k] = 1.0f / (grad > FLT_EPSILON ? grad : FLT_EPSILON);                                       \
      rho_c[k] = a0 - a1 * u1[k] - a2 * u2[k] - i0[k];                                                      \
    }                                                                                                       \
  }

CLONES static void warp_level(const float *restrict i1, const float *restrict g1x, const float *restrict g1y,
                              const float *restrict i0, const float *restrict u1, const float *restrict u2, int h,
                              int w, const params_t *p, float *restrict ix, float *restrict iy,
                              float *restrict inv_grad, float *restrict rho_c) {
  const int constant = p->constant;
  if (p->bicubic) {
    WARP_TAPS(4, -1, (cubic_weights(tx, wx), cubic_weights(ty, wy)))
  } else {
    WARP_TAPS(2, 0, (wx[0] = 1.0f - tx, wx[1] = tx, wy[0] = 1.0f - ty, wy[1] = ty))
  }
}

/* One iteration (thresholding, primal step, dual step with projection) as one sweep: row r's primal step
 * reads the duals of rows r and r - 1 before row r - 1's dual step overwrites them.  Returns sum |du|^2.
 * zero: a row of w zeros (the dual above the first row). */
CLONES static double iterate(float *const *u, float *const *p1, float *const *p2, const float *ix, const float *iy,
                             const float *inv_grad, const float *rho_c, int k, int h, int w, const params_t *pr,
                             const float *zero) {
  const float l_t = pr->l_t, taut = pr->taut, theta = pr->theta, gamma = pr->gamma;
  double total = 0.0;
  for (int r = 0; r <= h; ++r) {
    if (r < h) {
      const size_t o = (size_t)r * w;
      const float *restrict cx = ix + o, *restrict cy = iy + o, *restrict ig = inv_grad + o, *restrict rc = rho_c + o;
      float *restrict u1 = u[0] + o, *restrict u2 = u[1] + o, *restrict u3 = k == 3 ? u[2] + o : u[1] + o;
      const float *restrict a1 = p1[0] + o, *restrict b1 = p2[0] + o, *restrict b1u = r ? b1 - w : zero;
      const float *restrict a2 = p1[1] + o, *restrict b2 = p2[1] + o, *restrict b2u = r ? b2 - w : zero;
      const float *restrict a3 = k == 3 ? p1[2] + o : a2, *restrict b3 = k == 3 ? p2[2] + o : b2;
      const float *restrict b3u = k == 3 ? (r ? b3 - w : zero) : b2u;
      const float g3 = k == 3 ? gamma : 0.0f;
      float acc = 0.0f;
      /* x = 0 has no left neighbour: the dual there counts alone (the shifted dual is 0) */
#pragma omp simd reduction(+ : acc)
      for (int x = 0; x < w; ++x) {
        const float left1 = x ? a1[x - 1] : 0.0f, left2 = x ? a2[x - 1] : 0.0f, left3 = x ? a3[x - 1] : 0.0f;
        float rho = rc[x] + cx[x] * u1[x] + cy[x] * u2[x];
        if (k == 3) rho = rho + g3 * u3[x];
        float s = -rho * ig[x];
        s = s < -l_t ? -l_t : (s > l_t ? l_t : s);
        float n1 = (u1[x] + s * cx[x]) + theta * ((a1[x] - left1) + (b1[x] - b1u[x]));
        float n2 = (u2[x] + s * cy[x]) + theta * ((a2[x] - left2) + (b2[x] - b2u[x]));
        float d1 = n1 - u1[x], d2 = n2 - u2[x];
        float sq = d1 * d1 + d2 * d2;
        if (k == 3) {
          float n3 = (u3[x] + s * g3) + theta * ((a3[x] - left3) + (b3[x] - b3u[x]));
          float d3 = n3 - u3[x];
          sq = sq + d3 * d3;
          u3[x] = n3;
        }
        acc += sq;
        u1[x] = n1;
        u2[x] = n2;
      }
      total += acc;
    }
    if (r >= 1) { /* dual step of row r - 1: its forward gradient needs row r's new u (none below the last) */
      const int y = r - 1;
      const size_t o = (size_t)y * w;
      for (int f = 0; f < k; ++f) {
        const float *restrict uf = u[f] + o, *restrict down = y < h - 1 ? uf + w : uf;
        float *restrict q1 = p1[f] + o, *restrict q2 = p2[f] + o;
#pragma omp simd
        for (int x = 0; x < w; ++x) {
          float ux = x < w - 1 ? uf[x + 1] - uf[x] : 0.0f;
          float uy = down[x] - uf[x];
          float ng = 1.0f + taut * sqrtf(ux * ux + uy * uy);
          q1[x] = (q1[x] + taut * ux) / ng;
          q2[x] = (q2[x] + taut * uy) / ng;
        }
      }
    }
  }
  return total;
}

/* The selection networks of params.selection_network(9, 4) and (25, 12), unrolled (S: both outputs, L: the
 * minimum only, H: the maximum only), written out from it; tests/test_tvl1_native.py checks them against it. */
#define S(i, j) { float a_ = v[i], b_ = v[j]; v[i] = a_ < b_ ? a_ : b_; v[j] = a_ < b_ ? b_ : a_; }
#define L(i, j) v[i] = v[i] < v[j] ? v[i] : v[j]
#define H(i, j) v[j] = v[i] < v[j] ? v[j] : v[i]
// BEGIN GENERATED NETWORKS
#define MEDIAN9 \
    S(0, 1); S(2, 3); S(4, 5); S(6, 7); S(0, 2); S(1, 3); S(4, 6); S(5, 7); S(1, 2); S(5, 6); S(0, 4); S(1, 5); \
    S(2, 6); L(3, 7); S(2, 4); S(3, 5); H(1, 2); S(3, 4); L(5, 6); H(0, 8); L(4, 8); H(2, 4); L(3, 5); H(3, 4);
#define MEDIAN25 \
    S(0, 1); S(2, 3); S(4, 5); S(6, 7); S(8, 9); S(10, 11); S(12, 13); S(14, 15); S(16, 17); S(18, 19); S(20, 21); \
    S(22, 23); S(0, 2); S(1, 3); S(4, 6); S(5, 7); S(8, 10); S(9, 11); S(12, 14); S(13, 15); S(16, 18); S(17, 19); \
    S(20, 22); S(21, 23); S(1, 2); S(5, 6); S(9, 10); S(13, 14); S(17, 18); S(21, 22); S(0, 4); S(1, 5); S(2, 6); \
    S(3, 7); S(8, 12); S(9, 13); S(10, 14); S(11, 15); S(16, 20); S(17, 21); S(18, 22); S(19, 23); S(2, 4); S(3, 5); \
    S(10, 12); S(11, 13); S(18, 20); S(19, 21); S(1, 2); S(3, 4); S(5, 6); S(9, 10); S(11, 12); S(13, 14); S(17, 18); \
    S(19, 20); S(21, 22); S(0, 8); S(1, 9); S(2, 10); S(3, 11); S(4, 12); S(5, 13); S(6, 14); L(7, 15); S(16, 24); \
    S(4, 8); S(5, 9); S(6, 10); S(7, 11); S(20, 24); S(2, 4); S(3, 5); S(6, 8); S(7, 9); S(10, 12); S(11, 13); \
    S(18, 20); S(19, 21); S(22, 24); S(1, 2); S(3, 4); S(5, 6); S(7, 8); S(9, 10); S(11, 12); L(13, 14); S(17, 18); \
    S(19, 20); S(21, 22); S(23, 24); H(0, 16); H(1, 17); H(2, 18); H(3, 19); H(4, 20); H(5, 21); L(6, 22); L(7, 23); \
    L(8, 24); H(8, 16); H(9, 17); L(10, 18); L(11, 19); L(12, 20); L(13, 21); H(6, 10); H(7, 11); L(12, 16); \
    L(13, 17); H(10, 12); L(11, 13); H(11, 12);
// END GENERATED NETWORKS

/* ks x ks median of the flow (not u3) with replicated borders, as tf_tvl1.median_filter, in place.  rows: ks
 * padded rows of w + ks - 1 floats; out: [h, w] scratch. */
CLONES static void median_filter(float *u, int h, int w, int ks, float *out, float *rows) {
  const int r = ks / 2, pw = w + 2 * r;
  for (int y = 0; y < h; ++y) {
    for (int i = 0; i < ks; ++i) {
      int yy = y + i - r;
      yy = yy < 0 ? 0 : (yy > h - 1 ? h - 1 : yy);
      const float *src = u + (size_t)yy * w;
      float *dst = rows + (size_t)i * pw;
      for (int x = 0; x < r; ++x) dst[x] = src[0], dst[w + r + x] = src[w - 1];
      memcpy(dst + r, src, sizeof(float) * w);
    }
    float *o = out + (size_t)y * w;
    if (ks == 5) {
      /* tap (i, j) of pixel x is rows[i][x + j]: one shifted row pointer per tap, so each is a contiguous load */
      const float *t[25];
      for (int i = 0; i < 25; ++i) t[i] = rows + (size_t)(i / 5) * pw + i % 5;
      const float *t0 = t[0], *t1 = t[1], *t2 = t[2], *t3 = t[3], *t4 = t[4], *t5 = t[5], *t6 = t[6], *t7 = t[7],
                  *t8 = t[8], *t9 = t[9], *t10 = t[10], *t11 = t[11], *t12 = t[12], *t13 = t[13], *t14 = t[14],
                  *t15 = t[15], *t16 = t[16], *t17 = t[17], *t18 = t[18], *t19 = t[19], *t20 = t[20], *t21 = t[21],
                  *t22 = t[22], *t23 = t[23], *t24 = t[24];
#pragma omp simd
      for (int x = 0; x < w; ++x) {
        float v[25] = {t0[x],  t1[x],  t2[x],  t3[x],  t4[x],  t5[x],  t6[x],  t7[x],  t8[x],  t9[x],  t10[x], t11[x],
                       t12[x], t13[x], t14[x], t15[x], t16[x], t17[x], t18[x], t19[x], t20[x], t21[x], t22[x], t23[x],
                       t24[x]};
        MEDIAN25
        o[x] = v[12];
      }
    } else {
      const float *t0 = rows, *t1 = t0 + 1, *t2 = t0 + 2, *t3 = t0 + pw, *t4 = t3 + 1, *t5 = t3 + 2, *t6 = t3 + pw,
                  *t7 = t6 + 1, *t8 = t6 + 2;
#pragma omp simd
      for (int x = 0; x < w; ++x) {
        float v[9] = {t0[x], t1[x], t2[x], t3[x], t4[x], t5[x], t6[x], t7[x], t8[x]};
        MEDIAN9
        o[x] = v[4];
      }
    }
  }
  memcpy(u, out, sizeof(float) * (size_t)h * w);
}

/* The warpings of one level (tf_tvl1._solve_level for a batch of one pair). */
static double solve_level(const float *i0, const float *i1, float **u, int k, int h, int w, const params_t *p,
                          float *work) {
  size_t n = (size_t)h * w;
  float *g1x = work, *g1y = g1x + n, *ix = g1y + n, *iy = ix + n, *inv_grad = iy + n, *rho_c = inv_grad + n;
  float *pp = rho_c + n, *tmp = pp + 2 * MAXK * n, *zero = tmp + n, *wires = zero + w;
  float *p1[MAXK], *p2[MAXK];
  for (int f = 0; f < k; ++f) p1[f] = pp + 2 * f * n, p2[f] = pp + (2 * f + 1) * n;
  memset(pp, 0, sizeof(float) * 2 * k * n); /* the duals restart at zero on every level */
  memset(zero, 0, sizeof(float) * w);
  centered_gradient(i1, h, w, g1x, g1y);
  const int median = p->median > 1;
  double count = 0.0;
  for (int warp = 0; warp < p->warps; ++warp) {
    warp_level(i1, g1x, g1y, i0, u[0], u[1], h, w, p, ix, iy, inv_grad, rho_c);
    if (!p->early) {
      for (int o = 0; o < p->outer; ++o) {
        if (median) median_filter(u[0], h, w, p->median, tmp, wires), median_filter(u[1], h, w, p->median, tmp, wires);
        for (int i = 0; i < p->inner; ++i) iterate(u, p1, p2, ix, iy, inv_grad, rho_c, k, h, w, p, zero);
      }
      count += (double)p->inner * p->outer;
      continue;
    }
    float err = INFINITY;
    for (int o = 0; o < p->outer && err > p->eps2; ++o) {
      if (median) median_filter(u[0], h, w, p->median, tmp, wires), median_filter(u[1], h, w, p->median, tmp, wires);
      for (int i = 0; i < p->inner && err > p->eps2; ++i) {
        err = (float)(iterate(u, p1, p2, ix, iy, inv_grad, rho_c, k, h, w, p, zero) / ((double)h * w));
        count += 1.0;
      }
    }
  }
  return count;
}

/* Flow of one pair.  a, b: [h, w] float32 frames (0..255); sizes: nlev (h, w) pairs, finest first
 * (tf_tvl1.pyramid_sizes); init: [h, w, 2] initial flow or NULL; flow: [h, w, 2] output; *iterations: the
 * iterations run.  Returns 0; 1 when memory runs out; 2 for arguments native.py never passes (a median other
 * than 0, 3 or 5, frames under 3x3, sizes[0] not (h, w), no level, warps or iterations). */
int i3d_tvl1_pair(const float *a, const float *b, int h, int w, const int *sizes, int nlev, float l_t, float taut,
                  float theta, float eps2, float gamma, float inv_scale_step, float scale_step, int warps, int inner,
                  int outer, int early, int bicubic, int constant, int median, const float *init, float *flow,
                  double *iterations) {
  params_t p = {l_t, taut, theta, eps2, gamma, warps, inner, outer, early, bicubic, constant, median};
  if (nlev < 1 || h < 3 || w < 3 || sizes[0] != h || sizes[1] != w || (median != 0 && median != 3 && median != 5) ||
      warps < 1 || inner < 1 || outer < 1)
    return 2;
  const int k = gamma != 0.0f ? 3 : 2;
  size_t total = 0, n0 = (size_t)h * w;
  for (int s = 0; s < nlev; ++s) total += (size_t)sizes[2 * s] * sizes[2 * s + 1];
  /* frames of every level, fields of the current and next level, the work arrays of the finest level */
  size_t wires = (size_t)(median > 1 ? median : 1) * (w + 4);
  size_t need = 2 * total + 2 * MAXK * n0 + (6 + 2 * MAXK + 1) * n0 + (size_t)w + wires;
  float *mem = malloc(sizeof(float) * need);
  float **lv0 = malloc(sizeof(float *) * 2 * nlev), **lv1 = lv0 ? lv0 + nlev : NULL;
  if (!mem || !lv0) {
    free(mem);
    free(lv0);
    return 1;
  }
  float *cur = mem;
  for (int s = 0; s < nlev; ++s) {
    size_t n = (size_t)sizes[2 * s] * sizes[2 * s + 1];
    lv0[s] = cur, cur += n;
    lv1[s] = cur, cur += n;
  }
  int bad = 0;
  memcpy(lv0[0], a, sizeof(float) * n0);
  memcpy(lv1[0], b, sizeof(float) * n0);
  for (int s = 1; s < nlev; ++s) {
    bad |= resize_bilinear(lv0[s - 1], sizes[2 * s - 2], sizes[2 * s - 1], lv0[s], sizes[2 * s], sizes[2 * s + 1], 1.0f);
    bad |= resize_bilinear(lv1[s - 1], sizes[2 * s - 2], sizes[2 * s - 1], lv1[s], sizes[2 * s], sizes[2 * s + 1], 1.0f);
  }
  float *fa = cur, *fb = fa + MAXK * n0, *work = fb + MAXK * n0;
  float *u[MAXK], *next[MAXK];
  for (int f = 0; f < MAXK; ++f) u[f] = fa + f * n0, next[f] = fb + f * n0;
  const int top = nlev - 1, th = sizes[2 * top], tw = sizes[2 * top + 1];
  if (init) {
    /* the initial flow's pyramid, each level resized from the previous one and scaled by scale_step */
    for (int c = 0; c < 2; ++c) {
      for (size_t q = 0; q < n0; ++q) u[c][q] = init[2 * q + c];
      for (int s = 1; s < nlev; ++s) {
        bad |= resize_bilinear(u[c], sizes[2 * s - 2], sizes[2 * s - 1], next[c], sizes[2 * s], sizes[2 * s + 1], 1.0f);
        size_t n = (size_t)sizes[2 * s] * sizes[2 * s + 1];
        for (size_t q = 0; q < n; ++q) u[c][q] = next[c][q] * scale_step;
      }
    }
  } else {
    memset(u[0], 0, sizeof(float) * th * tw);
    memset(u[1], 0, sizeof(float) * th * tw);
  }
  if (k == 3) memset(u[2], 0, sizeof(float) * th * tw);
  double count = 0.0;
  for (int s = top; s >= 0; --s) {
    const int lh = sizes[2 * s], lw = sizes[2 * s + 1];
    count += solve_level(lv0[s], lv1[s], u, k, lh, lw, &p, work);
    if (s > 0) {
      const int fh = sizes[2 * s - 2], fw = sizes[2 * s - 1];
      for (int f = 0; f < k; ++f) {
        bad |= resize_bilinear(u[f], lh, lw, next[f], fh, fw, f < 2 ? inv_scale_step : 1.0f);
        float *t = u[f];
        u[f] = next[f], next[f] = t;
      }
    }
  }
  for (size_t q = 0; q < n0; ++q) flow[2 * q] = u[0][q], flow[2 * q + 1] = u[1][q];
  *iterations = count;
  free(mem);
  free(lv0);
  return bad;
}

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_tvl1_native",
                                    "TV-L1 for one pair on the CPU; loaded with ctypes by data_pipelines.flow.native.",
                                    -1, NULL, NULL, NULL, NULL, NULL};

PyMODINIT_FUNC PyInit__tvl1_native(void) { return PyModule_Create(&module); }
