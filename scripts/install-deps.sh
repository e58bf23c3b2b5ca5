#!/bin/sh
# Installs what moeplace needs on Debian 12 / Ubuntu, and nothing twice:
# packages already present are skipped, so running it again is cheap.
#
#   scripts/install-deps.sh          build, run and test (incl. sanitizers,
#                                    valgrind, fuzzing, the Slurm and
#                                    multihost tests, the PyTorch trainer)
#   scripts/install-deps.sh --extra  also the Python packages that regenerate
#                                    fixtures, run reference benchmarks and
#                                    draw plots (statsmodels, matplotlib)
set -eu

BUILD="build-essential autoconf automake libtool pkg-config make gzip
  libopenmpi-dev openmpi-bin libhwloc-dev hwloc libopenblas-dev check
  libjansson-dev zlib1g-dev libxxhash-dev libgsl-dev"
# Slurm: the daemons and client only (slurm-wlm would add every plugin).
# iproute2 (ip, tc) and util-linux (unshare): the emulated hosts of
# scripts/multihost.sh (make check-multihost); pytest and mpi4py: the
# Python binding's tests; torch: examples/torch_moe (tests/torch_moe.sh) and
# the optimizer-state tests, which skip without it (about 80 s to install).
TEST="python3 python3-numpy python3-pytest python3-mpi4py python3-torch clang valgrind
  slurmctld slurmd slurm-client munge procps iproute2 util-linux"
EXTRA="python3-statsmodels python3-matplotlib"

wanted="$BUILD $TEST"
case "${1:-}" in
  --extra) wanted="$wanted $EXTRA" ;;
  "") ;;
  -h|--help) sed -n '2,11p' "$0"; exit 0 ;;
  *) echo "install-deps.sh: unknown option '$1' (try --help)" >&2; exit 2 ;;
esac

missing=""
for p in $wanted; do
  status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
  case "$status" in
    *"install ok installed"*) ;;
    *) missing="$missing $p" ;;
  esac
done

if [ -z "$missing" ]; then
  echo "install-deps.sh: all dependencies are installed"
  exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null 2>&1 || { echo "install-deps.sh: run as root (missing:$missing)" >&2; exit 1; }
  SUDO=sudo
fi
echo "install-deps.sh: installing$missing"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# shellcheck disable=SC2086
$SUDO apt-get install -y -qq --no-install-recommends $missing
