#!/bin/sh
# make check (MPI builds): the Python runtime tests on 2 ranks; see python.sh.
exec "$(dirname "$0")/python.sh" mpi
