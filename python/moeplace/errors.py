"""moeplace.Error: a failed call of the C library."""

__all__ = ["Error"]

# The C library's status codes (moeplace/base.h, enum moeplace_status).
OK = 0
ERR_ARG = -1
ERR_NOMEM = -2
ERR_IO = -3
ERR_FORMAT = -4
ERR_STATE = -5
ERR_MPI = -6
ERR_MISMATCH = -7
ERR_VERIFY = -8
ERR_NUMERIC = -9
ERR_UNSUPPORTED = -10


class Error(Exception):
    """A moeplace C call failed.

    ``status`` is the negative ``MOEPLACE_ERR_*`` code the call returned,
    ``message`` the reason ``moeplace_last_error()`` gave (for example
    ``"trace.csv:12: expected 16 expert counts, found 15"``), and ``name``
    the short description ``moeplace_strerror()`` gives for the status.
    Bad Python input (wrong types, dtypes or shapes) raises TypeError or
    ValueError before any C call instead."""

    def __init__(self, status, message, name=""):
        """Error(status, message[, name]): status is the C status code."""
        super().__init__(status, message)
        self.status = int(status)
        self.message = message
        self.name = name

    def __str__(self):
        head = self.name or "moeplace status %d" % self.status
        return "%s: %s" % (head, self.message) if self.message else head
