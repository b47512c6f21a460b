#!/usr/bin/env bash
# bench/compare.sh: iotgw vs mosquitto, side by side, same load generator.
#
# Builds ./cmd/iotgw and ./cmd/iotgw-bench into a temp dir, starts both brokers
# on free loopback ports, drives the same matrix against each with
# iotgw-bench (our own MQTT 3.1.1 client, standard library only) and prints one
# table with msg/s, ratio iotgw/mosquitto, loss and p99 latency, plus broker
# memory per idle connection. A default run takes about a minute on an idle
# 2-core machine (the iotgw build excluded); every run is capped by DURATION.
#
# Usage (from anywhere in the checkout):
#   bench/compare.sh                    # full matrix, both brokers
#   PIN=1 bench/compare.sh              # brokers on CPU 0, load generator on CPU 1
#   REPEAT=3 bench/compare.sh           # 3 runs per case, table shows the median (~3x time)
#   SCENARIOS="pairs" QOS="1" bench/compare.sh
#
# Requirements: Go, and Debian's mosquitto (apt-get install -y mosquitto).
# Either broker is skipped with a message when it cannot be built or found;
# the other still runs. Traffic goes to 127.0.0.1 only, every run is bounded
# by DURATION, and both brokers are stopped on exit, including on Ctrl-C.
#
# Knobs (environment, default in brackets):
#   SCENARIOS     which scenarios                           [pairs fanin fanout idle]
#   QOS           which QoS levels                          [0 1 2]
#   PAIRS         publisher/subscriber pairs                [10]
#   FAN           publishers in fanin, subscribers in fanout [20]
#   MSGS          messages per publisher                    [10000]
#   SIZE          payload bytes                             [64]
#   WINDOW        in-flight messages per publisher          [100]
#   E2E=1         also bound QoS 1/2 by end-to-end delivery, not only broker acks [0]
#   IDLE_N        idle connections for the memory test      [10000]
#   DURATION      hard bound per run                        [20s]
#   REPEAT        runs per case (median by rate is shown)   [1]
#   PIN=1         taskset -c 0 brokers, -c 1 load generator  [0]
#   MOSQ_NODELAY=1 add "set_tcp_nodelay true" to mosquitto.conf [0]
#   MOSQUITTO     mosquitto binary                          [mosquitto on PATH, else /usr/sbin/mosquitto]
#   OUT           also keep the raw JSON lines in this file [unset]
#   KEEP=1        keep the temp dir (binaries, logs, configs) [0]
#
# How to read it: msg/s is deliveries per second at the subscribers, from the
# first publish to the last delivery. QoS 0 publishers are paced by end-to-end
# credit (WINDOW messages not yet seen by subscribers); QoS 1/2 publishers by
# broker acknowledgements (PUBACK/PUBCOMP), so a broker that acknowledges
# faster than it can deliver shows up as loss, not as a stalled publisher.
#
# Mosquitto defaults that matter here (we keep them: this is a defaults
# comparison, and max_queued_messages stays at 1000):
#   - max_inflight_messages 20 also bounds unreleased incoming QoS 2 messages
#     per client; above that mosquitto 2.0 still answers PUBREC but drops the
#     message, so QoS 2 with WINDOW > 20 shows loss on mosquitto.
#   - the subscriber-side queue (20 in flight + 1000 queued) overflows in
#     fan-in at QoS 1/2 when 20 publishers are only paced by broker acks
#     (try E2E=1 for sustainable throughput instead).
#   - no TCP_NODELAY: QoS 2 exchanges hit Nagle + delayed-ACK 40 ms stalls,
#     which dominate its latency (MOSQ_NODELAY=1 to see mosquitto without it).
#   (All three observed with Debian's mosquitto 2.0.11 on loopback.)
#
# Noise: mosquitto is single-threaded and iotgw is not, so on a loaded or
# shared machine iotgw simply grabs more CPU. PIN=1 gives each broker exactly
# one core (and the load generator the other) for a per-core comparison;
# REPEAT=3 takes the median of three runs. Numbers from a busy machine
# (check 'uptime') are not worth quoting.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SCENARIOS=${SCENARIOS:-pairs fanin fanout idle}
QOS=${QOS:-0 1 2}
PAIRS=${PAIRS:-10}
FAN=${FAN:-20}
MSGS=${MSGS:-10000}
SIZE=${SIZE:-64}
WINDOW=${WINDOW:-100}
E2E=${E2E:-0}
IDLE_N=${IDLE_N:-10000}
DURATION=${DURATION:-20s}
REPEAT=${REPEAT:-1}
PIN=${PIN:-0}
MOSQ_NODELAY=${MOSQ_NODELAY:-0}
KEEP=${KEEP:-0}

TMP=$(mktemp -d "${TMPDIR:-/tmp}/iotgw-compare.XXXXXX")
PIDS=()     # brokers we started
BENCH_PID=  # the load generator while one runs

log() { printf '%s\n' "$*" >&2; }

# stop_pid ends one broker we started: TERM, then KILL after 3 s.
stop_pid() {
	local pid=$1 _
	kill -0 "$pid" 2>/dev/null || return 0
	kill -TERM "$pid" 2>/dev/null || true
	for _ in $(seq 30); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	kill -KILL "$pid" 2>/dev/null || true
	wait "$pid" 2>/dev/null || true
}

cleanup() {
	local pid
	if [[ -n $BENCH_PID ]]; then stop_pid "$BENCH_PID"; fi
	for pid in "${PIDS[@]+"${PIDS[@]}"}"; do
		stop_pid "$pid"
	done
	if [[ $KEEP == 1 ]]; then
		log "kept $TMP"
	else
		rm -rf "$TMP"
	fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

PIN_BROKER=()
PIN_BENCH=()
if [[ $PIN == 1 ]]; then
	if command -v taskset >/dev/null && [[ $(nproc) -ge 2 ]]; then
		PIN_BROKER=(taskset -c 0)
		PIN_BENCH=(taskset -c 1)
	else
		log "PIN=1 ignored: needs taskset and at least 2 CPUs"
	fi
fi

# --- build ------------------------------------------------------------------
cd "$ROOT"
log "building iotgw-bench"
go build -o "$TMP/iotgw-bench" ./cmd/iotgw-bench
BENCH=("${PIN_BENCH[@]+"${PIN_BENCH[@]}"}" "$TMP/iotgw-bench")

BROKERS=()
if go build -o "$TMP/iotgw" ./cmd/iotgw >"$TMP/iotgw-build.log" 2>&1; then
	BROKERS+=(iotgw)
else
	log "iotgw: SKIPPED, 'go build ./cmd/iotgw' failed:"
	sed -n '1,5s/^/    /p' "$TMP/iotgw-build.log" >&2
fi
MOSQUITTO=${MOSQUITTO:-$(command -v mosquitto || true)}
if [[ -z $MOSQUITTO && -x /usr/sbin/mosquitto ]]; then
	MOSQUITTO=/usr/sbin/mosquitto
fi
if [[ -n $MOSQUITTO && -x $MOSQUITTO ]]; then
	BROKERS+=(mosquitto)
	log "mosquitto: $("$MOSQUITTO" -h 2>&1 | head -n1)"
else
	log "mosquitto: SKIPPED, not found (apt-get install -y mosquitto)"
fi
if [[ ${#BROKERS[@]} -eq 0 ]]; then
	log "no broker to benchmark"
	exit 1
fi

# Both the load generator and the brokers need a descriptor per connection.
want_fds=$((IDLE_N + 1024))
hard=$(ulimit -Hn)
if [[ $hard == unlimited ]]; then hard=1048576; fi
ulimit -n "$((hard < want_fds * 2 ? hard : want_fds * 2))" 2>/dev/null || true
soft=$(ulimit -n)
if ((soft < want_fds)); then
	IDLE_N=$((soft - 1024))
	log "open-file limit is $soft: idle test reduced to $IDLE_N connections"
fi

# --- brokers ----------------------------------------------------------------
# start_broker NAME sets BROKER_PID and BROKER_ADDR for a fresh instance.
start_broker() {
	local name=$1 port
	port=$("$TMP/iotgw-bench" -free-port)
	BROKER_ADDR=127.0.0.1:$port
	case $name in
	mosquitto)
		# Minimal config: everything not listed is mosquitto's default.
		# Logging is trimmed to errors and warnings to match iotgw's
		# IOTGW_LOG_LEVEL=warn; stderr goes to a file, not the terminal.
		{
			echo "listener $port 127.0.0.1"
			echo "allow_anonymous true"
			echo "max_connections -1"
			echo "persistence false"
			echo "log_dest stderr"
			echo "log_type error"
			echo "log_type warning"
			if [[ $MOSQ_NODELAY == 1 ]]; then echo "set_tcp_nodelay true"; fi
		} >"$TMP/mosquitto-$port.conf"
		"${PIN_BROKER[@]+"${PIN_BROKER[@]}"}" "$MOSQUITTO" -c "$TMP/mosquitto-$port.conf" \
			>"$TMP/mosquitto-$port.log" 2>&1 &
		;;
	iotgw)
		IOTGW_MQTT_TCP=$BROKER_ADDR IOTGW_MQTT_WS='' IOTGW_LOG_LEVEL=warn \
			"${PIN_BROKER[@]+"${PIN_BROKER[@]}"}" "$TMP/iotgw" >"$TMP/iotgw-$port.log" 2>&1 &
		;;
	esac
	# taskset and the env assignments exec, so $! is the broker itself:
	# the idle test reads its /proc/<pid>/status.
	BROKER_PID=$!
	PIDS+=("$BROKER_PID")
	BROKER_LOG=$TMP/$name-$port.log
	if ! "$TMP/iotgw-bench" -scenario probe -addr "$BROKER_ADDR" -duration 10s; then
		log "$name did not come up on $BROKER_ADDR; log:"
		tail -n 20 "$BROKER_LOG" >&2 || true
		stop_pid "$BROKER_PID"
		return 1
	fi
}

# Other work on the machine skews a comparison of a single-threaded broker
# with a multi-threaded one; record how busy it was so readers can judge.
LOAD_START=$(cut -d' ' -f1 /proc/loadavg 2>/dev/null || echo '?')

RESULTS=$TMP/results.jsonl
: >"$RESULTS"

# run_case BROKER ADDR ARGS... runs one load-generator invocation and keeps
# its JSON line even when it fails, so the table can say what went wrong.
run_case() {
	local name=$1 addr=$2 line rate kib err
	shift 2
	# In the background plus 'wait' because bash runs traps only between
	# foreground commands: Ctrl-C or TERM must not wait out a 20 s run.
	"${BENCH[@]}" -json -label "$name" -addr "$addr" -duration "$DURATION" "$@" \
		>"$TMP/case.json" 2>>"$TMP/bench.err" &
	BENCH_PID=$!
	wait "$BENCH_PID" || true
	BENCH_PID=
	line=$(cat "$TMP/case.json")
	if [[ -z $line ]]; then
		log "  $name: load generator produced no result (see below)"
		tail -n 5 "$TMP/bench.err" >&2 || true
		return
	fi
	printf '%s\n' "$line" >>"$RESULTS"
	# A one-line progress note; the table at the end is the real output.
	rate=$(printf '%s' "$line" | sed -n 's/.*"rate":\([0-9.]*\).*/\1/p')
	kib=$(printf '%s' "$line" | sed -n 's/.*"rss_per_conn_kib":\([0-9.-]*\).*/\1/p')
	err=$(printf '%s' "$line" | sed -n 's/.*"error":"\([^"]*\)".*/\1/p')
	if [[ -n $kib ]]; then
		log "  $(printf '%-9s' "$name") $kib KiB/connection"
	else
		log "  $(printf '%-9s' "$name") ${rate%.*} msg/s"
	fi
	if [[ -n $err ]]; then log "  $(printf '%-9s' "$name") error: $err"; fi
}

msg_scenarios=()
for s in $SCENARIOS; do
	case $s in
	pairs | fanin | fanout) msg_scenarios+=("$s") ;;
	idle) ;;
	*) log "unknown scenario $s" && exit 2 ;;
	esac
done

if [[ ${#msg_scenarios[@]} -gt 0 ]]; then
	# Both brokers run at once and the cases alternate between them, so slow
	# drift on a shared machine hits both sides alike instead of one.
	declare -A ADDR PID
	live=()
	for b in "${BROKERS[@]}"; do
		if start_broker "$b"; then
			ADDR[$b]=$BROKER_ADDR
			PID[$b]=$BROKER_PID
			live+=("$b")
		fi
	done
	e2e_flag=()
	if [[ $E2E == 1 ]]; then e2e_flag=(-e2e); fi
	for s in "${msg_scenarios[@]}"; do
		case $s in
		pairs) n=$PAIRS ;;
		*) n=$FAN ;;
		esac
		for q in $QOS; do
			for r in $(seq "$REPEAT"); do
				log "$s n=$n qos=$q run $r/$REPEAT"
				for b in "${live[@]+"${live[@]}"}"; do
					if ! kill -0 "${PID[$b]}" 2>/dev/null; then
						log "  $b: broker process has exited; log tail:"
						tail -n 5 "$TMP/$b-${ADDR[$b]##*:}.log" >&2 || true
						continue
					fi
					run_case "$b" "${ADDR[$b]}" -scenario "$s" -qos "$q" -n "$n" -msgs "$MSGS" \
						-size "$SIZE" -window "$WINDOW" "${e2e_flag[@]+"${e2e_flag[@]}"}"
				done
			done
		done
	done
	for b in "${live[@]+"${live[@]}"}"; do stop_pid "${PID[$b]}"; done
fi

if [[ " $SCENARIOS " == *" idle "* ]]; then
	# A fresh broker per measurement: memory freed by earlier runs would be
	# reused by new connections and hide their real cost.
	for b in "${BROKERS[@]}"; do
		log "idle n=$IDLE_N on a fresh $b"
		if start_broker "$b"; then
			run_case "$b" "$BROKER_ADDR" -scenario idle -qos 1 -n "$IDLE_N" -broker-pid "$BROKER_PID" \
				-duration 60s
			stop_pid "$BROKER_PID"
		fi
	done
fi

LOAD_END=$(cut -d' ' -f1 /proc/loadavg 2>/dev/null || echo '?')
echo
echo "iotgw-bench: size=${SIZE}B window=$WINDOW msgs/publisher=$MSGS e2e=$E2E pin=$PIN repeat=$REPEAT" \
	"brokers: ${BROKERS[*]}"
busy=
if awk -v a="$LOAD_START" -v b="$LOAD_END" -v n="$(nproc)" 'BEGIN { exit !(a + 0 > n || b + 0 > n) }'; then
	busy=" (more runnable work than CPUs: a busy machine, rerun before quoting)"
fi
echo "load average $LOAD_START at start, $LOAD_END at end, on $(nproc) CPUs$busy"
"$TMP/iotgw-bench" -report "$RESULTS" -compare iotgw,mosquitto
if [[ -n ${OUT:-} ]]; then
	cp "$RESULTS" "$OUT"
	log "raw results: $OUT"
fi
