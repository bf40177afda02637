# shellcheck shell=bash
# Shared helpers for scripts/services/*.sh. Source it; do not run it.
#
# Every per-server script (scripts/services/NAME.sh) is a standalone program
# taking one subcommand:
#
#   packages  print the Debian packages this server needs that are missing
#   up        install what is missing, start the server if it is not running,
#             create the test database and user; a no-op when all is done
#   stop      stop the server if this checkout started it
#   status    exit 0 when the server accepts connections with our credentials
#   env       print `export NAME=value` lines for the tests
#
# Data, logs and pid files live under <repo>/.services/NAME/.

set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
SERVICES_DIR="${MQTTPERSIST_SERVICES_DIR:-$REPO_ROOT/.services}"
export DEBIAN_FRONTEND=noninteractive

log() { printf '[%s] %s\n' "${SVC_NAME:-services}" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# svc_dir NAME: create and print .services/NAME.
svc_dir() {
	mkdir -p "$SERVICES_DIR/$1"
	printf '%s\n' "$SERVICES_DIR/$1"
}

# have_cmd CMD: true when CMD is on PATH.
have_cmd() { command -v "$1" >/dev/null 2>&1; }

# pkg_missing PKG...: print each package that dpkg does not list as installed.
pkg_missing() {
	local p
	for p in "$@"; do
		if ! dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null | grep -qx installed; then
			printf '%s\n' "$p"
		fi
	done
}

# as_root CMD...: run CMD as root (directly, or through sudo).
as_root() {
	if [ "$(id -u)" -eq 0 ]; then
		"$@"
	elif have_cmd sudo; then
		sudo -n "$@" || die "need root to run: $* (run as root or allow sudo)"
	else
		die "need root to run: $*"
	fi
}

# apt_install PKG...: install Debian packages without starting their services.
# Runs `apt-get update` once per services run (MQTTPERSIST_APT_UPDATED marks it).
apt_install() {
	[ "$#" -gt 0 ] || return 0
	have_cmd apt-get || die "apt-get not found; install these packages by hand: $*"
	local policy=/usr/sbin/policy-rc.d created_policy=0
	# Packages must not try to start their daemons (no init system here, and we
	# run our own instances): policy-rc.d exit 101 = "action forbidden".
	if [ ! -e "$policy" ]; then
		as_root sh -c "printf '#!/bin/sh\nexit 101\n' > $policy && chmod 755 $policy"
		created_policy=1
	fi
	local rc=0 aptlog
	mkdir -p "$SERVICES_DIR"
	aptlog="$SERVICES_DIR/apt.log"
	log "installing $* (apt-get output in $aptlog)"
	(
		set -e
		aptopts=(-o DPkg::Lock::Timeout=600 -q)
		if [ "${MQTTPERSIST_APT_UPDATED:-}" != 1 ]; then
			as_root apt-get "${aptopts[@]}" update
		fi
		as_root env DEBIAN_FRONTEND=noninteractive apt-get "${aptopts[@]}" install -y \
			--no-install-recommends -o Dpkg::Options::=--force-confdef \
			-o Dpkg::Options::=--force-confold "$@"
	) >"$aptlog" 2>&1 || rc=$?
	if [ "$rc" -ne 0 ]; then log_tail "$aptlog"; fi
	if [ "$created_policy" = 1 ]; then
		as_root rm -f "$policy"
	fi
	[ "$rc" -eq 0 ] || die "apt-get install $* failed (exit $rc)"
	export MQTTPERSIST_APT_UPDATED=1
}

# port_open PORT: true when something accepts TCP connections on 127.0.0.1:PORT.
port_open() {
	timeout 2 bash -c ": >/dev/tcp/127.0.0.1/$1" 2>/dev/null
}

# proc_alive PID: true when PID is a running process. A zombie (killed, not
# yet reaped by init) does not count: kill -0 alone would say it lives.
proc_alive() {
	local state
	[[ "${1:-}" =~ ^[0-9]+$ ]] || return 1
	kill -0 "$1" 2>/dev/null || return 1
	[ -r "/proc/$1/stat" ] || return 0
	state="$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f1)" || return 1
	[ -n "$state" ] && [ "$state" != Z ] && [ "$state" != X ]
}

# pid_alive PIDFILE: true when the first line of PIDFILE names a running process.
pid_alive() {
	[ -s "$1" ] || return 1
	proc_alive "$(head -n1 "$1" 2>/dev/null)"
}

# log_tail FILE: print the last lines of a log for an error message.
log_tail() {
	if [ -f "$1" ]; then
		echo "----- last lines of $1 -----" >&2
		tail -n "${2:-40}" "$1" >&2
		echo "-----" >&2
	else
		echo "(no log at $1)" >&2
	fi
}

# wait_until SECONDS WHAT LOGFILE CMD...: poll CMD every 0.5s until it succeeds;
# after SECONDS, fail with the log tail. When WAIT_ALIVE names a command that
# fails (e.g. "the server process is gone"), the wait ends early with the tail.
wait_until() {
	local secs="$1" what="$2" logfile="$3"
	shift 3
	local deadline=$((SECONDS + secs))
	while ! "$@" >/dev/null 2>&1; do
		if [ -n "${WAIT_ALIVE:-}" ] && ! $WAIT_ALIVE; then
			log_tail "$logfile"
			die "$what: the server process exited"
		fi
		if [ "$SECONDS" -ge "$deadline" ]; then
			log_tail "$logfile"
			die "$what: not ready after ${secs}s"
		fi
		sleep 0.5
	done
}

# stop_pid PIDFILE WHAT: SIGTERM the process, wait up to 60s, then SIGKILL.
stop_pid() {
	local pidfile="$1" what="$2" pid
	pid_alive "$pidfile" || { rm -f "$pidfile"; log "$what is not running"; return 0; }
	pid="$(head -n1 "$pidfile")"
	log "stopping $what (pid $pid)"
	kill -TERM "$pid" 2>/dev/null || true
	for _ in $(seq 1 120); do
		proc_alive "$pid" || { rm -f "$pidfile"; return 0; }
		sleep 0.5
	done
	log "$what did not stop in 60s; killing it"
	kill -KILL "$pid" 2>/dev/null || true
	rm -f "$pidfile"
}

# close_fds: close every descriptor above 2 in the current (sub)shell. Call it
# in the subshell that starts a daemon, so the daemon does not hold the lock,
# or a pipe of whoever ran us (make, CI), open for as long as it lives.
close_fds() {
	local fd
	for fd in /proc/self/fd/*; do
		fd="${fd##*/}"
		if [ "$fd" -gt 2 ] 2>/dev/null; then eval "exec $fd>&-" 2>/dev/null || true; fi
	done
}

# sock_path DIR NAME: a unix socket path inside DIR, or under /tmp when DIR is
# too long for a socket address (108 bytes).
sock_path() {
	local p="$1/$2"
	if [ "${#p}" -gt 100 ]; then
		p="/tmp/mqttpersist-$(printf '%s' "$1" | cksum | cut -d' ' -f1)-$2"
	fi
	printf '%s\n' "$p"
}

# env_line NAME VALUE: print `export NAME='VALUE'`, quoted for any shell
# (URLs hold ? and &).
env_line() {
	local q="'\\''"
	printf "export %s='%s'\n" "$1" "${2//\'/$q}"
}

# svc_main "$@": dispatch a per-server script's subcommand to its svc_* functions.
svc_main() {
	local cmd="${1:-up}"
	case "$cmd" in
	packages | up | stop | status | env) "svc_$cmd" ;;
	*) die "usage: $0 {packages|up|stop|status|env}" ;;
	esac
}
