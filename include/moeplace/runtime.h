/* moeplace/runtime.h: see <moeplace.h>. (API under construction.) */
#ifndef MOEPLACE_RUNTIME_H
#define MOEPLACE_RUNTIME_H

#include <moeplace/base.h>

#ifdef __cplusplus
extern "C" {
#endif

#ifdef __cplusplus
}
#endif

#endif /* MOEPLACE_RUNTIME_H */
