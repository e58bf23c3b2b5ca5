/* moeplace/placement.h: see <moeplace.h>. (API under construction.) */
#ifndef MOEPLACE_PLACEMENT_H
#define MOEPLACE_PLACEMENT_H

#include <moeplace/base.h>

#ifdef __cplusplus
extern "C" {
#endif

#ifdef __cplusplus
}
#endif

#endif /* MOEPLACE_PLACEMENT_H */
