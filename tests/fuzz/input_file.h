/* Shared by the file-reading fuzz targets: the input bytes as a file the
 * reader opens by name. A memfd (no disk traffic) reached through
 * /proc/self/fd/N, rewritten for every input. */
#ifndef MOEPLACE_FUZZ_INPUT_FILE_H
#define MOEPLACE_FUZZ_INPUT_FILE_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

static const char *fuzz_file(const uint8_t *data, size_t size) {
  static int fd = -1;
  static char path[64];
  if (fd < 0) {
    fd = memfd_create("moeplace-fuzz", 0);
    if (fd < 0) abort();
    snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
  }
  if (ftruncate(fd, 0) != 0 || pwrite(fd, data, size, 0) != (ssize_t)size) abort();
  return path;
}

#endif
