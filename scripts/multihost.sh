#!/bin/bash
# Emulates N hosts on this machine with network namespaces, for MPI runs that
# really span several "hosts" (docs/MULTIHOST.md). Needs root (CAP_NET_ADMIN).
#
#   scripts/multihost.sh up [N]                 create hosts mph1..mphN (default 2)
#   scripts/multihost.sh run [N] -- MPIRUN_ARGS  up, mpirun across them, down
#   scripts/multihost.sh mpirun [N] -- ARGS      mpirun across hosts already up
#   scripts/multihost.sh down [N]               remove everything `up` created
#   scripts/multihost.sh exec K -- CMD...        run CMD in host K's namespace
#
# Layout: namespace mphbr holds a bridge mphbr0; host K is namespace mphK with
# a veth mphK-eth0 (address 10.213.0.K/24, loopback up) whose peer mphK-br
# is a port of the bridge. Every process of host K also runs in a UTS
# namespace of its own with host name mphK, so that Open MPI's per-host files
# (session directory, shared-memory segments, named after the host) do not
# collide. The hostfile gives each host MH_SLOTS slots (default 2): -np 4
# fills 2 hosts 2 by 2; add --map-by node for one rank per host. Nothing is
# created in the root namespace and no address outside 10.213.0.0/24 is
# used: all MPI traffic stays between these namespaces. Each host link gets a qdisc that makes the inter-host network
# slower than shared memory within a host: netem (rate 5gbit delay 50us)
# where the kernel has sch_netem, else tbf (rate 5gbit, no added delay;
# announced on stderr), else none (announced). MH_RATE / MH_DELAY /
# MH_NO_SHAPING=1 change that.
#
# `run` executes mpirun inside mph1 (the launch node, like a job's first
# node on a cluster) with a hostfile of the hosts' addresses, an rsh agent
# (written next to the hostfile) that maps an address to its namespace, TCP
# between hosts (btl self,vader,tcp; oob and btl restricted to 10.213.0.0/24),
# and tears everything down on every exit path. It exits with mpirun's status.
# More ranks than slots are allowed (rmaps_base_oversubscribe), and
# mpi_yield_when_idle is on: the hosts share this machine's cores, so a rank
# waiting in MPI gives the CPU to one that computes (10x faster steps here).
# MH_BTL overrides the btl list. MH_STATE (default /run/moeplace-multihost)
# holds the hostfile and agent.
#
# Exit 77 when the machine cannot do this (not root, no `ip`, namespaces not
# permitted): tests treat that as "skipped".
set -u

PREFIX=mph
BRNS=${PREFIX}br
BR=${PREFIX}br0
NET=10.213.0
STATE=${MH_STATE:-/run/moeplace-multihost}
RATE=${MH_RATE:-5gbit}
DELAY=${MH_DELAY:-50us}
SLOTS=${MH_SLOTS:-2} # per host in the hostfile: -np 2N fills N hosts 2 by 2

die() { echo "multihost.sh: $*" >&2; exit 1; }
skip() { echo "multihost.sh: cannot emulate hosts here: $*" >&2; exit 77; }

usage() { sed -n '2,/^set -u/p' "$0" | grep '^#' | sed 's/^# \{0,1\}//'; }

check_n() {
  case "$1" in
    ''|*[!0-9]*) die "host count '$1' is not a number" ;;
  esac
  if [ "$1" -lt 1 ] || [ "$1" -gt 64 ]; then die "host count $1 out of range 1..64"; fi
}

preflight() {
  [ "$(id -u)" -eq 0 ] || skip "needs root (CAP_NET_ADMIN to create network namespaces)"
  command -v ip >/dev/null || skip "no 'ip' command (install iproute2)"
  command -v unshare >/dev/null || skip "no 'unshare' command (install util-linux)"
  # A throw-away namespace tells whether namespaces are permitted at all.
  local probe=${PREFIX}probe$$
  if ! ip netns add "$probe" 2>/dev/null; then
    skip "'ip netns add' failed (no CAP_NET_ADMIN/CAP_SYS_ADMIN, or /run/netns not writable)"
  fi
  ip netns del "$probe" 2>/dev/null
}

# The qdisc that shapes one host link ("" = none), chosen once per `up`.
SHAPING=""
pick_shaping() {
  local ns=$1 dev=$2
  if [ "${MH_NO_SHAPING:-0}" = 1 ]; then
    echo "multihost.sh: no traffic shaping (MH_NO_SHAPING=1)" >&2
    return
  fi
  if ! command -v tc >/dev/null; then
    echo "multihost.sh: WARNING: no 'tc' (iproute2): host links are NOT slowed down" >&2
    return
  fi
  if ip netns exec "$ns" tc qdisc add dev "$dev" root netem rate "$RATE" delay "$DELAY" 2>/dev/null; then
    ip netns exec "$ns" tc qdisc del dev "$dev" root
    SHAPING="netem rate $RATE delay $DELAY"
  elif ip netns exec "$ns" tc qdisc add dev "$dev" root tbf rate "$RATE" burst 256kb latency 5ms 2>/dev/null; then
    ip netns exec "$ns" tc qdisc del dev "$dev" root
    SHAPING="tbf rate $RATE burst 256kb latency 5ms"
    echo "multihost.sh: WARNING: no netem in this kernel (sch_netem): host links shaped with tbf (rate $RATE, no added delay)" >&2
  else
    echo "multihost.sh: WARNING: neither netem nor tbf qdisc available: host links are NOT slowed down" >&2
  fi
}

up() {
  local n=$1 k
  preflight
  down "$n" quiet
  mkdir -p "$STATE"
  ip netns add "$BRNS" || die "ip netns add $BRNS failed"
  ip -n "$BRNS" link set lo up
  ip -n "$BRNS" link add "$BR" type bridge || die "cannot create bridge $BR"
  ip -n "$BRNS" link set "$BR" up
  : >"$STATE/hostfile"
  for k in $(seq 1 "$n"); do
    local ns=$PREFIX$k
    ip netns add "$ns" || die "ip netns add $ns failed"
    ip -n "$ns" link set lo up
    # Create the pair inside the host namespace, then move the peer to the bridge.
    ip -n "$ns" link add "$ns-eth0" type veth peer name "$ns-br" || die "cannot create veth for $ns"
    ip -n "$ns" link set "$ns-br" netns "$BRNS"
    ip -n "$BRNS" link set "$ns-br" master "$BR" up
    ip -n "$ns" addr add "$NET.$k/24" dev "$ns-eth0"
    ip -n "$ns" link set "$ns-eth0" up
    [ "$k" = 1 ] && pick_shaping "$ns" "$ns-eth0"
    if [ -n "$SHAPING" ]; then
      # Both directions: the host's egress and the bridge port's egress to it.
      # shellcheck disable=SC2086
      ip netns exec "$ns" tc qdisc add dev "$ns-eth0" root $SHAPING
      # shellcheck disable=SC2086
      ip netns exec "$BRNS" tc qdisc add dev "$ns-br" root $SHAPING
    fi
    echo "$NET.$k slots=$SLOTS" >>"$STATE/hostfile"
  done
  # The rsh agent: "agent [-l user] HOST CMD..." runs CMD in HOST's namespace
  # through a shell, as ssh would.
  cat >"$STATE/agent" <<EOF
#!/bin/sh
while [ \$# -gt 0 ]; do
  case "\$1" in
    -l) shift 2 ;;
    -*) shift ;;
    *) break ;;
  esac
done
host=\$1; shift
case "\$host" in
  $NET.*) ns=$PREFIX\${host##*.} ;;
  ${PREFIX}[0-9]*) ns=\$host ;;
  *) echo "multihost agent: unknown host '\$host'" >&2; exit 255 ;;
esac
# Its own UTS namespace too: a host's name is its namespace's, so that
# Open MPI's per-host files (session directory, shared-memory segments
# named after the host) do not collide between hosts.
exec ip netns exec "\$ns" unshare --uts /bin/sh -c "hostname \$ns && \$*"
EOF
  chmod +x "$STATE/agent"
  # Wait until host 1 reaches every other host (the bridge learns at once,
  # but a port may take a moment to forward).
  for k in $(seq 2 "$n"); do
    for _ in $(seq 1 50); do
      ip netns exec "${PREFIX}1" bash -c "exec 3<>/dev/tcp/$NET.$k/1" 2>/dev/null && break
      # Connection refused proves reachability too.
      ip netns exec "${PREFIX}1" bash -c "exec 3<>/dev/tcp/$NET.$k/1" 2>&1 | grep -q refused && break
      sleep 0.1
    done
  done
  echo "multihost.sh: $n hosts up: ${PREFIX}1..$PREFIX$n = $NET.1..$NET.$n on bridge $BR (namespace $BRNS); links: ${SHAPING:-not shaped}" >&2
}

down() {
  local n=$1 quiet=${2:-} k
  # Remove every namespace of ours, whatever N was used at `up`.
  for ns in $(ip netns list 2>/dev/null | awk '{print $1}' | grep -E "^$PREFIX([0-9]+|br)$"); do
    # Processes left in a host namespace (orted, ranks of a killed job):
    # end them by pid; they are ours (they run in our namespace).
    for pid in $(ip netns pids "$ns" 2>/dev/null); do kill -9 "$pid" 2>/dev/null; done
    ip netns del "$ns" 2>/dev/null
  done
  rm -rf "$STATE"
  [ -n "$quiet" ] || echo "multihost.sh: hosts removed" >&2
}

# MCA settings for a run across the hosts.
mpirun_args() {
  local n=$1
  MPIRUN_ARGS=(--hostfile "$STATE/hostfile"
    --mca plm_rsh_agent "$STATE/agent"
    --mca btl "${MH_BTL:-self,vader,tcp}"
    --mca btl_tcp_if_include "$NET.0/24"
    --mca oob_tcp_if_include "$NET.0/24"
    --mca orte_keep_fqdn_hostnames 1
    --mca mpi_yield_when_idle 1
    --mca rmaps_base_oversubscribe 1)
}

# mpirun inside host 1 across the hosts that are up.
launch() {
  local n=$1
  shift
  [ -x "$STATE/agent" ] || die "no hosts are up (run: $0 up $n)"
  mpirun_args "$n"
  local mpirun=${MPIRUN:-mpirun}
  # Host 1 gets its own host name like the others (see the agent); PMIx's
  # shared-memory data store is replaced by its hash store (the dstore
  # reported errors with several hosts on one machine).
  # shellcheck disable=SC2016 # "$0" and "$@" are the inner sh's
  ip netns exec "${PREFIX}1" unshare --uts env PMIX_MCA_gds=hash \
    OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 \
    sh -c 'hostname "$0" && exec "$@"' "${PREFIX}1" "$mpirun" "${MPIRUN_ARGS[@]}" "$@"
}

run() {
  local n=$1
  shift
  up "$n" || exit $?
  trap 'down "$n"' EXIT
  trap 'exit 130' INT TERM HUP
  launch "$n" "$@"
}

cmd=${1:-}
[ -n "$cmd" ] || { usage; exit 2; }
shift
n=2
if [ $# -gt 0 ] && [ "$1" != -- ]; then n=$1; shift; fi
[ $# -gt 0 ] && [ "$1" = -- ] && shift
case "$cmd" in
  up) check_n "$n"; up "$n" ;;
  down) down "$n" ;;
  run) check_n "$n"; run "$n" "$@" ;;
  mpirun) launch "$n" "$@" ;;
  exec) ip netns exec "$PREFIX$n" "$@" ;;
  args) mpirun_args "$n"; printf '%s\n' "${MPIRUN_ARGS[@]}" ;;
  -h|--help|help) usage ;;
  *) usage >&2; exit 2 ;;
esac
