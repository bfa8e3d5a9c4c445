#!/usr/bin/env bash
# An independent check of scenario 1 (issue 7): the three ingest shapes, driven by Postfix's
# smtp-source alone, against smtpmock in-process, aiosmtpd with a do-nothing handler and
# Postfix's smtp-sink. It shares no code with run.py / ingest.py / _harness.py: only the server
# scripts of benchmarks/baselines/ are used, so that a mistake in the harness (timing, counting,
# starting servers) cannot show up in both. Its ratios should agree with run.py's ingest rows
# ("mem" column) on the same machine.
#
#   bash benchmarks/crosscheck.sh                  # 3 repetitions, median
#   REPEAT=5 SINGLE=2000 CONCURRENT=4000 REUSE=1000 bash benchmarks/crosscheck.sh
#   PYTHON=/path/to/python bash benchmarks/crosscheck.sh   # default: the venv's python
#
# Shapes (1 KiB of body, as run.py): 1 client, new connection per message (smtp-source -s 1);
# 10 clients, new connection per message (-s 10); 10 clients x 100 messages per connection
# (-s 10 -d -m 1000: -d keeps each session's connection for its next message, and the -m
# messages are shared by the sessions). Each server is warmed up with 20 messages, each run is
# timed with `date +%s.%N` around smtp-source, and the rate counts what the server says it
# stored (its `count` answer) or, for smtp-sink, which keeps no count, what smtp-source sent
# when it exited 0. Every process started here is ended on exit, Ctrl-C or SIGTERM.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(dirname "$HERE")
PYTHON=${PYTHON:-$REPO/.venv/bin/python}
[ -x "$PYTHON" ] || PYTHON=/work/main/.venv/bin/python
SOURCE=${SMTP_SOURCE:-/usr/sbin/smtp-source}
SINK=${SMTP_SINK:-/usr/sbin/smtp-sink}
REPEAT=${REPEAT:-3}
SINGLE=${SINGLE:-2000}
CONCURRENT=${CONCURRENT:-4000}
REUSE=${REUSE:-1000}
RUN_TIMEOUT=${RUN_TIMEOUT:-60}
HOST=127.0.0.1

for tool in "$SOURCE" "$SINK"; do
    if [ ! -x "$tool" ]; then
        echo "crosscheck: $tool not found (apt-get install postfix)" >&2
        exit 2
    fi
done

WORKDIR=$(mktemp -d "${TMPDIR:-/tmp}/smtpmock-crosscheck.XXXXXX")
PIDS=()
SERVER_PID=""
SRV_IN=""
SRV_OUT=""

cleanup() {
    local pid
    for pid in "${PIDS[@]}"; do
        kill -TERM "$pid" 2>/dev/null || true
    done
    for pid in "${PIDS[@]}"; do
        wait "$pid" 2>/dev/null || true
    done
    rm -rf "$WORKDIR"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

log() { echo "[$(date +%H:%M:%S)] $*" >&2; }

# --------------------------------------------------------------------------- servers
# A baseline script runs as a coprocess: it prints "PORT <n>", answers "count" with
# "COUNT <n>" and exits at end of input.

PORT=""

start_script() {  # $1: script under baselines/
    coproc SRV { exec "$PYTHON" "$HERE/baselines/$1" 2>>"$WORKDIR/server-stderr.log"; }
    # Kept apart: bash unsets SRV and SRV_PID as soon as the coprocess has exited.
    SERVER_PID=$SRV_PID SRV_OUT=${SRV[0]} SRV_IN=${SRV[1]}
    PIDS+=("$SERVER_PID")
    local line
    if ! read -r -t 60 -u "$SRV_OUT" line || [[ $line != PORT\ * ]]; then
        echo "crosscheck: $1 did not print PORT: ${line:-nothing}" >&2
        tail -5 "$WORKDIR/server-stderr.log" >&2 || true
        exit 1
    fi
    PORT=${line#PORT }
}

script_count() {
    local line
    echo count >&"$SRV_IN"
    read -r -t 30 -u "$SRV_OUT" line
    [[ $line == COUNT\ * ]] || { echo "crosscheck: bad count answer: $line" >&2; exit 1; }
    echo "${line#COUNT }"
}

stop_script() {
    local fd=$SRV_IN
    exec {fd}>&-  # end of input: the script stops its server and exits
    local i
    for i in $(seq 50); do
        kill -0 "$SERVER_PID" 2>/dev/null || break
        sleep 0.1
    done
    kill -TERM "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
}

listening() {  # $1: port; true once something answers with an SMTP greeting
    local greeting
    greeting=$( (exec 3<>"/dev/tcp/$HOST/$1" && read -r -t 2 line <&3 && echo "$line") \
        2>/dev/null) || return 1
    [[ $greeting == 220* ]]
}

start_sink() {
    local try port
    for try in $(seq 20); do
        port=$((20000 + RANDOM % 40000))
        listening "$port" && continue  # taken
        local argv=("$SINK")
        [ "$(id -u)" -eq 0 ] && argv+=(-u nobody)  # smtp-sink refuses root without it
        "${argv[@]}" "$HOST:$port" 256 >>"$WORKDIR/sink.log" 2>&1 &
        SERVER_PID=$!
        PIDS+=("$SERVER_PID")
        local i
        for i in $(seq 100); do
            if listening "$port"; then
                PORT=$port
                return 0
            fi
            kill -0 "$SERVER_PID" 2>/dev/null || break
            sleep 0.05
        done
        kill -TERM "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
    done
    echo "crosscheck: smtp-sink did not start" >&2
    exit 1
}

stop_sink() {
    kill -TERM "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
}

# --------------------------------------------------------------------------- client

# Run smtp-source; set SENT (the -m count when it exited 0, else 0) and SECS.
SENT=0
SECS=0
source_run() {  # $1 sessions, $2 messages, $3 reuse (1/0), $4 port
    local argv=("$SOURCE" -s "$1" -m "$2" -l 1024 -f load@example.com -t rcpt@example.com
        -M localhost -S "load test")
    if [ "$3" = 1 ]; then argv+=(-d); fi
    local t0 t1 status=0 pid
    t0=$(date +%s.%N)
    timeout "$RUN_TIMEOUT" "${argv[@]}" "$HOST:$4" >>"$WORKDIR/source.log" 2>&1 &
    pid=$!
    PIDS+=("$pid")
    wait "$pid" || status=$?
    t1=$(date +%s.%N)
    SECS=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.6f", b - a }')
    if [ "$status" -eq 0 ]; then SENT=$2; else SENT=0; fi
    if [ "$status" -ne 0 ]; then
        log "  smtp-source exited $status: $(tail -1 "$WORKDIR/source.log")"
    fi
}

median() { sort -g | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2];
    else printf "%.6f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

# One server, one shape: start, warm up, REPEAT timed runs; set RATE_MEDIAN (msg/s).
RATE_MEDIAN=0
measure() {  # $1 server (smtpmock|aiosmtpd|smtp-sink), $2 sessions, $3 messages, $4 reuse
    local server=$1 rates=() r before=0 after stored
    case $server in
        smtpmock) start_script smtpmock_inproc.py ;;
        aiosmtpd) start_script aiosmtpd_sink.py ;;
        smtp-sink) start_sink ;;
    esac
    source_run 1 20 1 "$PORT"  # warm-up
    for r in $(seq "$REPEAT"); do
        if [ "$server" != smtp-sink ]; then before=$(script_count); fi
        source_run "$2" "$3" "$4" "$PORT"
        if [ "$server" != smtp-sink ]; then
            after=$(script_count)
            stored=$((after - before))
            if [ "$stored" -ne "$SENT" ]; then
                log "  $server: smtp-source reported $SENT, server stored $stored"
            fi
            SENT=$stored
        fi
        rates+=("$(awk -v n="$SENT" -v s="$SECS" 'BEGIN { printf "%.1f", (s > 0 ? n / s : 0) }')")
        log "  $server run $r: $SENT messages in $SECS s"
    done
    case $server in
        smtp-sink) stop_sink ;;
        *) stop_script ;;
    esac
    RATE_MEDIAN=$(printf '%s\n' "${rates[@]}" | median)
}

# --------------------------------------------------------------------------- the table

SHAPES=(
    "1 client, new connection per message|1|$SINGLE|0"
    "10 clients, new connection per message|10|$CONCURRENT|0"
    "10 clients x 100 messages per connection|10|$REUSE|1"
)
SERVERS=(smtpmock aiosmtpd smtp-sink)

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "-" }'; }

log "crosscheck: smtp-source, $REPEAT runs per shape and server, median; python $PYTHON"
declare -A RATE
for shape in "${SHAPES[@]}"; do
    IFS='|' read -r name sessions messages reuse <<<"$shape"
    log "$name ($messages messages)"
    for server in "${SERVERS[@]}"; do
        measure "$server" "$sessions" "$messages" "$reuse"
        RATE[$name/$server]=$RATE_MEDIAN
    done
done

echo
echo "Cross-check (smtp-source only, median of $REPEAT), 1 KiB messages, msg/s; $(nproc) CPUs"
echo
echo "| shape | smtpmock | aiosmtpd | smtp-sink | smtpmock/aiosmtpd | smtpmock/smtp-sink |"
echo "|---|---:|---:|---:|---:|---:|"
for shape in "${SHAPES[@]}"; do
    IFS='|' read -r name _ _ _ <<<"$shape"
    m=${RATE[$name/smtpmock]} a=${RATE[$name/aiosmtpd]} s=${RATE[$name/smtp-sink]}
    echo "| $name | $m | $a | $s | $(ratio "$m" "$a") | $(ratio "$m" "$s") |"
done
