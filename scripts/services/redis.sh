#!/usr/bin/env bash
# Redis 7 (Debian's redis-server) for the tests: one server on
# 127.0.0.1:16379, files in .services/redis/. The Redis ports (16379,
# 16380-16389, 17001-17003 and their cluster bus ports 17101-17103) sit below
# Linux's ephemeral port range (32768-60999), where an outgoing connection of
# any program may hold the port for a while (TIME_WAIT) and fail the bind.
# Usage: scripts/services/redis.sh {packages|up|stop|status|env}
# (see scripts/services/lib.sh for what each subcommand does).
# shellcheck disable=SC2034 # read by log() in lib.sh
SVC_NAME=redis
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
# shellcheck source-path=SCRIPTDIR source=redis-lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/redis-lib.sh"

REDIS_PORT="${MQTTPERSIST_REDIS_PORT:-16379}"

svc_packages() { redis_packages; }

svc_env() {
	env_line MQTTPERSIST_REDIS_URL "redis://127.0.0.1:$REDIS_PORT/0"
	# For tests that run a server of their own (testenv.StartRedis).
	if redis_bins; then env_line MQTTPERSIST_REDIS_SERVER "$REDIS_SERVER"; fi
}

svc_status() { redis_ping "$REDIS_PORT"; }

svc_up() {
	redis_install
	redis_start "$(svc_dir redis)" "$REDIS_PORT" "redis"
	log "ready on 127.0.0.1:$REDIS_PORT"
}

svc_stop() {
	redis_stop "$SERVICES_DIR/redis" redis
}

svc_main "$@"
