#!/usr/bin/env bash
# VictoriaMetrics (Debian's victoria-metrics) for the tests of tsdb: HTTP on
# 127.0.0.1:18428 (InfluxDB line protocol on /write and /api/v2/write,
# /api/v1/export to read back after /internal/force_flush) and OpenTSDB
# (telnet put and HTTP /api/put on one TCP port) on 127.0.0.1:14243. Data
# and log in .services/victoria-metrics/.
# Usage: scripts/services/victoria-metrics.sh {packages|up|stop|status|env}
# (see scripts/services/lib.sh for what each subcommand does).
# shellcheck disable=SC2034 # read by log() in lib.sh
SVC_NAME=victoria-metrics
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# Below the kernel's ephemeral range (32768-60999): a TIME_WAIT socket there can block the bind.
VM_HTTP_PORT="${MQTTPERSIST_VICTORIAMETRICS_PORT:-18428}"
VM_OPENTSDB_PORT="${MQTTPERSIST_VICTORIAMETRICS_OPENTSDB_PORT:-14243}"
VM_PACKAGES=(victoria-metrics)

vm_bin() { command -v victoria-metrics 2>/dev/null || { [ -x /usr/bin/victoria-metrics ] && echo /usr/bin/victoria-metrics; }; }

svc_packages() {
	if ! vm_bin >/dev/null; then
		pkg_missing "${VM_PACKAGES[@]}"
		if [ -z "$(pkg_missing "${VM_PACKAGES[@]}")" ]; then printf '%s\n' "${VM_PACKAGES[@]}"; fi
	fi
	return 0
}

svc_env() {
	env_line MQTTPERSIST_VICTORIAMETRICS_URL "http://127.0.0.1:$VM_HTTP_PORT"
	env_line MQTTPERSIST_VICTORIAMETRICS_OPENTSDB_ADDR "127.0.0.1:$VM_OPENTSDB_PORT"
}

# http_status PORT PATH: print the status code of GET PATH on 127.0.0.1:PORT
# (bash's /dev/tcp: no curl needed).
http_status() {
	timeout 3 bash -c '
		exec 3<>"/dev/tcp/127.0.0.1/$1" || exit 1
		printf "GET %s HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n" "$2" >&3
		read -r _ code _ <&3 && printf "%s\n" "$code"
	' _ "$1" "$2" 2>/dev/null
}

svc_status() {
	[ "$(http_status "$VM_HTTP_PORT" /health)" = 200 ] && port_open "$VM_OPENTSDB_PORT"
}

vm_layout() {
	HOME_DIR="$(svc_dir victoria-metrics)"
	LOGFILE="$HOME_DIR/victoria-metrics.log"
	PIDFILE="$HOME_DIR/victoria-metrics.pid"
}

# vm_alive: the server process started here is running.
# shellcheck disable=SC2317,SC2329 # called through WAIT_ALIVE
vm_alive() { pid_alive "$PIDFILE"; }

svc_up() {
	local missing bin port
	missing="$(svc_packages)"
	# shellcheck disable=SC2086
	[ -z "$missing" ] || apt_install $missing
	bin="$(vm_bin)" || die "victoria-metrics not found after installing ${VM_PACKAGES[*]}"
	if svc_status; then
		log "already running on 127.0.0.1:$VM_HTTP_PORT"
		return 0
	fi
	vm_layout
	if pid_alive "$PIDFILE"; then
		die "victoria-metrics (pid $(head -n1 "$PIDFILE")) runs but does not answer on 127.0.0.1:$VM_HTTP_PORT (log: $LOGFILE)"
	fi
	for port in "$VM_HTTP_PORT" "$VM_OPENTSDB_PORT"; do
		if port_open "$port"; then
			die "127.0.0.1:$port is in use by something else; stop it or set MQTTPERSIST_VICTORIAMETRICS_*PORT"
		fi
	done
	log "starting on 127.0.0.1:$VM_HTTP_PORT, OpenTSDB $VM_OPENTSDB_PORT (log: $LOGFILE)"
	# Test server: data kept 100 years (tests write old and future times),
	# OpenTSDB telnet timestamps kept to the millisecond, errors only.
	(
		close_fds
		cd "$HOME_DIR" || exit 1
		exec setsid "$bin" -storageDataPath="$HOME_DIR/data" \
			-httpListenAddr="127.0.0.1:$VM_HTTP_PORT" \
			-opentsdbListenAddr="127.0.0.1:$VM_OPENTSDB_PORT" \
			-opentsdbTrimTimestamp=1ms -retentionPeriod=100y \
			-search.latencyOffset=0s -memory.allowedPercent=10 \
			-loggerLevel=ERROR </dev/null >>"$LOGFILE" 2>&1
	) &
	echo $! >"$PIDFILE"
	# shellcheck disable=SC2034 # read by wait_until in lib.sh
	WAIT_ALIVE=vm_alive
	wait_until 60 "victoria-metrics on 127.0.0.1:$VM_HTTP_PORT" "$LOGFILE" svc_status
	log "ready on 127.0.0.1:$VM_HTTP_PORT"
}

svc_stop() {
	vm_layout
	stop_pid "$PIDFILE" victoria-metrics
}

svc_main "$@"
