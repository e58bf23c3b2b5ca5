#!/bin/bash
# cluster.sh: a private one-node Slurm cluster on this machine, for tests.
#
#   scripts/slurm/cluster.sh start    # (re)start munged + slurmctld + slurmd, wait for idle
#   scripts/slurm/cluster.sh stop     # stop the daemons started by `start`, remove the state
#   scripts/slurm/cluster.sh status   # exit 0 when our cluster is up and the node answers
#   scripts/slurm/cluster.sh env      # print `export SLURM_CONF=...` for client commands
#   scripts/slurm/cluster.sh logs     # print the daemons' logs (diagnostics)
#
# Nothing is written to /etc except /etc/munge/munge.key, and only when the
# munge package left none behind. Everything else (slurm.conf, cgroup.conf,
# state, spool, logs, pid files, the munge socket) lives in $MOEPLACE_SLURM_DIR
# (default /tmp/moeplace-slurm), and client commands find the cluster through
# SLURM_CONF. Daemons are tracked by their pid files only: `stop` ends exactly
# the processes `start` started, never a system Slurm or munge.
#
# Environment:
#   MOEPLACE_SLURM_DIR        state directory          [/tmp/moeplace-slurm]
#   MOEPLACE_SLURMCTLD_PORT   slurmctld port           [6817]
#   MOEPLACE_SLURMD_PORT      slurmd port              [6818]
#   MOEPLACE_SLURM_TIMEOUT    seconds to wait for idle [60]
#   MOEPLACE_SLURM_CPUS       CPUs the node declares [nproc, at least 2]
#
# Requires root (SlurmUser=root, the munge daemon runs as user munge) and the
# Debian packages slurmctld, slurmd, slurm-client and munge.
set -u

DIR=${MOEPLACE_SLURM_DIR:-/tmp/moeplace-slurm}
CTLD_PORT=${MOEPLACE_SLURMCTLD_PORT:-6817}
SLURMD_PORT=${MOEPLACE_SLURMD_PORT:-6818}
TIMEOUT=${MOEPLACE_SLURM_TIMEOUT:-60}
CONF=$DIR/etc/slurm.conf
MUNGE_SOCKET=$DIR/munge/munge.socket
NODE=$(hostname -s)

say() { printf 'cluster.sh: %s\n' "$*" >&2; }
die() { say "error: $*"; exit 1; }

# alive PID: the process exists and is not a zombie (a dead daemon stays a
# zombie until its parent, often init, reaps it; containers' init may be slow).
alive() {
	local stat
	stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
	stat=${stat##*) }
	[ "${stat%% *}" != Z ]
}

# descendants PID: the pids below PID in the process tree, deepest first.
descendants() {
	local f stat pid ppid out=""
	local -A kids=()
	for f in /proc/[0-9]*/stat; do
		stat=$(cat "$f" 2>/dev/null) || continue
		pid=${stat%% *}
		stat=${stat##*) }
		ppid=${stat#* }
		ppid=${ppid%% *}
		kids[$ppid]+="$pid "
	done
	_desc() {
		local c
		for c in ${kids[$1]:-}; do
			_desc "$c"
			out+="$c "
		done
	}
	_desc "$1"
	printf '%s\n' "$out"
}

# pid_of NAME: the pid recorded for one of our daemons, if that process still
# runs the same program (guards against a recycled pid).
pid_of() {
	local name=$1 file pid comm
	file=$DIR/run/$name.pid
	[ -s "$file" ] || return 1
	read -r pid <"$file" || return 1
	case $pid in '' | *[!0-9]*) return 1 ;; esac
	comm=$(cat "/proc/$pid/comm" 2>/dev/null) || return 1
	[ "$comm" = "$name" ] && alive "$pid" || return 1
	printf '%s\n' "$pid"
}

# stop_daemons NAME...: SIGTERM to each of ours that runs, then wait for all
# of them (in parallel: slurmctld and munged each take ~2 s to wind down).
stop_daemons() {
	local name pid i pids=() names=() running
	for name in "$@"; do
		pid=$(pid_of "$name") || continue
		kill -TERM "$pid" 2>/dev/null
		pids+=("$pid")
		names+=("$name")
	done
	[ ${#pids[@]} -gt 0 ] || return 0
	for ((i = 0; i < 100; i++)); do
		running=0
		for pid in "${pids[@]}"; do alive "$pid" && running=1; done
		[ $running = 0 ] && break
		sleep 0.1
	done
	for i in "${!pids[@]}"; do
		if alive "${pids[$i]}"; then
			say "${names[$i]} (pid ${pids[$i]}) ignored SIGTERM for 10 s, sending SIGKILL"
			kill -KILL "${pids[$i]}" 2>/dev/null
		else
			say "stopped ${names[$i]} (pid ${pids[$i]})"
		fi
	done
}

print_logs() {
	local f
	for f in "$DIR"/log/*.log "$DIR"/munge/munged.log; do
		[ -f "$f" ] || continue
		printf '===== %s (last 40 lines) =====\n' "$f" >&2
		tail -n 40 "$f" >&2
	done
}

do_stop() {
	local p i
	# Jobs first, so that no rank outlives the cluster: every job in this
	# private cluster is ours. KillWait=5: SIGTERM, then SIGKILL 5 s later.
	if pid_of slurmctld >/dev/null; then
		SLURM_CONF=$CONF scancel --quiet --user="$(id -un)" 2>/dev/null
		for ((i = 0; i < 80; i++)); do
			[ -z "$(SLURM_CONF=$CONF squeue -h -o %A 2>/dev/null)" ] && break
			sleep 0.1
		done
	fi
	# Reverse order of start: the compute node first (it reports to the
	# controller while it shuts down), then controller and authentication.
	stop_daemons slurmd
	stop_daemons slurmctld munged
	# A step daemon of a killed slurmd can outlive it, with the job's
	# processes below it. Ours carry our SLURM_CONF in their environment
	# (do_start exports it). The whole tree goes, leaves first.
	# (/proc directly: minimal systems lack procps' pgrep.)
	for p in /proc/[0-9]*; do
		p=${p#/proc/}
		[ "$(cat "/proc/$p/comm" 2>/dev/null)" = slurmstepd ] && alive "$p" || continue
		if tr '\0' '\n' 2>/dev/null <"/proc/$p/environ" | grep -qx "SLURM_CONF=$CONF"; then
			local tree
			tree=$(descendants "$p")
			# shellcheck disable=SC2086 # a list of pids
			kill -KILL $tree "$p" 2>/dev/null
			say "killed leftover slurmstepd $p and its processes ${tree:-(none)}"
		fi
	done
	# Only what `start` creates: MOEPLACE_SLURM_DIR may be a directory that
	# holds other things.
	rm -rf "${DIR:?}/etc" "$DIR/run" "$DIR/log" "$DIR/spool" "$DIR/state" "$DIR/munge" "$DIR/tmp"
	rmdir "$DIR" 2>/dev/null
	return 0
}

ensure_munge_key() {
	local key=/etc/munge/munge.key
	[ -s "$key" ] && return 0
	say "creating $key (none was installed)"
	install -d -o munge -g munge -m 0700 /etc/munge || return 1
	if command -v mungekey >/dev/null; then
		mungekey --create --keyfile="$key" || return 1
	else
		dd if=/dev/urandom of="$key" bs=1 count=1024 status=none || return 1
	fi
	chown munge:munge "$key" && chmod 0400 "$key"
}

write_config() {
	local cpus mem_kb mem_mb
	# At least 2 CPUs, so that the 2-rank demo job fits on a 1-CPU machine
	# (oversubscribed, as `mpirun --oversubscribe` would be); config_overrides
	# below makes slurmd accept a count above the hardware's.
	cpus=${MOEPLACE_SLURM_CPUS:-$(nproc)}
	[ "$cpus" -ge 2 ] 2>/dev/null || cpus=2
	mem_kb=$(awk '/^MemTotal:/ { print $2 }' /proc/meminfo)
	# slurmd drains a node whose real memory is below the configured one;
	# declare 90% of it so that rounding and kernel reservations never do.
	mem_mb=$((mem_kb * 9 / 10240))
	cat >"$CONF" <<CONF
# Generated by moeplace scripts/slurm/cluster.sh: one-node test cluster.
ClusterName=moeplace
SlurmctldHost=$NODE(127.0.0.1)
SlurmctldPort=$CTLD_PORT
SlurmdPort=$SLURMD_PORT
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$MUNGE_SOCKET
# No cgroups: works in containers and on hosts without a delegated cgroup tree.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
MpiDefault=none
SwitchType=switch/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
# Completed jobs are recorded here (state, exit code): the test reads it.
JobCompType=jobcomp/filetxt
JobCompLoc=$DIR/log/jobcomp.log
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool
# Job-private temporary files, e.g. the PMIx plugin's spmix_appdir_<uid>_<step>:
# under /tmp, one left by a killed step breaks every later srun --mpi=pmix
# step with the same id, and job ids restart at 1 with each clean start.
TmpFS=$DIR/tmp
SlurmctldPidFile=$DIR/run/slurmctld.pid
SlurmdPidFile=$DIR/run/slurmd.pid
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdLogFile=$DIR/log/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
PlugStackConfig=$DIR/etc/plugstack.conf
# No mail from a test cluster (the default /usr/bin/mail is rarely installed).
MailProg=/bin/true
ReturnToService=2
SlurmdParameters=config_overrides
SlurmctldTimeout=30
SlurmdTimeout=30
InactiveLimit=0
KillWait=5
MinJobAge=600
SchedulerType=sched/backfill
# Start batch jobs at once instead of batching submissions for up to 3 s.
SchedulerParameters=batch_sched_delay=0
# A job whose dependency failed ends at once instead of pending forever.
DependencyParameters=kill_invalid_depend
NodeName=$NODE NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem_mb State=UNKNOWN
PartitionName=debug Nodes=$NODE Default=YES MaxTime=INFINITE State=UP
CONF
	# slurmd 22.05 loads a cgroup plugin even when no other plugin uses
	# cgroups, and its default (autodetect) fails without a cgroup mount or,
	# on cgroup v2, without systemd/dbus or a writable hierarchy (containers).
	# cgroup/v1's init touches no file system, and with proctrack/linuxproc
	# and task/none nothing asks it to do more.
	cat >"$DIR/etc/cgroup.conf" <<CONF
# Generated by moeplace scripts/slurm/cluster.sh: no cgroups are used.
CgroupPlugin=cgroup/v1
IgnoreSystemd=yes
ConstrainCores=no
ConstrainRAMSpace=no
ConstrainDevices=no
CONF
	: >"$DIR/etc/plugstack.conf"
}

wait_idle() {
	local i state
	for ((i = 0; i < TIMEOUT * 2; i++)); do
		state=$(SLURM_CONF=$CONF sinfo -h -N -n "$NODE" -o '%T' 2>/dev/null)
		case $state in
		idle) say "node $NODE idle after $((i / 2)) s"; return 0 ;;
		*drain* | *down* | *fail*)
			# A node that registered down (e.g. after an unclean stop) is resumed.
			SLURM_CONF=$CONF scontrol update NodeName="$NODE" State=RESUME 2>/dev/null ;;
		esac
		sleep 0.5
	done
	say "node $NODE not idle after $TIMEOUT s (state: '${state:-no answer}')"
	SLURM_CONF=$CONF scontrol show node "$NODE" >&2 2>&1
	return 1
}

do_start() {
	[ "$(id -u)" = 0 ] || die "must run as root (SlurmUser=root)"
	local prog
	for prog in munged slurmctld slurmd sinfo scontrol; do
		command -v "$prog" >/dev/null ||
			die "$prog not found: apt-get install slurmctld slurmd slurm-client munge"
	done
	id munge >/dev/null 2>&1 || die "user munge missing: apt-get install munge"

	# Idempotent: a previous instance of ours (even a half-started one) goes first.
	do_stop
	trap 'say "start failed; daemon logs follow"; print_logs; do_stop' EXIT

	install -d -m 0755 "$DIR" "$DIR/etc" "$DIR/run" "$DIR/log" "$DIR/spool" || exit 1
	install -d -m 1777 "$DIR/tmp" || exit 1
	install -d -m 0700 "$DIR/state" || exit 1
	# munged insists on directories that only its own user can write.
	install -d -o munge -g munge -m 0755 "$DIR/munge" || exit 1
	ensure_munge_key || die "cannot create /etc/munge/munge.key"
	write_config || exit 1
	# The daemons and their step daemons carry this (see do_stop).
	export SLURM_CONF=$CONF

	runuser -u munge -- munged --socket="$MUNGE_SOCKET" \
		--pid-file="$DIR/munge/munged.pid" --log-file="$DIR/munge/munged.log" \
		--seed-file="$DIR/munge/munged.seed" || die "munged failed to start"
	ln -sf "$DIR/munge/munged.pid" "$DIR/run/munged.pid"
	pid_of munged >/dev/null || die "munged exited"
	say "munged up (pid $(pid_of munged), socket $MUNGE_SOCKET)"

	# -c: clean start, no jobs or node states recovered from an older run.
	slurmctld -c -f "$CONF" || die "slurmctld failed to start"
	slurmd -f "$CONF" -N "$NODE" || die "slurmd failed to start"
	wait_idle || exit 1
	say "slurmctld pid $(pid_of slurmctld), slurmd pid $(pid_of slurmd)"
	trap - EXIT
	echo "export SLURM_CONF=$CONF"
}

do_status() {
	pid_of munged >/dev/null && pid_of slurmctld >/dev/null && pid_of slurmd >/dev/null &&
		SLURM_CONF=$CONF sinfo -h -N -n "$NODE" -o '%N %T %c CPUs' 
}

case ${1:-} in
start) do_start ;;
stop) do_stop ;;
status) do_status ;;
env) echo "export SLURM_CONF=$CONF" ;;
logs) print_logs ;;
*) echo "usage: $0 start|stop|status|env|logs" >&2; exit 2 ;;
esac
