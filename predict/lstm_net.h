/* A single-layer LSTM with a linear head to one scalar per time step,
 * forward and backward written by hand in float32 (llm.c style: one flat
 * parameter array, shape-annotated loops, GEMMs through cblas_sgemm).
 *
 * The semantics are exactly torch.nn.LSTM(in, hid) followed by
 * torch.nn.Linear(hid, 1), zero initial state, gate order i, f, g, o:
 *   z_t   = [x_t, h_{t-1}] @ W + b            z: [B][4H]
 *   i,f,o = sigmoid(z_i, z_f, z_o); g = tanh(z_g)
 *   c_t   = f * c_{t-1} + i * g;  h_t = o * tanh(c_t)
 *   y_t   = h_t . w_out + b_out
 * W stacks PyTorch's weight_ih_l0^T over weight_hh_l0^T, so one GEMM per step
 * handles both the input and the recurrent product; b = bias_ih + bias_hh.
 *
 * The loss is the masked mean squared error
 *   loss = sum_{t,b} mask[t][b] (y[t][b] - target[t][b])^2 / sum mask.
 * Only the predictor uses this; it is internal. */
#ifndef MOEPLACE_PREDICT_LSTM_NET_H
#define MOEPLACE_PREDICT_LSTM_NET_H

#include <stddef.h>
#include <stdint.h>

typedef struct mp_lstm_net {
  int in, hid;      /* input size, hidden size H */
  int max_b, max_t; /* capacity of the activation buffers */
  size_t n_params;
  /* Flat parameters, in this order (offsets below):
   *   W     [(in+H)][4H]   row-major, columns i|f|g|o blocks of H
   *   b     [4H]
   *   w_out [H]
   *   b_out [1] */
  float *params, *grads, *adam_m, *adam_v;
  size_t off_w, off_b, off_wout, off_bout;
  long adam_t; /* Adam step counter (bias correction) */
  /* Activations of the last forward pass, kept for backward. */
  float *xh;  /* [T][B][in+H]  concatenated input and previous h */
  float *act; /* [T][B][4H]    gate activations i,f,g,o (post-nonlinearity) */
  float *c;   /* [T+1][B][H]   cell state, c[0] = 0 */
  float *tc;  /* [T][B][H]     tanh(c_t) */
  float *h;   /* [T][B][H]     hidden state */
  float *y;   /* [T][B]        head outputs */
  /* Scratch for backward. */
  float *dz;          /* [B][4H] */
  float *dxh;         /* [B][in+H] */
  float *dh, *dc;     /* [B][H] each: gradient flowing from t+1 */
  int last_b, last_t; /* shape of the last forward pass */
} mp_lstm_net;

/* Allocates a net for batches up to max_b and sequences up to max_t and
 * initialises it like PyTorch (U(-1/sqrt(H), 1/sqrt(H)) for the LSTM), from a
 * deterministic generator seeded by `seed`. The head starts at zero so an
 * untrained net outputs exactly 0. */
int mp_lstm_net_create(mp_lstm_net **out, int in, int hid, int max_b, int max_t, uint64_t seed);
void mp_lstm_net_destroy(mp_lstm_net *net);

/* x: [T][B][in] -> y: [T][B] (also kept in net->y). Zero initial state. */
int mp_lstm_net_forward(mp_lstm_net *net, const float *x, int B, int T, float *y);

/* Masked MSE of the last forward pass against target: [T][B], mask: [T][B]
 * (NULL = all ones). Returns the loss; accumulates (+=) parameter gradients
 * into net->grads and, when dx != NULL, writes the input gradient dx:
 * [T][B][in]. Call mp_lstm_net_zero_grad() first. */
double mp_lstm_net_backward(mp_lstm_net *net, const float *target, const float *mask, float *dx);
void mp_lstm_net_zero_grad(mp_lstm_net *net);

/* Loss only, from the last forward pass (same definition as backward). */
double mp_lstm_net_loss(const mp_lstm_net *net, const float *target, const float *mask);

/* One Adam step (torch.optim.Adam semantics: betas 0.9/0.999, eps 1e-8,
 * bias-corrected) after clipping the gradient to global norm max_norm
 * (<= 0: no clipping). Returns the gradient norm before clipping. */
double mp_lstm_net_adam(mp_lstm_net *net, float lr, float max_norm);

/* Deterministic 64-bit generator (splitmix64) shared by the net and the
 * predictor; uniform in [0, 1). */
uint64_t mp_lstm_rand_u64(uint64_t *state);
double mp_lstm_rand_uniform(uint64_t *state);

#endif
