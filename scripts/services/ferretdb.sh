#!/usr/bin/env bash
# FerretDB v1.24 (a MongoDB wire-protocol server in Go) for the tests of
# mongostore: no MongoDB server package exists for the test machines.
# scripts/ferretdb is a tiny main embedding github.com/FerretDB/FerretDB/ferretdb,
# a Go module of its own (the library's module does not depend on FerretDB);
# it is built from the Go module proxy into .services/ferretdb/bin/ (built
# again only when its source or the Go version changed) and serves MongoDB on
# 127.0.0.1:27027 on its PostgreSQL backend, keeping its data in the database
# ferretdb_<port> of the test PostgreSQL (scripts/services/postgres.sh, which
# it waits for; one database per FerretDB, as two FerretDB processes on one
# database would not see each other's changes). Log and pid file in
# .services/ferretdb/.
# Usage: scripts/services/ferretdb.sh {packages|up|stop|status|env}
# (see scripts/services/lib.sh for what each subcommand does).
# shellcheck disable=SC2034 # read by log() in lib.sh
SVC_NAME=ferretdb
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# Below the kernel's ephemeral range (32768-60999): a TIME_WAIT socket there can block the bind.
FDB_PORT="${MQTTPERSIST_FERRETDB_PORT:-27027}"
FDB_SRC="$REPO_ROOT/scripts/ferretdb"
FDB_PG_DB="ferretdb_$FDB_PORT"
# The SQLite backend is left out: it scans where PostgreSQL uses indexes,
# and modernc.org/sqlite doubles the build time.
FDB_TAGS=ferretdb_no_sqlite

svc_packages() { return 0; } # Go builds it; no Debian package

svc_env() {
	env_line MQTTPERSIST_MONGODB_URL "mongodb://127.0.0.1:$FDB_PORT/mqtt"
}

fdb_layout() {
	HOME_DIR="$(svc_dir ferretdb)"
	BIN="$HOME_DIR/bin/ferretdb"
	STAMP="$HOME_DIR/bin/ferretdb.stamp"
	LOGFILE="$HOME_DIR/ferretdb.log"
	PIDFILE="$HOME_DIR/ferretdb.pid"
}

# fdb_alive: the server process started here is running.
# shellcheck disable=SC2317,SC2329 # called through WAIT_ALIVE
fdb_alive() { pid_alive "$PIDFILE"; }

svc_status() {
	fdb_layout
	pid_alive "$PIDFILE" && port_open "$FDB_PORT"
}

# fdb_stamp: what the binary is built from (source, module sums, Go, tags).
fdb_stamp() {
	{
		cat "$FDB_SRC/go.mod" "$FDB_SRC/go.sum" "$FDB_SRC"/*.go
		go version
		echo "$FDB_TAGS"
	} | cksum
}

# fdb_build: build the binary unless the cached one is of the same stamp.
fdb_build() {
	have_cmd go || die "go not found: it builds FerretDB from scripts/ferretdb"
	local stamp start=$SECONDS
	stamp="$(fdb_stamp)"
	if [ -x "$BIN" ] && [ "$(cat "$STAMP" 2>/dev/null)" = "$stamp" ]; then
		return 0
	fi
	log "building FerretDB from $FDB_SRC (once; cached in $HOME_DIR/bin)"
	mkdir -p "$HOME_DIR/bin"
	if ! (cd "$FDB_SRC" && GOWORK=off GOFLAGS=-mod=readonly go build -trimpath -tags "$FDB_TAGS" \
		-o "$BIN.tmp" .) >"$HOME_DIR/build.log" 2>&1; then
		log_tail "$HOME_DIR/build.log"
		die "go build of $FDB_SRC failed"
	fi
	mv -f "$BIN.tmp" "$BIN"
	printf '%s\n' "$stamp" >"$STAMP"
	log "built in $((SECONDS - start))s"
}

# fdb_pg_url: the test PostgreSQL's URL, once it accepts connections (its
# script may be starting it right now, in parallel with this one).
fdb_pg_url() {
	local pg="$REPO_ROOT/scripts/services/postgres.sh" deadline=$((SECONDS + 300))
	until "$pg" status 9>&-; do
		[ "$SECONDS" -lt "$deadline" ] || die "PostgreSQL is not up after 300s (FerretDB keeps its data there): scripts/services.sh up postgres ferretdb"
		sleep 1
	done
	"$pg" env | sed -n "s/^export MQTTPERSIST_POSTGRES_URL='\(.*\)'$/\1/p"
}

svc_up() {
	local pgurl
	fdb_layout
	if svc_status && [ "$(cat "$STAMP" 2>/dev/null)" = "$(fdb_stamp)" ]; then
		log "already running on 127.0.0.1:$FDB_PORT"
		return 0
	fi
	fdb_build
	if pid_alive "$PIDFILE"; then
		# Running but built from other source (or not answering): restart it.
		stop_pid "$PIDFILE" ferretdb
	fi
	if port_open "$FDB_PORT"; then
		die "127.0.0.1:$FDB_PORT is in use by something else; stop it or set MQTTPERSIST_FERRETDB_PORT"
	fi
	pgurl="$(fdb_pg_url)"
	[ -n "$pgurl" ] || die "no MQTTPERSIST_POSTGRES_URL from scripts/services/postgres.sh env"
	log "starting on 127.0.0.1:$FDB_PORT, data in PostgreSQL database $FDB_PG_DB (log: $LOGFILE)"
	(
		close_fds
		cd "$HOME_DIR" || exit 1
		exec setsid "$BIN" -listen "127.0.0.1:$FDB_PORT" -postgresql-url "$pgurl" \
			-database "$FDB_PG_DB" -log-level error </dev/null >>"$LOGFILE" 2>&1
	) &
	echo $! >"$PIDFILE"
	# shellcheck disable=SC2034 # read by wait_until in lib.sh
	WAIT_ALIVE=fdb_alive
	wait_until 60 "ferretdb on 127.0.0.1:$FDB_PORT" "$LOGFILE" port_open "$FDB_PORT"
	log "ready on 127.0.0.1:$FDB_PORT"
}

svc_stop() {
	fdb_layout
	stop_pid "$PIDFILE" ferretdb
}

svc_main "$@"
