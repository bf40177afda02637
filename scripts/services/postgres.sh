#!/usr/bin/env bash
# PostgreSQL 15 for the tests: 127.0.0.1:15432, data and log in .services/postgres/.
# Usage: scripts/services/postgres.sh {packages|up|stop|status|env}
# (see scripts/services/lib.sh for what each subcommand does).
# shellcheck disable=SC2034 # read by log() in lib.sh
SVC_NAME=postgres
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# Below the kernel's ephemeral range (32768-60999): a TIME_WAIT socket there can block the bind.
PG_PORT="${MQTTPERSIST_POSTGRES_PORT:-15432}"
PG_USER=mqtt
PG_PASS=mqtt
PG_DB=mqtt
PG_SUPER=postgres
PG_SUPER_PASS=postgres
PG_PACKAGES=(postgresql postgresql-client)
PG_OS_USER=postgres # PostgreSQL refuses to run as root

# pg_bindir: print the directory holding initdb, pg_ctl, postgres, psql.
pg_bindir() {
	local d
	# shellcheck disable=SC2012 # version directories: plain names
	for d in /usr/lib/postgresql/15/bin $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
		if [ -x "$d/postgres" ] && [ -x "$d/initdb" ] && [ -x "$d/pg_ctl" ] && [ -x "$d/psql" ]; then
			printf '%s\n' "$d"
			return 0
		fi
	done
	if have_cmd pg_ctl; then
		d="$(dirname "$(readlink -f "$(command -v pg_ctl)")")"
		if [ -x "$d/postgres" ] && [ -x "$d/initdb" ] && [ -x "$d/psql" ]; then
			printf '%s\n' "$d"
			return 0
		fi
	fi
	return 1
}

svc_packages() {
	if ! pg_bindir >/dev/null; then
		pkg_missing "${PG_PACKAGES[@]}"
		# The packages may be installed while a binary is gone: reinstall then.
		if [ -z "$(pkg_missing "${PG_PACKAGES[@]}")" ]; then printf '%s\n' "${PG_PACKAGES[@]}"; fi
	fi
	return 0
}

svc_env() {
	local bin
	env_line MQTTPERSIST_POSTGRES_URL "postgres://$PG_USER:$PG_PASS@127.0.0.1:$PG_PORT/$PG_DB?sslmode=disable"
	# For tests that run a server of their own (testenv.StartPostgres).
	if bin="$(pg_bindir)"; then env_line MQTTPERSIST_POSTGRES_BIN "$bin"; fi
}

# app_psql ARGS...: psql as the test user over TCP.
app_psql() {
	PGPASSWORD="$PG_PASS" PGCONNECT_TIMEOUT=3 "$BIN/psql" -X -h 127.0.0.1 -p "$PG_PORT" -U "$PG_USER" -d "$PG_DB" "$@"
}

svc_status() {
	BIN="$(pg_bindir)" || return 1
	[ "$(app_psql -Atqc 'select 1' 2>/dev/null)" = 1 ]
}

# as_pg CMD...: run CMD as the OS user that owns the cluster.
as_pg() {
	if [ "$(id -u)" -eq 0 ]; then
		(cd / && runuser -u "$PG_OS_USER" -- "$@")
	else
		"$@"
	fi
}

# pg_layout: set PGHOME, DATA, LOGFILE; as root, make them the postgres user's.
pg_layout() {
	local home
	home="$(svc_dir postgres)"
	PGHOME="$home"
	if [ "$(id -u)" -eq 0 ]; then
		if ! id -u "$PG_OS_USER" >/dev/null 2>&1; then
			log "creating OS user $PG_OS_USER"
			useradd --system --user-group --home-dir /var/lib/postgresql --shell /bin/sh "$PG_OS_USER"
		fi
		chown "$PG_OS_USER:" "$home"
		chmod 700 "$home"
		if ! runuser -u "$PG_OS_USER" -- test -w "$home"; then
			# The checkout sits where the postgres user cannot reach (e.g. under
			# /root): keep the cluster outside and link it from .services/postgres.
			PGHOME="/var/tmp/mqttpersist-$(printf '%s' "$home" | cksum | cut -d' ' -f1)/postgres"
			log "$PG_OS_USER cannot reach $home; keeping the cluster in $PGHOME"
			mkdir -p "$PGHOME"
			chown "$PG_OS_USER:" "$PGHOME" "$(dirname "$PGHOME")"
			chmod 700 "$PGHOME"
			ln -sfn "$PGHOME/data" "$home/data"
			ln -sfn "$PGHOME/postgres.log" "$home/postgres.log"
		fi
	fi
	DATA="$PGHOME/data"
	LOGFILE="$PGHOME/postgres.log"
}

pg_init() {
	[ -s "$DATA/PG_VERSION" ] && return 0
	log "initdb $DATA"
	rm -rf "$DATA"
	local pwfile="$PGHOME/.superuser-pw"
	printf '%s\n' "$PG_SUPER_PASS" >"$pwfile"
	[ "$(id -u)" -eq 0 ] && chown "$PG_OS_USER:" "$pwfile"
	if ! as_pg "$BIN/initdb" -D "$DATA" -U "$PG_SUPER" --pwfile="$pwfile" \
		--auth-local=trust --auth-host=scram-sha-256 --encoding=UTF8 --locale=C \
		>"$PGHOME/initdb.log" 2>&1; then
		rm -f "$pwfile"
		log_tail "$PGHOME/initdb.log"
		die "initdb failed"
	fi
	rm -f "$pwfile"
	# Test server: TCP on loopback only (port and address come from pg_ctl -o),
	# no unix socket, no fsync (tests never survive a power cut anyway).
	cat >>"$DATA/postgresql.conf" <<CONF

# --- mqttpersist test server (scripts/services/postgres.sh) ---
unix_socket_directories = ''
max_connections = 300
fsync = off
synchronous_commit = off
full_page_writes = off
timezone = 'UTC'
CONF
}

svc_up() {
	local missing
	missing="$(svc_packages)"
	# shellcheck disable=SC2086
	[ -z "$missing" ] || apt_install $missing
	BIN="$(pg_bindir)" || die "PostgreSQL binaries not found after installing ${PG_PACKAGES[*]}"
	if svc_status; then
		log "already running on 127.0.0.1:$PG_PORT"
		return 0
	fi
	pg_layout
	pg_init
	# A server killed with SIGKILL leaves postmaster.pid naming a process that
	# is gone (or a zombie, which would still block a new postmaster).
	if [ -e "$DATA/postmaster.pid" ] && ! pid_alive "$DATA/postmaster.pid"; then
		log "removing stale $DATA/postmaster.pid"
		rm -f "$DATA/postmaster.pid"
	fi
	if as_pg "$BIN/pg_ctl" -D "$DATA" status >/dev/null 2>&1; then
		log "server in $DATA is running; (re)provisioning"
	else
		if port_open "$PG_PORT"; then
			die "127.0.0.1:$PG_PORT is in use by something that does not accept our credentials; stop it or set MQTTPERSIST_POSTGRES_PORT"
		fi
		log "starting on 127.0.0.1:$PG_PORT (log: $LOGFILE)"
		if ! (
			close_fds
			as_pg "$BIN/pg_ctl" -D "$DATA" -l "$LOGFILE" -w -t 60 \
				-o "-p $PG_PORT -c listen_addresses=127.0.0.1" start </dev/null >"$PGHOME/pg_ctl.log" 2>&1
		); then
			log_tail "$PGHOME/pg_ctl.log"
			log_tail "$LOGFILE"
			die "pg_ctl start failed"
		fi
	fi
	wait_until 60 "postgres on 127.0.0.1:$PG_PORT" "$LOGFILE" \
		"$BIN/pg_isready" -q -h 127.0.0.1 -p "$PG_PORT"
	log "creating role $PG_USER and database $PG_DB"
	PGPASSWORD="$PG_SUPER_PASS" "$BIN/psql" -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$PG_PORT" \
		-U "$PG_SUPER" -d postgres -v u="$PG_USER" -v p="$PG_PASS" -v db="$PG_DB" >/dev/null <<'SQL' ||
SELECT format('CREATE ROLE %I', :'u') WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = :'u') \gexec
SELECT format('ALTER ROLE %I LOGIN CREATEDB PASSWORD %L', :'u', :'p') \gexec
SELECT format('CREATE DATABASE %I OWNER %I ENCODING ''UTF8'' TEMPLATE template0', :'db', :'u')
 WHERE NOT EXISTS (SELECT 1 FROM pg_database WHERE datname = :'db') \gexec
SQL
		die "provisioning failed (log: $LOGFILE)"
	svc_status || die "cannot connect as $PG_USER after provisioning"
	log "ready on 127.0.0.1:$PG_PORT"
}

svc_stop() {
	BIN="$(pg_bindir)" || { log "not installed"; return 0; }
	pg_layout
	if [ -s "$DATA/PG_VERSION" ] && as_pg "$BIN/pg_ctl" -D "$DATA" status >/dev/null 2>&1; then
		log "stopping"
		as_pg "$BIN/pg_ctl" -D "$DATA" -m fast -w -t 60 stop >/dev/null
	else
		log "not running"
	fi
}

svc_main "$@"
