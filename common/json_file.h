/* Writing a JSON document to a file atomically (see atomic_file.h). */
#ifndef MOEPLACE_COMMON_JSON_FILE_H
#define MOEPLACE_COMMON_JSON_FILE_H

#include <jansson.h>

/* Writes `root` indented to `path` ("-" is stdout) through a temporary file
 * and a rename. Does not take ownership of root. */
int mp_json_write_file(const json_t *root, const char *path);

/* Reads a JSON document ("-" is stdin, named <stdin>); errors name the
 * file, line and column. The caller owns the result (json_decref). */
int mp_json_read_file(const char *path, json_t **out);

#endif
