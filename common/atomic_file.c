#include "common/atomic_file.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include "common/error.h"

static const char tmp_tag[] = ".moeplace-tmp.";

/* ---- Registry of open temporary files, read by the signal handler ----- */

enum { REGISTRY_SLOTS = 32 };
static char *registry[REGISTRY_SLOTS]; /* accessed with __atomic builtins only */

static void registry_add(char *path) {
  for (int i = 0; i < REGISTRY_SLOTS; i++) {
    char *expected = NULL;
    if (__atomic_compare_exchange_n(&registry[i], &expected, path, 0, __ATOMIC_SEQ_CST,
                                    __ATOMIC_SEQ_CST))
      return;
  }
  /* Full: the file is still removed on every ordinary exit path, only not on a signal. */
}

static void registry_remove(const char *path) {
  for (int i = 0; i < REGISTRY_SLOTS; i++) {
    char *expected = (char *)path;
    if (__atomic_compare_exchange_n(&registry[i], &expected, NULL, 0, __ATOMIC_SEQ_CST,
                                    __ATOMIC_SEQ_CST))
      return;
  }
}

static void cleanup_handler(int sig) {
  int saved = errno;
  for (int i = 0; i < REGISTRY_SLOTS; i++) {
    char *p = __atomic_load_n(&registry[i], __ATOMIC_SEQ_CST);
    if (p) unlink(p); /* async-signal-safe */
  }
  errno = saved;
  /* SA_RESETHAND restored the default action; the signal is blocked while
   * we run, so it is delivered (and ends the process) when we return. */
  raise(sig);
}

static const int cleanup_sigs[] = {SIGINT, SIGTERM, SIGHUP, SIGPIPE, SIGXFSZ};
enum { N_CLEANUP_SIGS = sizeof cleanup_sigs / sizeof *cleanup_sigs };

void mp_atomic_install_signal_cleanup(void) {
  for (size_t i = 0; i < N_CLEANUP_SIGS; i++) {
    struct sigaction old;
    if (sigaction(cleanup_sigs[i], NULL, &old) != 0 || old.sa_handler != SIG_DFL) continue;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = cleanup_handler;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESETHAND;
    sigaction(cleanup_sigs[i], &sa, NULL);
  }
}

/* ---- Stale temporary files ------------------------------------------- */

/* Removes DIR/.BASE.moeplace-tmp.PID.XXXXXX (exactly six characters of
 * mkstemp's alphabet after the PID) when PID is not a live process. */
static void remove_stale(const char *dir, const char *base) {
  DIR *d = opendir(dir);
  if (!d) return;
  size_t blen = strlen(base), tlen = sizeof tmp_tag - 1;
  struct dirent *e;
  while ((e = readdir(d)) != NULL) {
    const char *n = e->d_name;
    if (n[0] != '.' || strncmp(n + 1, base, blen) != 0 || strncmp(n + 1 + blen, tmp_tag, tlen) != 0)
      continue;
    const char *p = n + 1 + blen + tlen;
    long pid = 0;
    int digits = 0;
    while (*p >= '0' && *p <= '9' && digits < 10) pid = pid * 10 + (*p++ - '0'), digits++;
    if (!digits || *p++ != '.' || pid <= 0 || pid > INT_MAX || pid == (long)getpid()) continue;
    int k = 0;
    while (k < 6 && ((p[k] >= 'a' && p[k] <= 'z') || (p[k] >= 'A' && p[k] <= 'Z') ||
                     (p[k] >= '0' && p[k] <= '9')))
      k++;
    if (k != 6 || p[6] != '\0') continue;
    if (kill((pid_t)pid, 0) == 0 || errno != ESRCH) continue; /* alive, or not ours to judge */
    struct stat st;
    if (fstatat(dirfd(d), n, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISREG(st.st_mode))
      unlinkat(dirfd(d), n, 0);
  }
  closedir(d);
}

/* ---- Open, commit, abort --------------------------------------------- */

static const char *kind_of(mode_t m) {
  return S_ISDIR(m) ? "a directory" : S_ISBLK(m) ? "a block device" : S_ISSOCK(m) ? "a socket"
                                                                                  : "not a regular file";
}

int mp_atomic_open(mp_atomic_file *f, const char *path) {
  memset(f, 0, sizeof *f);
  f->fd = -1;
  if (!path || !*path) return mp_fail(MOEPLACE_ERR_ARG, "output path is empty");
  if (strcmp(path, "-") == 0) {
    f->fd = STDOUT_FILENO;
    return MOEPLACE_OK;
  }
  if (!(f->path = strdup(path))) return mp_fail(MOEPLACE_ERR_NOMEM, "out of memory opening %s", path);
  struct stat st, lst;
  int exists = stat(path, &st) == 0;
  int err = errno;
  int rc;
  if (!exists && err != ENOENT) {
    rc = mp_fail(MOEPLACE_ERR_IO, "%s: cannot write: %s", path, strerror(err));
    goto fail;
  }
  if (!exists) {
    if (lstat(path, &lst) == 0 && S_ISLNK(lst.st_mode)) {
      rc = mp_fail(MOEPLACE_ERR_IO,
                   "%s: is a symbolic link to a missing file; refusing to write through it", path);
      goto fail;
    }
  } else if (S_ISCHR(st.st_mode) || S_ISFIFO(st.st_mode)) {
    /* Never replace or truncate a device or a FIFO: write into it. */
    f->fd = open(path, O_WRONLY | O_NOCTTY | O_CLOEXEC);
    if (f->fd < 0) {
      rc = mp_fail(MOEPLACE_ERR_IO, "%s: cannot open for writing: %s", path, strerror(errno));
      goto fail;
    }
    f->in_place = 1;
    return MOEPLACE_OK;
  } else if (!S_ISREG(st.st_mode)) {
    rc = mp_fail(MOEPLACE_ERR_IO, "%s: is %s; refusing to write to it", path, kind_of(st.st_mode));
    goto fail;
  } else if (access(path, W_OK) != 0) {
    rc = mp_fail(MOEPLACE_ERR_IO, "%s: cannot write: %s", path, strerror(errno));
    goto fail;
  }
  /* A regular file or nothing: replace through a temporary file beside the
   * real file (a symlink's target, so that the link survives). */
  if (exists && lstat(path, &lst) == 0 && S_ISLNK(lst.st_mode))
    f->target = realpath(path, NULL);
  else
    f->target = strdup(path);
  if (!f->target) {
    rc = mp_fail(MOEPLACE_ERR_IO, "%s: cannot resolve: %s", path, strerror(errno));
    goto fail;
  }
  const char *slash = strrchr(f->target, '/');
  const char *base = slash ? slash + 1 : f->target;
  size_t dlen = slash ? (size_t)(slash - f->target) + 1 : 0;
  size_t need = dlen + 1 + strlen(base) + sizeof tmp_tag + 24 + sizeof ".XXXXXX";
  if (!(f->tmp_path = malloc(need))) {
    rc = mp_fail(MOEPLACE_ERR_NOMEM, "out of memory opening %s", path);
    goto fail;
  }
  snprintf(f->tmp_path, need, "%.*s.%s%s%ld.XXXXXX", (int)dlen, f->target, base, tmp_tag,
           (long)getpid());
  {
    char *dir = dlen ? strndup(f->target, dlen) : strdup(".");
    if (dir) remove_stale(dir, base);
    free(dir);
  }
  /* A signal between creating the file and registering it would leave it
   * behind: hold the cleanup signals until it is registered. */
  sigset_t hold, prev;
  sigemptyset(&hold);
  for (size_t i = 0; i < N_CLEANUP_SIGS; i++) sigaddset(&hold, cleanup_sigs[i]);
  pthread_sigmask(SIG_BLOCK, &hold, &prev);
  f->fd = mkstemp(f->tmp_path);
  err = errno;
  if (f->fd >= 0) registry_add(f->tmp_path);
  pthread_sigmask(SIG_SETMASK, &prev, NULL);
  if (f->fd < 0) {
    free(f->tmp_path);
    f->tmp_path = NULL; /* nothing to remove */
    rc = mp_fail(MOEPLACE_ERR_IO, "%s: cannot create output file: %s", path, strerror(err));
    goto fail;
  }
  fcntl(f->fd, F_SETFD, FD_CLOEXEC);
  /* mkstemp creates 0600: keep the replaced file's mode, or use the umask's. */
  mode_t mask = umask(0);
  umask(mask);
  fchmod(f->fd, exists ? (st.st_mode & 07777) : (0666 & ~mask));
  return MOEPLACE_OK;
fail:
  mp_atomic_abort(f, 1);
  return rc;
}

static void release(mp_atomic_file *f) {
  free(f->tmp_path);
  free(f->path);
  free(f->target);
  f->path = f->tmp_path = f->target = NULL;
  f->in_place = 0;
}

int mp_atomic_commit(mp_atomic_file *f, int closed) {
  if (!f->path) return MOEPLACE_OK; /* stdout */
  if (f->in_place) {
    int rc = MOEPLACE_OK;
    if (!closed && close(f->fd) != 0)
      rc = mp_fail(MOEPLACE_ERR_IO, "%s: write failed: %s", f->path, strerror(errno));
    f->fd = -1;
    release(f);
    return rc;
  }
  if (!closed) {
    int err = fsync(f->fd) != 0 ? errno : 0;
    if (close(f->fd) != 0 && !err) err = errno;
    f->fd = -1;
    if (err) {
      int rc = mp_fail(MOEPLACE_ERR_IO, "%s: write failed: %s", f->path, strerror(err));
      mp_atomic_abort(f, 1);
      return rc;
    }
  }
  if (rename(f->tmp_path, f->target) != 0) {
    int rc = mp_fail(MOEPLACE_ERR_IO, "%s: cannot rename temporary file into place: %s", f->path,
                     strerror(errno));
    mp_atomic_abort(f, 1);
    return rc;
  }
  registry_remove(f->tmp_path);
  release(f);
  return MOEPLACE_OK;
}

void mp_atomic_abort(mp_atomic_file *f, int closed) {
  if (!closed && f->fd >= 0 && f->fd != STDOUT_FILENO) close(f->fd);
  f->fd = -1;
  if (f->tmp_path) {
    unlink(f->tmp_path);
    registry_remove(f->tmp_path);
  }
  release(f);
}
