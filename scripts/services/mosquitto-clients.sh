#!/usr/bin/env bash
# The Mosquitto command-line clients (mosquitto_pub, mosquitto_sub) for the
# script test of the example broker. Not a server: "up" installs them if
# missing and checks they run.
set -euo pipefail
# shellcheck disable=SC2034 # read by log() in lib.sh
SVC_NAME=mosquitto-clients
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

svc_packages() {
	if ! command -v mosquitto_pub >/dev/null || ! command -v mosquitto_sub >/dev/null; then
		echo mosquitto-clients
	fi
	return 0
}

svc_env() {
	env_line MQTTPERSIST_MOSQUITTO_PUB "$(command -v mosquitto_pub || echo mosquitto_pub)"
}

svc_status() { command -v mosquitto_pub >/dev/null && command -v mosquitto_sub >/dev/null; }

svc_up() {
	local missing
	missing="$(svc_packages)"
	# shellcheck disable=SC2086
	[ -z "$missing" ] || apt_install $missing
	svc_status || die "mosquitto_pub/mosquitto_sub not found after installing mosquitto-clients"
	log "ready: $(command -v mosquitto_pub)"
}

svc_stop() { :; }

svc_main "$@"
