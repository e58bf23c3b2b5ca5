/* Line-at-a-time input from a file (plain or gzip, through zlib's inflate), stdin or
 * a memory buffer, with the checks a text-format reader needs up front:
 * bounded line length and no NUL bytes. Lines are returned without their
 * "\n" or "\r\n", the first one without a UTF-8 byte-order mark. */
#ifndef MOEPLACE_COMMON_LINE_READER_H
#define MOEPLACE_COMMON_LINE_READER_H

#include <stddef.h>
#include <zlib.h>

typedef struct mp_line_reader {
  const char *name; /* for messages (not owned) */
  int fd;           /* file source, or -1 for memory */
  int gzip;         /* the file starts with the gzip magic: inflate every member */
  int z_ready;      /* z is initialised */
  int member_done;  /* the last member ended; more input must be another member */
  int in_eof;       /* read() returned 0 */
  long long in_read; /* compressed bytes read so far (for messages) */
  long members;     /* gzip members started */
  z_stream z;
  unsigned char *in; /* raw input buffer */
  const unsigned char *mem;
  size_t mem_size;
  unsigned char *chunk; /* decoded bytes read but not yet consumed */
  size_t chunk_len, chunk_pos;
  int at_eof;
  char *line; /* current line, NUL-terminated */
  size_t line_len, line_cap, max_line;
  long lineno; /* 1-based number of the current line */
} mp_line_reader;

/* path "-" is stdin. Compressed and plain input are both accepted: input
 * starting with the gzip magic is read as a sequence of gzip members to its
 * last byte; damage anywhere (a bad header, bad data, a truncated member,
 * trailing garbage) is an error, never a silent end of input. */
int mp_line_reader_open_file(mp_line_reader *r, const char *path, const char *name,
                             size_t max_line);
int mp_line_reader_open_memory(mp_line_reader *r, const void *data, size_t size,
                               const char *name, size_t max_line);
void mp_line_reader_close(mp_line_reader *r);

/* 1: a line is in r->line (length r->line_len); 0: end of input; <0: error
 * with "name:line: reason" set. */
int mp_line_reader_next(mp_line_reader *r);

#endif
