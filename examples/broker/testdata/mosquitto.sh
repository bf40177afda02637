#!/usr/bin/env bash
# Client side of the Mosquitto CLI test of the example broker (see
# TestMosquittoCLI): mosquitto.sh STEP HOST PORT
#   subscribe  a persistent MQTT 3.1.1 subscriber (clean session off) subscribes to cli/# at QoS 1 and leaves
#   publish    publishes m0..m9 at QoS 1 to cli/x, a retained "on" to cli/state, and deletes cli/gone (empty retained)
#   receive    the subscriber comes back (not subscribing to cli/# again) and prints COUNT messages, or what comes in 3 s
#   retained   a new clean client subscribes to cli/# and prints the retained messages it gets within 3 s
set -euo pipefail
step="$1" host="$2" port="$3" # receive takes a 4th argument, COUNT
sub=(mosquitto_sub -h "$host" -p "$port" -V mqttv311)
pub=(mosquitto_pub -h "$host" -p "$port" -V mqttv311 -i cli-pub)
case "$step" in
subscribe)
	"${sub[@]}" -i "cli-sub" -c -q 1 -t 'cli/#' -E
	;;
publish)
	for i in $(seq 0 9); do "${pub[@]}" -q 1 -t cli/x -m "m$i"; done
	"${pub[@]}" -q 1 -r -t cli/gone -m "bye"
	"${pub[@]}" -q 1 -r -t cli/gone -n
	"${pub[@]}" -q 1 -r -t cli/state -m "on"
	;;
receive)
	# mosquitto_sub needs a topic: an unrelated one, so what arrives on cli/#
	# comes from the stored subscription. With COUNT (4th argument) it leaves
	# cleanly after that many messages, each acknowledged (60 s at most);
	# without, it listens 3 s (exit 27 on that timeout is expected). Quitting
	# by timeout in the middle of a delivery would leave a message
	# unacknowledged, and QoS 1 then delivers it (and its topic's later ones)
	# again.
	if [ -n "${4:-}" ]; then
		"${sub[@]}" -i "cli-sub" -c -q 1 -t unrelated/topic -C "$4" -W 60 -F '%t %p'
	else
		"${sub[@]}" -i "cli-sub" -c -q 1 -t unrelated/topic -W 3 -F '%t %p' || [ $? -eq 27 ]
	fi
	;;
retained)
	"${sub[@]}" -i "cli-reader" -q 1 -t 'cli/#' -W 3 -F '%t %p %r' || [ $? -eq 27 ]
	;;
*)
	echo "unknown step $step" >&2
	exit 2
	;;
esac
