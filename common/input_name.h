/* How an input path is named in messages: "-" (standard input, which every
 * reader of traces, cluster files and JSON accepts) is "<stdin>", any
 * other path itself. One home for the rule, so that every message about
 * one input names it alike. */
#ifndef MOEPLACE_COMMON_INPUT_NAME_H
#define MOEPLACE_COMMON_INPUT_NAME_H

#include <string.h>

static inline const char *mp_input_name(const char *path) {
  return strcmp(path, "-") == 0 ? "<stdin>" : path;
}

#endif
