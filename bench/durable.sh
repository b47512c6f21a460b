#!/usr/bin/env bash
# bench/durable.sh: QoS 1 (or QOS=2) through persistent sessions with the durable store
# (issue 8's benchmark), side by side in one run:
#
#   iotgw       defaults: pebble store, store.fsync always (every PUBACK after
#               the WAL sync that holds its message)
#   iotgw-mem   store.engine memory (nothing survives a restart)
#   mosquitto   Debian's mosquitto at its defaults (persistence false: its
#               queues live in RAM until a shutdown)
#
# Each round runs PAIRS publisher/subscriber pairs, MSGS QoS 1 messages per
# publisher, clean session 0 (so iotgw writes every message to the store and
# deletes it on PUBACK), against the three brokers in turn; REPEAT rounds.
# Then it prints every rate, the medians and the ratios, and iotgw's RSS and
# store.dir size after the last round (the brokers keep running across
# rounds, so that figure is after REPEAT x PAIRS x MSGS messages).
#
# Usage: bench/durable.sh
#        PAIRS=10 MSGS=100000 REPEAT=1 bench/durable.sh   # 1 M messages
#        PIN=1 bench/durable.sh    # brokers on CPU 0, load generator on CPU 1
# Knobs: PAIRS [10] MSGS [20000] REPEAT [3] SIZE [64] WINDOW [100] PIN [0]
#        QOS [1] (1 or 2); DURATION per run [120s]; KEEP=1 keeps the temp dir.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PAIRS=${PAIRS:-10}
MSGS=${MSGS:-20000}
REPEAT=${REPEAT:-3}
SIZE=${SIZE:-64}
WINDOW=${WINDOW:-100}
QOS=${QOS:-1}
PIN=${PIN:-0}
DURATION=${DURATION:-120s}
KEEP=${KEEP:-0}

TMP=$(mktemp -d "${TMPDIR:-/tmp}/iotgw-durable.XXXXXX")
PIDS=()
cleanup() {
	local p
	for p in "${PIDS[@]+"${PIDS[@]}"}"; do
		kill -TERM "$p" 2>/dev/null || true
		wait "$p" 2>/dev/null || true
	done
	if [[ $KEEP == 1 ]]; then echo "kept $TMP" >&2; else rm -rf "$TMP"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

PIN_BROKER=()
PIN_BENCH=()
if [[ $PIN == 1 ]] && command -v taskset >/dev/null && [[ $(nproc) -ge 2 ]]; then
	PIN_BROKER=(taskset -c 0)
	PIN_BENCH=(taskset -c 1)
fi

cd "$ROOT"
echo "building" >&2
go build -o "$TMP/iotgw" ./cmd/iotgw
go build -o "$TMP/iotgw-bench" ./cmd/iotgw-bench

declare -A ADDR PID
port() { "$TMP/iotgw-bench" -free-port; }

# iotgw with one MQTT listener; $2 is the store engine.
start_iotgw() {
	local name=$1 engine=$2 p
	p=$(port)
	mkdir -p "$TMP/run-$name"
	(cd "$TMP/run-$name" && exec env IOTGW_MQTT_TCP=127.0.0.1:$p IOTGW_MQTT_WS= IOTGW_MQTTSN_UDP= IOTGW_COAP_UDP= \
		IOTGW_STOMP_TCP= IOTGW_STOMP_WS= IOTGW_LOG_LEVEL=warn IOTGW_SYS_INTERVAL=0 IOTGW_STORE_ENGINE="$engine" \
		"${PIN_BROKER[@]+"${PIN_BROKER[@]}"}" "$TMP/iotgw" >"$TMP/$name.log" 2>&1) &
	PID[$name]=$!
	PIDS+=("$!")
	ADDR[$name]=127.0.0.1:$p
}
start_mosquitto() {
	local p
	p=$(port)
	printf 'listener %s 127.0.0.1\nallow_anonymous true\nmax_connections -1\n' "$p" >"$TMP/mosquitto.conf"
	"${PIN_BROKER[@]+"${PIN_BROKER[@]}"}" mosquitto -c "$TMP/mosquitto.conf" >"$TMP/mosquitto.log" 2>&1 &
	PID[mosquitto]=$!
	PIDS+=("$!")
	ADDR[mosquitto]=127.0.0.1:$p
}

BROKERS=(iotgw iotgw-mem)
start_iotgw iotgw pebble
start_iotgw iotgw-mem memory
if command -v mosquitto >/dev/null; then
	start_mosquitto
	BROKERS+=(mosquitto)
else
	echo "mosquitto not found (apt-get install -y mosquitto): skipped" >&2
fi
for b in "${BROKERS[@]}"; do
	"$TMP/iotgw-bench" -scenario probe -addr "${ADDR[$b]}" -duration 10s
done

declare -A RATES
for r in $(seq "$REPEAT"); do
	for b in "${BROKERS[@]}"; do
		line=$("${PIN_BENCH[@]+"${PIN_BENCH[@]}"}" "$TMP/iotgw-bench" -json -label "$b" -addr "${ADDR[$b]}" \
			-scenario pairs -qos "$QOS" -persistent -n "$PAIRS" -msgs "$MSGS" -size "$SIZE" -window "$WINDOW" \
			-duration "$DURATION" 2>>"$TMP/bench.err" || true)
		rate=$(printf '%s' "$line" | sed -n 's/.*"rate":\([0-9.]*\).*/\1/p')
		loss=$(printf '%s' "$line" | sed -n 's/.*"loss_pct":\([0-9.]*\).*/\1/p')
		rate=${rate%.*}
		echo "round $r  $(printf '%-10s' "$b") ${rate:-?} msg/s  loss ${loss:-?} %" >&2
		RATES[$b]+="${rate:-0} "
	done
done

median() { tr ' ' '\n' | grep -v '^$' | sort -n | awk '{a[NR]=$1} END {print (NR ? a[int((NR+1)/2)] : 0)}'; }
echo
echo "QoS $QOS, $PAIRS persistent pairs x $MSGS messages, ${SIZE} B, window $WINDOW, pin=$PIN, $REPEAT rounds;" \
	"load average $(cut -d' ' -f1-3 /proc/loadavg) on $(nproc) CPUs"
declare -A MED
for b in "${BROKERS[@]}"; do
	MED[$b]=$(printf '%s' "${RATES[$b]}" | median)
	printf '%-10s median %8s msg/s   runs: %s\n' "$b" "${MED[$b]}" "${RATES[$b]}"
done
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "-" }'; }
echo "iotgw (durable) / iotgw-mem: $(ratio "${MED[iotgw]}" "${MED[iotgw-mem]}")"
if [[ -n ${MED[mosquitto]:-} ]]; then
	echo "iotgw (durable) / mosquitto: $(ratio "${MED[iotgw]}" "${MED[mosquitto]}")"
fi
total=$((REPEAT * PAIRS * MSGS))
rss=$(awk '/VmRSS/ {print $2}' "/proc/${PID[iotgw]}/status" 2>/dev/null || echo '?')
hwm=$(awk '/VmHWM/ {print $2}' "/proc/${PID[iotgw]}/status" 2>/dev/null || echo '?')
disk=$(du -sk "$TMP/run-iotgw/data" 2>/dev/null | cut -f1)
apparent=$(du -sk --apparent-size "$TMP/run-iotgw/data" 2>/dev/null | cut -f1)
echo "iotgw after $total messages: RSS ${rss} kB (peak ${hwm} kB), store.dir ${disk} kB (${apparent} kB apparent)"
