/* Hand-written LSTM forward/backward and Adam (see lstm_net.h for the
 * equations). Checked against torch.nn.LSTM on tests/data/lstm_fixture.json
 * and by finite differences in tests/test_lstm.c. */
#include "predict/lstm_net.h"

#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"

uint64_t mp_lstm_rand_u64(uint64_t *state) {
  uint64_t z = (*state += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

double mp_lstm_rand_uniform(uint64_t *state) {
  return (double)(mp_lstm_rand_u64(state) >> 11) * 0x1.0p-53;
}

/* Gate nonlinearities dominate the cost (5 per hidden unit per step, against
 * (in+H)*4 multiply-adds in the GEMM), and libm's expf/tanhf do not
 * vectorise. So they are computed 8 lanes at a time with GCC/Clang vector
 * extensions (AVX2, or pairs of SSE2/NEON registers) from one exp:
 *   exp(x)     = 2^n * P(r), n = round(x log2 e), r = x - n ln 2, with the
 *                Cephes expf polynomial (relative error ~1e-7 on the range);
 *   sigmoid(x) = 1 / (1 + exp(-x));  tanh(x) = 2 sigmoid(2x) - 1
 * (absolute error ~1e-7, well inside the fixture tolerance). */
/* 8 float lanes; helpers take pointers (not vectors by value) so no
 * function signature depends on the vector ABI of the target. */
#define MP_LSTM_LANES 8
typedef float vf __attribute__((vector_size(4 * MP_LSTM_LANES)));
typedef int32_t vi __attribute__((vector_size(4 * MP_LSTM_LANES)));

/* The forward pass is compiled twice where the toolchain can dispatch at load
 * time: for AVX2 (the 8 lanes in one register) and for the x86-64 baseline
 * (the same 8-lane code as two SSE halves); the arithmetic is identical. */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && \
    !defined(__SANITIZE_ADDRESS__)
#define MP_LSTM_CLONES __attribute__((target_clones("avx2", "default")))
#else
#define MP_LSTM_CLONES
#endif

/* m ? a : b lane by lane (m: all-ones or zero lanes from a comparison). */
#define VF_SELECT(m, a, b) ((vf)(((vi)(a) & (m)) | ((vi)(b) & ~(m))))

static inline void vf_exp(vf *v) {
  const vf hi = (vf){0} + 88.0f, lo = (vf){0} - 87.0f;
  vf x = *v;
  x = VF_SELECT(x > hi, hi, x);
  x = VF_SELECT(x < lo, lo, x);
  const vf fn = x * 1.44269504088896341f + 0.5f;
  vi n = __builtin_convertvector(fn, vi);
  n -= (vi)(__builtin_convertvector(n, vf) > fn) & 1; /* floor(x log2 e + 0.5) */
  const vf nf = __builtin_convertvector(n, vf);
  const vf r = x - nf * 0.693359375f + nf * 2.12194440e-4f; /* x - n ln2, ln2 split hi/lo */
  vf p = r * 1.9875691500e-4f + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.0f;
  const vi bits = (n + 127) << 23; /* 2^n for n in [-126, 127] */
  vf scale;
  memcpy(&scale, &bits, sizeof scale);
  *v = p * scale;
}

/* *v = sigmoid(src[0..LANES)) */
static inline void vf_sigmoid(vf *v, const float *src) {
  vf t;
  memcpy(&t, src, sizeof t);
  t = -t;
  vf_exp(&t);
  *v = 1.0f / (1.0f + t);
}

/* *v = tanh(x) = 2 sigmoid(2x) - 1 */
static inline void vf_tanh(vf *v, const vf *x) {
  vf t = -2.0f * *x;
  vf_exp(&t);
  *v = 2.0f / (1.0f + t) - 1.0f;
}

static float sigmoidf_(float z) { return 1.0f / (1.0f + expf(-z)); }

void mp_lstm_net_destroy(mp_lstm_net *net) {
  if (!net) return;
  free(net->params);
  free(net->grads);
  free(net->adam_m);
  free(net->adam_v);
  free(net->xh);
  free(net->act);
  free(net->c);
  free(net->tc);
  free(net->h);
  free(net->y);
  free(net->dz);
  free(net->dxh);
  free(net->dh);
  free(net->dc);
  free(net);
}

int mp_lstm_net_create(mp_lstm_net **out, int in, int hid, int max_b, int max_t, uint64_t seed) {
  *out = NULL;
  if (in <= 0 || hid <= 0 || max_b <= 0 || max_t <= 0)
    return mp_fail(MOEPLACE_ERR_ARG, "lstm net: sizes must be > 0 (in %d, hid %d, batch %d, T %d)",
                   in, hid, max_b, max_t);
  mp_lstm_net *n = calloc(1, sizeof *n);
  MP_CHECK_ALLOC(n);
  const size_t IH = (size_t)in + (size_t)hid, G = 4 * (size_t)hid;
  const size_t B = (size_t)max_b, T = (size_t)max_t, H = (size_t)hid;
  n->in = in;
  n->hid = hid;
  n->max_b = max_b;
  n->max_t = max_t;
  n->off_w = 0;
  n->off_b = IH * G;
  n->off_wout = n->off_b + G;
  n->off_bout = n->off_wout + H;
  n->n_params = n->off_bout + 1;
  n->params = calloc(n->n_params, sizeof(float));
  n->grads = calloc(n->n_params, sizeof(float));
  n->adam_m = calloc(n->n_params, sizeof(float));
  n->adam_v = calloc(n->n_params, sizeof(float));
  n->xh = malloc(T * B * IH * sizeof(float));
  n->act = malloc(T * B * G * sizeof(float));
  n->c = malloc((T + 1) * B * H * sizeof(float));
  n->tc = malloc(T * B * H * sizeof(float));
  n->h = malloc(T * B * H * sizeof(float));
  n->y = malloc(T * B * sizeof(float));
  n->dz = malloc(B * G * sizeof(float));
  n->dxh = malloc(B * IH * sizeof(float));
  n->dh = malloc(B * H * sizeof(float));
  n->dc = malloc(B * H * sizeof(float));
  if (!n->params || !n->grads || !n->adam_m || !n->adam_v || !n->xh || !n->act || !n->c || !n->tc ||
      !n->h || !n->y || !n->dz || !n->dxh || !n->dh || !n->dc) {
    mp_lstm_net_destroy(n);
    return mp_fail(MOEPLACE_ERR_NOMEM, "lstm net: out of memory (batch %d, T %d, hid %d)", max_b,
                   max_t, hid);
  }
  /* PyTorch's nn.LSTM init: every weight and bias U(-k, k), k = 1/sqrt(H).
   * The two PyTorch biases add up, so b is the sum of two such draws. The
   * head is zero: the predictor treats the output as a correction to a
   * baseline, so an untrained net must not move the forecast. */
  uint64_t rng = seed ^ 0x6c73746d6e657431ULL; /* "lstmnet1" */
  const float k = 1.0f / sqrtf((float)hid);
  for (size_t j = 0; j < n->off_b; j++)
    n->params[j] = (float)((2.0 * mp_lstm_rand_uniform(&rng) - 1.0) * k);
  for (size_t j = 0; j < G; j++)
    n->params[n->off_b + j] = (float)((2.0 * mp_lstm_rand_uniform(&rng) - 1.0) * k +
                                      (2.0 * mp_lstm_rand_uniform(&rng) - 1.0) * k);
  *out = n;
  return MOEPLACE_OK;
}

MP_LSTM_CLONES int mp_lstm_net_forward(mp_lstm_net *net, const float *x, int B, int T, float *y) {
  if (B <= 0 || T <= 0 || B > net->max_b || T > net->max_t)
    return mp_fail(MOEPLACE_ERR_ARG, "lstm forward: batch %d / T %d outside capacity %d / %d", B, T,
                   net->max_b, net->max_t);
  const int in = net->in, H = net->hid, IH = in + H, G = 4 * H;
  const float *W = net->params + net->off_w;       /* [IH][G] */
  const float *bias = net->params + net->off_b;    /* [G] */
  const float *wout = net->params + net->off_wout; /* [H] */
  const float bout = net->params[net->off_bout];
  memset(net->c, 0, (size_t)B * H * sizeof(float)); /* c[0] = 0 */
  for (int t = 0; t < T; t++) {
    float *xh_t = net->xh + (size_t)t * B * IH;      /* [B][IH] */
    float *act_t = net->act + (size_t)t * B * G;     /* [B][G] */
    const float *cprev = net->c + (size_t)t * B * H; /* [B][H] */
    float *c_t = net->c + (size_t)(t + 1) * B * H;   /* [B][H] */
    float *tc_t = net->tc + (size_t)t * B * H;
    float *h_t = net->h + (size_t)t * B * H;
    const float *hprev = t > 0 ? net->h + (size_t)(t - 1) * B * H : NULL;
    const float *x_t = x + (size_t)t * B * in; /* [B][in] */
    for (int b = 0; b < B; b++) {
      memcpy(xh_t + (size_t)b * IH, x_t + (size_t)b * in, (size_t)in * sizeof(float));
      if (hprev)
        memcpy(xh_t + (size_t)b * IH + in, hprev + (size_t)b * H, (size_t)H * sizeof(float));
      else
        memset(xh_t + (size_t)b * IH + in, 0, (size_t)H * sizeof(float));
      memcpy(act_t + (size_t)b * G, bias, (size_t)G * sizeof(float));
    }
    /* act_t[B][G] = xh_t[B][IH] @ W[IH][G] + bias (preloaded, beta = 1) */
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, B, G, IH, 1.0f, xh_t, IH, W, G, 1.0f,
                act_t, G);
    for (int b = 0; b < B; b++) {
      float *a = act_t + (size_t)b * G;
      const float *cp = cprev + (size_t)b * H;
      float *cb = c_t + (size_t)b * H, *tcb = tc_t + (size_t)b * H, *hb = h_t + (size_t)b * H;
      float acc = bout;
      int j = 0;
      for (; j + MP_LSTM_LANES <= H; j += MP_LSTM_LANES) {
        vf ig, fg, gg, og, cc, tcc, cpv, wv, zg;
        vf_sigmoid(&ig, a + j);
        vf_sigmoid(&fg, a + H + j);
        memcpy(&zg, a + 2 * H + j, sizeof zg);
        vf_tanh(&gg, &zg);
        vf_sigmoid(&og, a + 3 * H + j);
        memcpy(a + j, &ig, sizeof ig);
        memcpy(a + H + j, &fg, sizeof fg);
        memcpy(a + 2 * H + j, &gg, sizeof gg);
        memcpy(a + 3 * H + j, &og, sizeof og);
        memcpy(&cpv, cp + j, sizeof cpv);
        cc = fg * cpv + ig * gg;
        vf_tanh(&tcc, &cc);
        const vf hh = og * tcc;
        memcpy(cb + j, &cc, sizeof cc);
        memcpy(tcb + j, &tcc, sizeof tcc);
        memcpy(hb + j, &hh, sizeof hh);
        memcpy(&wv, wout + j, sizeof wv);
        const vf prod = hh * wv;
        for (int q = 0; q < MP_LSTM_LANES; q++) acc += prod[q];
      }
      for (; j < H; j++) { /* hidden sizes that are not a multiple of 4 */
        const float ig = sigmoidf_(a[j]);
        const float fg = sigmoidf_(a[H + j]);
        const float gg = tanhf(a[2 * H + j]);
        const float og = sigmoidf_(a[3 * H + j]);
        a[j] = ig;
        a[H + j] = fg;
        a[2 * H + j] = gg;
        a[3 * H + j] = og;
        const float cc = fg * cprev[(size_t)b * H + j] + ig * gg;
        const float tcc = tanhf(cc);
        c_t[(size_t)b * H + j] = cc;
        tc_t[(size_t)b * H + j] = tcc;
        const float hh = og * tcc;
        h_t[(size_t)b * H + j] = hh;
        acc += hh * wout[j];
      }
      net->y[(size_t)t * B + b] = acc;
    }
  }
  net->last_b = B;
  net->last_t = T;
  if (y) memcpy(y, net->y, (size_t)T * B * sizeof(float));
  return MOEPLACE_OK;
}

void mp_lstm_net_zero_grad(mp_lstm_net *net) {
  memset(net->grads, 0, net->n_params * sizeof(float));
}

static double mask_total(const float *mask, size_t n) {
  if (!mask) return (double)n;
  double s = 0.0;
  for (size_t i = 0; i < n; i++) s += mask[i];
  return s;
}

double mp_lstm_net_loss(const mp_lstm_net *net, const float *target, const float *mask) {
  const size_t n = (size_t)net->last_t * net->last_b;
  const double tot = mask_total(mask, n);
  if (tot <= 0.0) return 0.0;
  double s = 0.0;
  for (size_t i = 0; i < n; i++) {
    const double d = (double)net->y[i] - target[i];
    s += (mask ? mask[i] : 1.0) * d * d;
  }
  return s / tot;
}

double mp_lstm_net_backward(mp_lstm_net *net, const float *target, const float *mask, float *dx) {
  const int B = net->last_b, T = net->last_t;
  const int in = net->in, H = net->hid, IH = in + H, G = 4 * H;
  const float *W = net->params + net->off_w;
  const float *wout = net->params + net->off_wout;
  float *dW = net->grads + net->off_w;       /* [IH][G] */
  float *db = net->grads + net->off_b;       /* [G] */
  float *dwout = net->grads + net->off_wout; /* [H] */
  float *dbout = net->grads + net->off_bout; /* [1] */
  const double loss = mp_lstm_net_loss(net, target, mask);
  const double tot = mask_total(mask, (size_t)T * B);
  const float scale = tot > 0.0 ? (float)(2.0 / tot) : 0.0f;
  memset(net->dh, 0, (size_t)B * H * sizeof(float));
  memset(net->dc, 0, (size_t)B * H * sizeof(float));
  for (int t = T - 1; t >= 0; t--) {
    const float *act_t = net->act + (size_t)t * B * G;
    const float *cprev = net->c + (size_t)t * B * H;
    const float *tc_t = net->tc + (size_t)t * B * H;
    const float *h_t = net->h + (size_t)t * B * H;
    const float *xh_t = net->xh + (size_t)t * B * IH;
    for (int b = 0; b < B; b++) {
      const size_t i = (size_t)t * B + b;
      /* dL/dy for this output. */
      const float dy = mask && mask[i] == 0.0f
                           ? 0.0f
                           : scale * (mask ? mask[i] : 1.0f) * (net->y[i] - target[i]);
      *dbout += dy;
      const float *a = act_t + (size_t)b * G;
      float *dzb = net->dz + (size_t)b * G;
      float *dhb = net->dh + (size_t)b * H; /* in: from t+1, out: unused */
      float *dcb = net->dc + (size_t)b * H; /* in: from t+1, out: to t-1 */
      for (int j = 0; j < H; j++) {
        const float hh = h_t[(size_t)b * H + j];
        dwout[j] += dy * hh;
        const float dhj = dy * wout[j] + dhb[j];
        const float ig = a[j], fg = a[H + j], gg = a[2 * H + j], og = a[3 * H + j];
        const float tcc = tc_t[(size_t)b * H + j];
        const float dcj = dhj * og * (1.0f - tcc * tcc) + dcb[j];
        dzb[j] = dcj * gg * ig * (1.0f - ig);                           /* input gate */
        dzb[H + j] = dcj * cprev[(size_t)b * H + j] * fg * (1.0f - fg); /* forget */
        dzb[2 * H + j] = dcj * ig * (1.0f - gg * gg);                   /* candidate */
        dzb[3 * H + j] = dhj * tcc * og * (1.0f - og);                  /* output gate */
        dcb[j] = dcj * fg;
      }
      for (int j = 0; j < G; j++) db[j] += dzb[j];
    }
    /* dW[IH][G] += xh_t^T[IH][B] @ dz[B][G] */
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, IH, G, B, 1.0f, xh_t, IH, net->dz, G, 1.0f,
                dW, G);
    /* dxh[B][IH] = dz[B][G] @ W^T[G][IH] */
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, B, IH, G, 1.0f, net->dz, G, W, G, 0.0f,
                net->dxh, IH);
    for (int b = 0; b < B; b++) {
      const float *d = net->dxh + (size_t)b * IH;
      if (dx) memcpy(dx + ((size_t)t * B + b) * in, d, (size_t)in * sizeof(float));
      memcpy(net->dh + (size_t)b * H, d + in, (size_t)H * sizeof(float));
    }
  }
  return loss;
}

double mp_lstm_net_adam(mp_lstm_net *net, float lr, float max_norm) {
  double sq = 0.0;
  for (size_t i = 0; i < net->n_params; i++) sq += (double)net->grads[i] * net->grads[i];
  const double norm = sqrt(sq);
  const float clip = (max_norm > 0.0f && norm > max_norm) ? (float)(max_norm / norm) : 1.0f;
  const float b1 = 0.9f, b2 = 0.999f, eps = 1e-8f;
  net->adam_t++;
  const float c1 = 1.0f - powf(b1, (float)net->adam_t);
  const float c2 = 1.0f - powf(b2, (float)net->adam_t);
  for (size_t i = 0; i < net->n_params; i++) {
    const float g = net->grads[i] * clip;
    net->adam_m[i] = b1 * net->adam_m[i] + (1.0f - b1) * g;
    net->adam_v[i] = b2 * net->adam_v[i] + (1.0f - b2) * g * g;
    const float mh = net->adam_m[i] / c1, vh = net->adam_v[i] / c2;
    net->params[i] -= lr * mh / (sqrtf(vh) + eps);
  }
  return norm;
}
