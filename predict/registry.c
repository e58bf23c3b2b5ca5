#include "predict/registry.h"

#include <string.h>

#include "common/error.h"
#include "predict/auto.h"
#include "predict/lstm.h"
#include "predict/sw_avg.h"

/* Order: the reference first, the blend last (auto blends everything between). */
static const mp_predictor_ops *const methods[] = {&mp_last_ops, &mp_sw_avg_ops, &mp_arima_ops,
                                                  &mp_lstm_ops, &mp_auto_ops};

void mp_predict_params_default(mp_predict_params *prm) {
  prm->sw_avg_k = MP_SW_AVG_DEFAULT_K;
  mp_arima_config_init(&prm->arima);
  prm->auto_power = 4.0;
}

int mp_predict_count(void) { return (int)(sizeof methods / sizeof methods[0]); }

const mp_predictor_ops *mp_predict_get(int i) {
  return i >= 0 && i < mp_predict_count() ? methods[i] : NULL;
}

const mp_predictor_ops *mp_predict_find(const char *name) {
  for (int i = 0; name && i < mp_predict_count(); i++)
    if (!strcmp(methods[i]->name, name)) return methods[i];
  return NULL;
}

int mp_predict_create(const mp_predictor_ops *ops, const mp_predict_params *prm, int experts,
                      uint64_t seed, void **state) {
  if (!ops || !prm || !state) return mp_fail(MOEPLACE_ERR_ARG, "mp_predict_create: NULL argument");
  if (ops == &mp_sw_avg_ops) return mp_sw_avg_create_k(state, experts, prm->sw_avg_k);
  if (ops == &mp_arima_ops) return mp_arima_create_cfg(state, experts, &prm->arima);
  if (ops == &mp_auto_ops) return mp_auto_create_cfg(state, experts, seed, prm);
  return ops->create(state, experts, seed);
}

/* Public: the method names. */
#include <moeplace.h>

int moeplace_predict_method_count(void) { return mp_predict_count(); }

const char *moeplace_predict_method_name(int i) {
  const mp_predictor_ops *o = mp_predict_get(i);
  return o ? o->name : NULL;
}
