#!/usr/bin/env bash
# bench/compare.sh: iotgw vs mosquitto, side by side, same load generator,
# and iotgw's other protocols against its own MQTT path.
#
# Builds ./cmd/iotgw (from IOTGW_SRC) and ./cmd/iotgw-bench into a temp dir,
# starts both brokers on free loopback ports (iotgw with every listener:
# MQTT TCP and WebSocket, MQTT-SN, CoAP, STOMP TCP and WebSocket), and runs
# with iotgw-bench (our own lean clients, standard library only plus
# gorilla/websocket):
#
#   pairs fanin fanout  the MQTT 3.1.1 matrix against both brokers: msg/s,
#                       ratio iotgw/mosquitto, loss, p99
#   latency             p50/p90/p99/max at a steady LAT_RATE msg/s, QoS 1,
#                       PAIRS pairs, both brokers
#   protocols           iotgw only: pairs over every protocol at PROTO_QOS,
#                       plus cross rows (MQTT-SN -> MQTT, CoAP -> MQTT), with
#                       "rate cost vs MQTT" = the MQTT row's msg/s / this row's
#                       and "CPU cost vs MQTT" = this row's broker CPU time per
#                       message / the MQTT row's (from /proc/<pid>/stat; the
#                       cost per message whatever the window and round trips)
#   idle                broker memory per idle connection (one subscription
#                       each): MQTT TCP on both, MQTT WebSocket on iotgw
#   quiet               round trips on quiet MQTT connections: PINGREQ,
#                       SUBSCRIBE (a new filter each time) and QoS 1 PUBLISH
#                       (no subscriber), each after QUIET_GAPS of silence;
#                       both brokers in one run, interleaved in a random order
#                       per round; p50/p90/p99 and ratios iotgw/mosquitto
#   order               cross-client ordering probe: fresh subscriber and
#                       publisher idle for ORDER_IDLE, then SUBSCRIBE t and at
#                       once (no SUBACK wait) PUBLISH t at QoS 0 from the other
#                       client; misses of ORDER_TRIALS per subscriber protocol
#                       (ORDER_PROTOS; STOMP and MQTT-SN on iotgw only), both
#                       brokers interleaved per trial
#   lowrate             latency at LOWRATE_RATE msg/s over LOWRATE_PAIRS pairs
#                       (one message a second per pair at the defaults), QoS
#                       LOWRATE_QOS, the brokers alternating; each publisher's
#                       first message is not timed (-warmup 1: mosquitto
#                       without TCP_NODELAY holds the first PUBLISH after
#                       SUBACK for the subscriber's 40 ms delayed ACK)
#   fanin0              QoS 0 fan-in firehose: FANIN0_PUBS publishers with no
#                       end-to-end credit (-window 0), FANIN0_MSGS each, to one
#                       subscriber on bench/fanin/#: delivered/sent, loss,
#                       msg/s and the broker's peak RSS (VmRSS every 50 ms);
#                       a fresh broker per run, alternating
#   tls                 MQTT over TLS on both brokers (issue 15), one ECDSA
#                       P-256 certificate from 'iotgw cert dev' for both
#                       (mosquitto: a second listener with cafile, certfile,
#                       keyfile): connection setup rate (TLS_CONNECTS
#                       connects by TLS_PARALLEL workers, each TCP + full TLS
#                       handshake + CONNECT/CONNACK + DISCONNECT; plaintext
#                       rows too, for the cost of TLS) with setup p50/p99 and
#                       the broker's CPU per connection; QoS TLS_QOS pairs
#                       over TLS; memory per idle TLS connection (TLS_IDLE_N,
#                       a fresh broker each)
#
# and prints the tables. A default run takes about 4 minutes on an idle
# 2-core machine, builds included; every run is capped by DURATION (quiet and
# order by their own schedule). order, lowrate and tls are not in the default
# list (about 2, 1 and 2 minutes more): SCENARIOS="quiet order lowrate fanin0",
# PIN=1 SCENARIOS=tls bench/compare.sh.
#
# Usage (from anywhere in the checkout):
#   bench/compare.sh                    # everything, both brokers
#   PIN=1 bench/compare.sh              # brokers on CPU 0, load generator on CPU 1
#   REPEAT=3 bench/compare.sh           # 3 runs per case, tables show the median
#   SCENARIOS="pairs latency" QOS="1" bench/compare.sh
#   SCENARIOS=protocols PROTOS="mqtt coap" bench/compare.sh
#   IOTGW_SRC=/tmp/wt bench/compare.sh  # benchmark iotgw built from another checkout
#                                       # (e.g. a clean worktree of main)
#
# Requirements: Go, and Debian's mosquitto (apt-get install -y mosquitto).
# Either broker is skipped with a message when it cannot be built or found;
# the other still runs. Traffic goes to 127.0.0.1 only, every run is bounded
# by DURATION, and both brokers are stopped on exit, including on Ctrl-C.
#
# Knobs (environment, default in brackets):
#   SCENARIOS     which sections [pairs fanin fanout latency protocols idle quiet fanin0]
#                 (also: order lowrate tls)
#   QOS           QoS levels of the matrix                  [0 1 2]
#   PAIRS         publisher/subscriber pairs                [10]
#   FAN           publishers in fanin, subscribers in fanout [20]
#   MSGS          messages per publisher                    [10000]
#   SIZE          payload bytes                             [64]
#   WINDOW        in-flight messages per publisher          [100]
#   E2E=1         matrix: also bound QoS 1/2 by end-to-end delivery, not only broker acks [0]
#   LAT_RATE      latency: offered msg/s over PAIRS pairs   [20000]
#   LAT_SECS      latency: seconds of steady load per run   [5]
#   PROTOS        protocols section: protocols ("mqtt" is the cost baseline)
#                                 [mqtt mqtt5 mqtt-ws mqtt5-ws mqttsn coap stomp stomp-ws]
#   CROSS         protocols section: publisher:subscriber rows [mqttsn:mqtt coap:mqtt]
#   PROTO_QOS     protocols section: QoS levels             [0 1]
#   PROTO_E2E     protocols section: end-to-end credit at QoS 1/2 too [1]
#   PROTO_RATE    protocols section: also run every row at this steady offered
#                 msg/s for PROTO_RATE_SECS s (0: skip): CPU per message
#                 at equal load                             [10000 / 3]
#   WINDOW_SN     MQTT-SN window / MSGS_SN messages per publisher [10 / 5000]
#   WINDOW_COAP   CoAP window / MSGS_COAP messages per publisher  [5 / 2000]
#   IDLE_N        idle connections for the memory test      [15000]
#   IDLE_PROTOS   idle: protocols on iotgw (mosquitto: mqtt only) [mqtt mqtt-ws]
#   QUIET_GAPS    quiet: silences before each request      [20ms,200ms]
#   QUIET_SAMPLES quiet: samples per broker and kind at the longest gap
#                 (shorter gaps: as many as fit in the same time, <= 10x) [100]
#   QUIET_KINDS   quiet: request kinds                      [ping,subscribe,puback]
#   ORDER_TRIALS  order: probes per broker and subscriber protocol [200]
#   ORDER_IDLE    order: quiet time of the fresh connections before the probe [200ms]
#   ORDER_WAIT    order: how long the subscriber waits before a miss [300ms]
#   ORDER_PROTOS  order: subscriber protocols; the publisher is MQTT 3.1.1
#                                                            [mqtt mqtt5 stomp mqttsn]
#   LOWRATE_RATE  lowrate: offered msg/s over all pairs    [100]
#   LOWRATE_PAIRS lowrate: publisher/subscriber pairs       [100]
#   LOWRATE_SECS  lowrate: seconds per run                  [10]
#   LOWRATE_QOS   lowrate: QoS levels                       [0 1]
#   FANIN0_PUBS   fanin0: publishers                        [100]
#   FANIN0_MSGS   fanin0: messages per publisher            [2000]
#   TLS_CONNECTS  tls: connections per connect run           [3000]
#   TLS_PARALLEL  tls: concurrent connect workers            [8]
#   TLS_QOS       tls: QoS levels of the pairs over TLS      [1]
#   TLS_IDLE_N    tls: idle TLS connections                  [10000]
#   DURATION      hard bound per run                        [20s]
#   REPEAT        runs per case (median by rate is shown)   [1]
#   PIN=1         taskset -c 0 brokers, -c 1 load generator  [0]
#   MOSQ_NODELAY=1 add "set_tcp_nodelay true" to mosquitto.conf [0]
#   MOSQUITTO     mosquitto binary                          [mosquitto on PATH, else /usr/sbin/mosquitto]
#   IOTGW_SRC     checkout whose ./cmd/iotgw is benchmarked [this script's checkout]
#   OUT           also keep the raw JSON lines in this file [unset]
#   KEEP=1        keep the temp dir (binaries, logs, configs) [0]
#
# How to read it: msg/s is deliveries per second at the subscribers, from the
# first publish to the last delivery. QoS 0 publishers are paced by end-to-end
# credit (WINDOW messages not yet seen by subscribers); QoS 1/2 publishers by
# broker acknowledgements (PUBACK/PUBCOMP, STOMP RECEIPT, CoAP ACK), so a
# broker that acknowledges faster than it can deliver shows up as loss, not as
# a stalled publisher.
#
# The protocols section runs with end-to-end credit (PROTO_E2E=1) so that
# every row is a sustainable, loss-free rate and the cost column compares like
# with like: iotgw delivers to an MQTT-SN or CoAP subscriber one QoS 1 message
# per round trip (mqttsn.max_inflight 1, one CON notification at a time), and
# without end-to-end credit those subscribers' queues overflow. The UDP
# protocols use small windows (WINDOW_SN, WINDOW_COAP): iotgw's UDP sockets
# keep the kernel's default receive buffer, and larger bursts are dropped there
# (QoS 0 loss, QoS 1 retransmissions after -retry). The table shows each row's
# window.
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
IOTGW_SRC=${IOTGW_SRC:-$ROOT}
# iotgw refuses environment variables IOTGW_* that name no configuration key:
# keep ours to this script.
export -n IOTGW_SRC
SCENARIOS=${SCENARIOS:-pairs fanin fanout latency protocols idle quiet fanin0}
QOS=${QOS:-0 1 2}
PAIRS=${PAIRS:-10}
FAN=${FAN:-20}
MSGS=${MSGS:-10000}
SIZE=${SIZE:-64}
WINDOW=${WINDOW:-100}
E2E=${E2E:-0}
LAT_RATE=${LAT_RATE:-20000}
LAT_SECS=${LAT_SECS:-5}
PROTOS=${PROTOS:-mqtt mqtt5 mqtt-ws mqtt5-ws mqttsn coap stomp stomp-ws}
CROSS=${CROSS:-mqttsn:mqtt coap:mqtt}
PROTO_QOS=${PROTO_QOS:-0 1}
PROTO_E2E=${PROTO_E2E:-1}
PROTO_RATE=${PROTO_RATE:-10000}
PROTO_RATE_SECS=${PROTO_RATE_SECS:-3}
WINDOW_SN=${WINDOW_SN:-10}
MSGS_SN=${MSGS_SN:-5000}
WINDOW_COAP=${WINDOW_COAP:-5}
MSGS_COAP=${MSGS_COAP:-2000}
IDLE_N=${IDLE_N:-15000}
IDLE_PROTOS=${IDLE_PROTOS:-mqtt mqtt-ws}
QUIET_GAPS=${QUIET_GAPS:-20ms,200ms}
QUIET_SAMPLES=${QUIET_SAMPLES:-100}
QUIET_KINDS=${QUIET_KINDS:-ping,subscribe,puback}
ORDER_TRIALS=${ORDER_TRIALS:-200}
ORDER_IDLE=${ORDER_IDLE:-200ms}
ORDER_WAIT=${ORDER_WAIT:-300ms}
ORDER_PROTOS=${ORDER_PROTOS:-mqtt mqtt5 stomp mqttsn}
LOWRATE_RATE=${LOWRATE_RATE:-100}
LOWRATE_PAIRS=${LOWRATE_PAIRS:-100}
LOWRATE_SECS=${LOWRATE_SECS:-10}
LOWRATE_QOS=${LOWRATE_QOS:-0 1}
FANIN0_PUBS=${FANIN0_PUBS:-100}
FANIN0_MSGS=${FANIN0_MSGS:-2000}
TLS_CONNECTS=${TLS_CONNECTS:-3000}
TLS_PARALLEL=${TLS_PARALLEL:-8}
TLS_QOS=${TLS_QOS:-1}
TLS_IDLE_N=${TLS_IDLE_N:-10000}
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
log "building iotgw from $IOTGW_SRC ($(git -C "$IOTGW_SRC" describe --always --dirty 2>/dev/null || echo 'not a git checkout'))"
if (cd "$IOTGW_SRC" && go build -o "$TMP/iotgw" ./cmd/iotgw) >"$TMP/iotgw-build.log" 2>&1; then
	BROKERS+=(iotgw)
else
	log "iotgw: SKIPPED, 'go build ./cmd/iotgw' in $IOTGW_SRC failed (IOTGW_SRC= a clean checkout?):"
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
IDLE_NOTE=
if ((soft < want_fds)); then
	IDLE_NOTE="open-file limit $soft (hard $(ulimit -Hn)): idle test reduced from $IDLE_N to $((soft - 1024)) connections"
	IDLE_N=$((soft - 1024))
	log "$IDLE_NOTE"
fi

# --- brokers ----------------------------------------------------------------
# start_broker NAME sets BROKER_PID and BROKER_ADDR (MQTT over TCP) for a
# fresh instance, and for iotgw PROTO_ADDR[protocol] for every listener.
declare -A PROTO_ADDR
TAKEN=" "
# free_port [-free-port|-free-udp-port] prints a free loopback port not
# handed out before in this run (the kernel may offer one twice).
free_port() {
	local p
	for _ in $(seq 20); do
		p=$("$TMP/iotgw-bench" "$1")
		if [[ $TAKEN != *" $p "* ]]; then
			TAKEN+="$p "
			echo "$p"
			return
		fi
	done
	echo "$p"
}
# With TLS_CERTS set (the tls section) each broker also gets an MQTT over
# TLS listener on BROKER_TLS_ADDR, on the same certificate and key.
TLS_CERTS=
start_broker() {
	local name=$1 port tls_env=()
	port=$(free_port -free-udp-port)
	BROKER_ADDR=127.0.0.1:$port
	BROKER_TLS_ADDR=
	if [[ -n $TLS_CERTS ]]; then BROKER_TLS_ADDR=127.0.0.1:$(free_port -free-port); fi
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
			if [[ -n $BROKER_TLS_ADDR ]]; then
				# As root mosquitto switches to its own user, which
				# cannot read our 0600 key in our 0700 temp dir.
				echo "user $(id -un)"
				echo "listener ${BROKER_TLS_ADDR##*:} 127.0.0.1"
				echo "cafile $TLS_CERTS/ca.pem"
				echo "certfile $TLS_CERTS/server.pem"
				echo "keyfile $TLS_CERTS/server-key.pem"
			fi
		} >"$TMP/mosquitto-$port.conf"
		"${PIN_BROKER[@]+"${PIN_BROKER[@]}"}" "$MOSQUITTO" -c "$TMP/mosquitto-$port.conf" \
			>"$TMP/mosquitto-$port.log" 2>&1 &
		;;
	iotgw)
		# Every listener on its own free port, configuration otherwise
		# at the defaults. The UDP ports must be free for UDP.
		local ws sn coap stomp stompws
		ws=127.0.0.1:$(free_port -free-port)
		sn=127.0.0.1:$(free_port -free-udp-port)
		coap=127.0.0.1:$(free_port -free-udp-port)
		stomp=127.0.0.1:$(free_port -free-port)
		stompws=127.0.0.1:$(free_port -free-port)
		PROTO_ADDR=([mqtt]=$BROKER_ADDR [mqtt5]=$BROKER_ADDR [mqtt-ws]=$ws [mqtt5-ws]=$ws
			[mqttsn]=$sn [coap]=$coap [stomp]=$stomp [stomp-ws]=$stompws)
		if [[ -n $BROKER_TLS_ADDR ]]; then
			# mqtt.tls only: the other secured listeners would take
			# their default ports once a certificate is set.
			tls_env=(IOTGW_MQTT_TLS="$BROKER_TLS_ADDR" IOTGW_MQTT_WSS= IOTGW_STOMP_TLS= IOTGW_STOMP_WSS=
				IOTGW_TLS_CERT_FILE="$TLS_CERTS/server.pem" IOTGW_TLS_KEY_FILE="$TLS_CERTS/server-key.pem"
				IOTGW_TLS_CA_FILE="$TLS_CERTS/ca.pem")
		fi
		IOTGW_MQTT_TCP=$BROKER_ADDR IOTGW_MQTT_WS=$ws IOTGW_MQTTSN_UDP=$sn IOTGW_COAP_UDP=$coap \
			IOTGW_STOMP_TCP=$stomp IOTGW_STOMP_WS=$stompws IOTGW_LOG_LEVEL=warn \
			"${PIN_BROKER[@]+"${PIN_BROKER[@]}"}" env "${tls_env[@]+"${tls_env[@]}"}" "$TMP/iotgw" \
			>"$TMP/iotgw-$port.log" 2>&1 &
		;;
	esac
	# taskset, env and the env assignments exec, so $! is the broker itself:
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

# jfield LINE NAME prints field NAME of a JSON result line (flat: strings
# and numbers only), or nothing when it is absent.
jfield() {
	printf '%s' "$1" | sed -n -e 's/.*"'"$2"'":"\([^"]*\)".*/\1/p;t' -e 's/.*"'"$2"'":\([-0-9.eE+]*\).*/\1/p'
}

# bench_run ARGS... runs the load generator with -json into $TMP/case.json.
# In the background plus 'wait' because bash runs traps only between
# foreground commands: Ctrl-C or TERM must not wait out a long run. It
# returns the generator's exit status and logs when there was no output.
bench_run() {
	"${BENCH[@]}" -json "$@" >"$TMP/case.json" 2>>"$TMP/bench.err" &
	BENCH_PID=$!
	local rc=0
	wait "$BENCH_PID" || rc=$?
	BENCH_PID=
	if [[ ! -s $TMP/case.json ]]; then
		log "  load generator produced no result (exit status $rc$( ((rc > 128)) && echo ", signal $((rc - 128))")); stderr tail:"
		tail -n 5 "$TMP/bench.err" >&2 || true
		return 1
	fi
	cat "$TMP/case.json" >>"$RESULTS"
}

# run_case BROKER ADDR ARGS... runs one load-generator invocation and keeps
# its JSON line even when it fails, so the table can say what went wrong.
run_case() {
	local name=$1 addr=$2 line rate kib err p99
	shift 2
	bench_run -label "$name" -addr "$addr" -duration "$DURATION" "$@" || return 0
	line=$(cat "$TMP/case.json")
	# A one-line progress note; the table at the end is the real output.
	rate=$(jfield "$line" rate)
	kib=$(jfield "$line" rss_per_conn_kib)
	err=$(jfield "$line" error)
	p99=$(jfield "$line" p99_us)
	if [[ -n $kib ]]; then
		log "  $(printf '%-9s' "$name") $kib KiB/connection"
	elif [[ $(jfield "$line" scenario) == connect ]]; then
		log "  $(printf '%-9s' "$name") $(jfield "$line" connect_rate | cut -d. -f1) conn/s, setup p99 ${p99%.*} µs"
	else
		log "  $(printf '%-9s' "$name") ${rate%.*} msg/s, p99 ${p99%.*} µs, loss $(jfield "$line" loss_pct) %"
	fi
	if [[ -n $err ]]; then log "  $(printf '%-9s' "$name") error: $err"; fi
}

# run_multi ARGS... runs one invocation that measures every live broker at
# once (quiet, order: -addrs) and keeps all its JSON lines, one per broker
# and row. Their run time follows their schedule, so no DURATION.
run_multi() {
	local line
	bench_run "$@" || return 0
	while IFS= read -r line; do
		local what sub p50 p90
		if [[ -n $(jfield "$line" trials) ]]; then
			sub=$(jfield "$line" sub_proto)
			what="${sub:-mqtt} subscriber: $(jfield "$line" misses) misses of $(jfield "$line" trials)"
		else
			p50=$(jfield "$line" p50_us) p90=$(jfield "$line" p90_us)
			what="$(jfield "$line" kind) after $(jfield "$line" gap_ms)ms: p50 ${p50%.*} µs, p90 ${p90%.*} µs"
		fi
		log "  $(printf '%-9s' "$(jfield "$line" label)") $what"
		if [[ -n $(jfield "$line" error) ]]; then log "    error: $(jfield "$line" error)"; fi
	done <"$TMP/case.json"
}

msg_scenarios=()
want_latency=0 want_protocols=0 want_idle=0
want_quiet=0 want_order=0 want_lowrate=0 want_fanin0=0 want_tls=0
for s in $SCENARIOS; do
	case $s in
	pairs | fanin | fanout) msg_scenarios+=("$s") ;;
	latency) want_latency=1 ;;
	protocols) want_protocols=1 ;;
	idle) want_idle=1 ;;
	quiet) want_quiet=1 ;;
	order) want_order=1 ;;
	lowrate) want_lowrate=1 ;;
	fanin0) want_fanin0=1 ;;
	tls) want_tls=1 ;;
	*) log "unknown scenario $s" && exit 2 ;;
	esac
done

# proto_window and proto_msgs PROTOCOL print the window and message count a protocol's
# publishers use in the protocols section (UDP ones are kept small, see top).
proto_window() {
	case $1 in
	mqttsn) echo "$WINDOW_SN" ;;
	coap) echo "$WINDOW_COAP" ;;
	*) echo "$WINDOW" ;;
	esac
}
proto_msgs() {
	case $1 in
	mqttsn) echo "$MSGS_SN" ;;
	coap) echo "$MSGS_COAP" ;;
	*) echo "$MSGS" ;;
	esac
}
min() { if (($1 < $2)); then echo "$1"; else echo "$2"; fi; }

# alive NAME reports (and logs) whether broker NAME is still running.
alive() {
	if kill -0 "${PID[$1]}" 2>/dev/null; then return 0; fi
	log "  $1: broker process has exited; log tail:"
	tail -n 5 "$TMP/$1-${ADDR[$1]##*:}.log" >&2 || true
	return 1
}

if [[ ${#msg_scenarios[@]} -gt 0 || $want_latency == 1 || $want_protocols == 1 || $want_quiet == 1 ||
	$want_order == 1 || $want_lowrate == 1 ]]; then
	# Both brokers run at once and the cases alternate between them, so slow
	# drift on a shared machine hits both sides alike instead of one.
	declare -A ADDR PID IOTGW_ADDR
	live=()
	for b in "${BROKERS[@]}"; do
		if start_broker "$b"; then
			ADDR[$b]=$BROKER_ADDR
			PID[$b]=$BROKER_PID
			live+=("$b")
			if [[ $b == iotgw ]]; then
				for p in "${!PROTO_ADDR[@]}"; do IOTGW_ADDR[$p]=${PROTO_ADDR[$p]}; done
			fi
		fi
	done
	e2e_flag=()
	if [[ $E2E == 1 ]]; then e2e_flag=(-e2e); fi
	for s in "${msg_scenarios[@]+"${msg_scenarios[@]}"}"; do
		case $s in
		pairs) n=$PAIRS ;;
		*) n=$FAN ;;
		esac
		for q in $QOS; do
			for r in $(seq "$REPEAT"); do
				log "$s n=$n qos=$q run $r/$REPEAT"
				for b in "${live[@]+"${live[@]}"}"; do
					alive "$b" || continue
					run_case "$b" "${ADDR[$b]}" -scenario "$s" -qos "$q" -n "$n" -msgs "$MSGS" \
						-size "$SIZE" -window "$WINDOW" "${e2e_flag[@]+"${e2e_flag[@]}"}"
				done
			done
		done
	done

	if [[ $want_latency == 1 ]]; then
		lat_msgs=$((LAT_RATE * LAT_SECS / PAIRS))
		for r in $(seq "$REPEAT"); do
			log "latency n=$PAIRS qos=1 at $LAT_RATE msg/s for ${LAT_SECS}s run $r/$REPEAT"
			for b in "${live[@]+"${live[@]}"}"; do
				alive "$b" || continue
				run_case "$b" "${ADDR[$b]}" -scenario latency -rate "$LAT_RATE" -qos 1 -n "$PAIRS" \
					-msgs "$lat_msgs" -size "$SIZE" -window "$WINDOW"
			done
		done
	fi

	if [[ $want_lowrate == 1 ]]; then
		lowrate_msgs=$((LOWRATE_RATE * LOWRATE_SECS / LOWRATE_PAIRS))
		for q in $LOWRATE_QOS; do
			for r in $(seq "$REPEAT"); do
				log "lowrate n=$LOWRATE_PAIRS qos=$q at $LOWRATE_RATE msg/s for ${LOWRATE_SECS}s run $r/$REPEAT"
				for b in "${live[@]+"${live[@]}"}"; do
					alive "$b" || continue
					run_case "$b" "${ADDR[$b]}" -tag lowrate -scenario latency -rate "$LOWRATE_RATE" -qos "$q" \
						-n "$LOWRATE_PAIRS" -msgs "$lowrate_msgs" -warmup 1 -size "$SIZE" -window "$WINDOW" \
						-duration "$((LOWRATE_SECS + 20))s"
				done
			done
		done
	fi

	# quiet and order measure every live broker in one run, interleaved.
	multi_addrs=
	for b in "${live[@]+"${live[@]}"}"; do
		if alive "$b"; then multi_addrs+="$b=${ADDR[$b]},"; fi
	done
	multi_addrs=${multi_addrs%,}
	if [[ $want_quiet == 1 && -n $multi_addrs ]]; then
		for r in $(seq "$REPEAT"); do
			log "quiet gaps $QUIET_GAPS, $QUIET_SAMPLES samples at the longest, $multi_addrs interleaved, run $r/$REPEAT"
			run_multi -scenario quiet -addrs "$multi_addrs" -quiet-gaps "$QUIET_GAPS" \
				-quiet-samples "$QUIET_SAMPLES" -quiet-kinds "$QUIET_KINDS" -size "$SIZE"
		done
	fi
	if [[ $want_order == 1 && -n $multi_addrs ]]; then
		# STOMP and MQTT-SN subscribers exist on iotgw only; MQTT ones
		# use each broker's MQTT address.
		sub_addrs=
		if [[ -n ${PID[iotgw]:-} ]]; then
			for p in $ORDER_PROTOS; do
				case $p in
				mqtt | mqtt5) ;;
				*) sub_addrs+="iotgw/$p=${IOTGW_ADDR[$p]},";;
				esac
			done
		fi
		order_protos=$(echo $ORDER_PROTOS | tr ' ' ,)
		for r in $(seq "$REPEAT"); do
			log "order $ORDER_TRIALS trials, idle $ORDER_IDLE, subscribers $order_protos, run $r/$REPEAT"
			run_multi -scenario order -addrs "$multi_addrs" -sub-addrs "${sub_addrs%,}" -order-protos "$order_protos" \
				-trials "$ORDER_TRIALS" -idle "$ORDER_IDLE" -order-wait "$ORDER_WAIT"
		done
	fi

	if [[ $want_protocols == 1 && -n ${PID[iotgw]:-} ]]; then
		proto_e2e=()
		if [[ $PROTO_E2E == 1 ]]; then proto_e2e=(-e2e); fi
		rows=()
		for p in $PROTOS; do rows+=("$p:$p"); done
		for c in $CROSS; do rows+=("$c"); done
		for row in "${rows[@]}"; do
			pp=${row%%:*} sp=${row#*:}
			if [[ -z ${IOTGW_ADDR[$pp]:-} || -z ${IOTGW_ADDR[$sp]:-} ]]; then
				log "unknown protocol in row $row"
				continue
			fi
			win=$(min "$(proto_window "$pp")" "$(proto_window "$sp")")
			msgs=$(min "$(proto_msgs "$pp")" "$(proto_msgs "$sp")")
			for q in $PROTO_QOS; do
				for r in $(seq "$REPEAT"); do
					log "protocols $pp -> $sp n=$PAIRS qos=$q run $r/$REPEAT"
					alive iotgw || continue
					run_case iotgw "${IOTGW_ADDR[$pp]}" -tag proto -scenario pairs -qos "$q" -n "$PAIRS" \
						-pub-proto "$pp" -sub-proto "$sp" -pub-addr "${IOTGW_ADDR[$pp]}" \
						-sub-addr "${IOTGW_ADDR[$sp]}" -msgs "$msgs" -size "$SIZE" -window "$win" \
						-broker-pid "${PID[iotgw]}" "${proto_e2e[@]+"${proto_e2e[@]}"}"
					if ((PROTO_RATE > 0)); then
						# The same load for every protocol: CPU per message
						# compares like with like (at full speed TCP
						# coalesces many messages per syscall, UDP cannot).
						log "protocols $pp -> $sp n=$PAIRS qos=$q at $PROTO_RATE msg/s run $r/$REPEAT"
						run_case iotgw "${IOTGW_ADDR[$pp]}" -tag proto -scenario latency -rate "$PROTO_RATE" \
							-qos "$q" -n "$PAIRS" -pub-proto "$pp" -sub-proto "$sp" -pub-addr "${IOTGW_ADDR[$pp]}" \
							-sub-addr "${IOTGW_ADDR[$sp]}" -msgs "$((PROTO_RATE * PROTO_RATE_SECS / PAIRS))" \
							-size "$SIZE" -window "$win" -broker-pid "${PID[iotgw]}"
					fi
				done
			done
		done
	elif [[ $want_protocols == 1 ]]; then
		log "protocols: SKIPPED, iotgw is not running"
	fi
	for b in "${live[@]+"${live[@]}"}"; do stop_pid "${PID[$b]}"; done
fi

if [[ $want_idle == 1 ]]; then
	# A fresh broker per measurement: memory freed by earlier runs would be
	# reused by new connections and hide their real cost.
	idle_runs=()
	for b in "${BROKERS[@]}"; do
		case $b in
		iotgw) for p in $IDLE_PROTOS; do idle_runs+=("$b:$p"); done ;;
		*) idle_runs+=("$b:mqtt") ;;
		esac
	done
	for ir in "${idle_runs[@]}"; do
		b=${ir%%:*} p=${ir#*:}
		log "idle n=$IDLE_N $p on a fresh $b"
		if start_broker "$b"; then
			addr=$BROKER_ADDR
			if [[ $b == iotgw ]]; then addr=${PROTO_ADDR[$p]}; fi
			run_case "$b" "$addr" -proto "$p" -scenario idle -qos 1 -n "$IDLE_N" -broker-pid "$BROKER_PID" \
				-duration 60s
			stop_pid "$BROKER_PID"
		fi
	done
fi

if [[ $want_fanin0 == 1 ]]; then
	# A fresh broker per run, like idle: the peak RSS must be this run's,
	# not what earlier runs left allocated.
	for r in $(seq "$REPEAT"); do
		for b in "${BROKERS[@]}"; do
			log "fanin0 $FANIN0_PUBS->1 qos=0 firehose (window 0), $FANIN0_MSGS msgs each, fresh $b, run $r/$REPEAT"
			if start_broker "$b"; then
				run_case "$b" "$BROKER_ADDR" -tag fanin0 -scenario fanin -qos 0 -n "$FANIN0_PUBS" \
					-msgs "$FANIN0_MSGS" -window 0 -size "$SIZE" -broker-pid "$BROKER_PID"
				stop_pid "$BROKER_PID"
			fi
		done
	done
fi

if [[ $want_tls == 1 ]]; then
	# One ECDSA P-256 set for both brokers, from iotgw's own dev command.
	if [[ -x $TMP/iotgw ]] && "$TMP/iotgw" cert dev "$TMP/certs" >/dev/null; then
		TLS_CERTS=$TMP/certs
	else
		log "tls: SKIPPED, needs the iotgw binary's 'cert dev' for the certificates"
	fi
fi
if [[ -n $TLS_CERTS ]]; then
	tls_flags=(-tls-ca "$TLS_CERTS/ca.pem")
	# Connection setup and QoS 1 pairs: both brokers at once, alternating,
	# as in the matrix. Plaintext connect rows first, for the TLS cost.
	declare -A TADDR TTLS TPID
	tlive=()
	for b in "${BROKERS[@]}"; do
		if start_broker "$b"; then
			TADDR[$b]=$BROKER_ADDR TTLS[$b]=$BROKER_TLS_ADDR TPID[$b]=$BROKER_PID
			tlive+=("$b")
		fi
	done
	for r in $(seq "$REPEAT"); do
		for mode in plain tls; do
			log "tls: connect $TLS_CONNECTS ($mode), $TLS_PARALLEL in parallel, run $r/$REPEAT"
			for b in "${tlive[@]+"${tlive[@]}"}"; do
				kill -0 "${TPID[$b]}" 2>/dev/null || continue
				if [[ $mode == tls ]]; then
					run_case "$b" "${TTLS[$b]}" "${tls_flags[@]}" -scenario connect -n "$TLS_CONNECTS" \
						-parallel "$TLS_PARALLEL" -broker-pid "${TPID[$b]}" -duration 60s
				else
					run_case "$b" "${TADDR[$b]}" -scenario connect -n "$TLS_CONNECTS" \
						-parallel "$TLS_PARALLEL" -broker-pid "${TPID[$b]}" -duration 60s
				fi
			done
		done
		for q in $TLS_QOS; do
			log "tls: pairs n=$PAIRS qos=$q over TLS, run $r/$REPEAT"
			for b in "${tlive[@]+"${tlive[@]}"}"; do
				kill -0 "${TPID[$b]}" 2>/dev/null || continue
				run_case "$b" "${TTLS[$b]}" "${tls_flags[@]}" -scenario pairs -qos "$q" -n "$PAIRS" -msgs "$MSGS" \
					-size "$SIZE" -window "$WINDOW" -broker-pid "${TPID[$b]}"
			done
		done
	done
	for b in "${tlive[@]+"${tlive[@]}"}"; do stop_pid "${TPID[$b]}"; done
	# Idle TLS connections: a fresh broker each, like idle.
	for b in "${BROKERS[@]}"; do
		log "tls: idle n=$TLS_IDLE_N over TLS on a fresh $b"
		if start_broker "$b"; then
			run_case "$b" "$BROKER_TLS_ADDR" "${tls_flags[@]}" -scenario idle -qos 1 -n "$TLS_IDLE_N" \
				-broker-pid "$BROKER_PID" -duration 90s
			stop_pid "$BROKER_PID"
		fi
	done
	TLS_CERTS=
fi

LOAD_END=$(cut -d' ' -f1 /proc/loadavg 2>/dev/null || echo '?')
echo
echo "iotgw-bench: size=${SIZE}B window=$WINDOW msgs/publisher=$MSGS e2e=$E2E pin=$PIN repeat=$REPEAT" \
	"brokers: ${BROKERS[*]}; iotgw from $IOTGW_SRC ($(git -C "$IOTGW_SRC" describe --always --dirty 2>/dev/null || echo '?'))"
if [[ -n $IDLE_NOTE && $want_idle == 1 ]]; then echo "$IDLE_NOTE"; fi
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
