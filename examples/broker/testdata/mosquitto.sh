#!/usr/bin/env bash
# Client side of the Mosquitto CLI test of the example broker (see
# TestMosquittoCLI): mosquitto.sh STEP HOST PORT
#   subscribe  a persistent MQTT 3.1.1 subscriber (clean session off) subscribes to cli/# at QoS 1 and leaves
#   publish    publishes m0..m9 at QoS 1 to cli/x, a retained "on" to cli/state, and deletes cli/gone (empty retained)
#   receive    the subscriber comes back (not subscribing to cli/# again) and prints what comes in SECONDS (3)
#   retained   a new clean client subscribes to cli/# and prints the retained messages it gets within 3 s
set -euo pipefail
step="$1" host="$2" port="$3" # receive takes a 4th argument, SECONDS
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
	# comes from the stored subscription. It listens for a while and leaves
	# at the timeout (exit 27 is expected), when every message that came is
	# long acknowledged. Leaving at a count (-C) may close the socket while a
	# packet from the broker (such as the SUBACK of that subscription) is
	# still unread, which resets the connection, and a reset can discard the
	# last PUBACKs on their way to the broker: QoS 1 then rightly delivers
	# those messages again. The 4th argument, if any, is how many seconds to
	# listen (3).
	"${sub[@]}" -i "cli-sub" -c -q 1 -t unrelated/topic -W "${4:-3}" -F '%t %p' || [ $? -eq 27 ]
	;;
retained)
	"${sub[@]}" -i "cli-reader" -q 1 -t 'cli/#' -W 3 -F '%t %p %r' || [ $? -eq 27 ]
	;;
*)
	echo "unknown step $step" >&2
	exit 2
	;;
esac
