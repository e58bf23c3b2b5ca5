/* moeplace/predict.h: see <moeplace.h>. (API under construction.) */
#ifndef MOEPLACE_PREDICT_H
#define MOEPLACE_PREDICT_H

#include <moeplace/base.h>

#ifdef __cplusplus
extern "C" {
#endif

#ifdef __cplusplus
}
#endif

#endif /* MOEPLACE_PREDICT_H */
