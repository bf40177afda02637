#!/usr/bin/env bash
# A 3-master Redis Cluster for the tests: redis-server --cluster-enabled on
# 127.0.0.1:17001-17003 (no replicas; cluster bus on PORT+100, since the
# default PORT+10000 passes 65535), made with redis-cli --cluster create;
# files in .services/redis-cluster/PORT/.
# Usage: scripts/services/redis-cluster.sh {packages|up|stop|status|env}
# (see scripts/services/lib.sh for what each subcommand does).
# shellcheck disable=SC2034 # read by log() in lib.sh
SVC_NAME=redis-cluster
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
# shellcheck source-path=SCRIPTDIR source=redis-lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/redis-lib.sh"

BASE="${MQTTPERSIST_REDIS_CLUSTER_PORT:-17001}"
PORTS=("$BASE" "$((BASE + 1))" "$((BASE + 2))")

svc_packages() { redis_packages; }

addrs() {
	local out="" p
	for p in "${PORTS[@]}"; do out="${out:+$out,}127.0.0.1:$p"; done
	printf '%s\n' "$out"
}

svc_env() {
	env_line MQTTPERSIST_REDIS_CLUSTER_ADDRS "$(addrs)"
}

# cluster_ok PORT: true when the node on PORT sees a healthy cluster of
# three masters covering every slot.
cluster_ok() {
	local info
	info="$(rcli "$1" cluster info 2>/dev/null | tr -d '\r')" || return 1
	grep -qx 'cluster_state:ok' <<<"$info" &&
		grep -qx 'cluster_slots_assigned:16384' <<<"$info" &&
		grep -qx 'cluster_known_nodes:3' <<<"$info"
}

all_ok() {
	local p
	for p in "${PORTS[@]}"; do cluster_ok "$p" || return 1; done
}

svc_status() {
	redis_bins || return 1
	all_ok
}

svc_up() {
	local dir p
	redis_install
	dir="$(svc_dir redis-cluster)"
	for p in "${PORTS[@]}"; do
		redis_start "$dir/$p" "$p" "cluster node $p" \
			"cluster-enabled yes" \
			"cluster-port $((p + 100))" \
			"cluster-config-file $dir/$p/nodes.conf" \
			"cluster-node-timeout 5000" \
			"cluster-require-full-coverage yes"
	done
	if all_ok; then
		log "cluster already formed on $(addrs)"
		return 0
	fi
	# Nodes restarted with their nodes.conf rejoin by themselves: give them
	# a moment before starting over.
	if [ -s "$dir/${PORTS[0]}/nodes.conf" ] && [ "$(grep -c master "$dir/${PORTS[0]}/nodes.conf")" -ge 3 ]; then
		log "waiting for the cluster to re-form"
		for _ in $(seq 1 20); do
			all_ok && { log "cluster re-formed on $(addrs)"; return 0; }
			sleep 0.5
		done
	fi
	# Start over: empty every node and forget every other node, then create.
	log "creating the cluster on $(addrs)"
	for p in "${PORTS[@]}"; do
		rcli "$p" flushall >/dev/null 2>&1 || true
		rcli "$p" cluster reset hard >/dev/null || die "CLUSTER RESET on $p failed"
	done
	local args=()
	for p in "${PORTS[@]}"; do args+=("127.0.0.1:$p"); done
	if ! timeout 60 "$REDIS_CLI" --cluster create "${args[@]}" --cluster-replicas 0 --cluster-yes \
		>"$dir/create.log" 2>&1; then
		log_tail "$dir/create.log"
		die "redis-cli --cluster create failed"
	fi
	wait_until 30 "cluster on $(addrs)" "$dir/create.log" all_ok
	log "ready on $(addrs)"
}

svc_stop() {
	local p
	for p in "${PORTS[@]}"; do redis_stop "$SERVICES_DIR/redis-cluster/$p" "cluster node $p"; done
}

svc_main "$@"
