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
# messages are shared by the sessions). For each shape the three servers run side by side (an
# idle one costs nothing), each warmed up with 20 messages, and the runs are interleaved (a
# round runs every server once, in a rotating order), so a load spike on the machine hits all
# of them rather than one. Each run is timed with `date +%s.%N` around smtp-source, and the
# rate counts what the server says it stored (its `count` answer) or, for smtp-sink, which
# keeps no count, what smtp-source sent when it exited 0. Every process started here is ended on exit, Ctrl-C or SIGTERM.
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
declare -A SPID SPORT SIN SOUT  # per server: process id, port, its stdin and stdout fds

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
# A baseline script prints "PORT <n>", answers "count" with "COUNT <n>" and exits at end of
# input; it is talked to through two named pipes, so that several can run at once.

# A server must not hold the pipes of another (its stdin would then never reach end of input).
close_pipes() {
    local fd
    for fd in "${SIN[@]}" "${SOUT[@]}"; do
        exec {fd}>&-
    done
}

start_script() {  # $1: server name, $2: script under baselines/
    local name=$1 in="$WORKDIR/$1.in" out="$WORKDIR/$1.out" fd_in fd_out line
    rm -f "$in" "$out"
    mkfifo "$in" "$out"
    (close_pipes && exec "$PYTHON" "$HERE/baselines/$2") <"$in" >"$out" \
        2>>"$WORKDIR/$name.stderr" &
    SPID[$name]=$!
    PIDS+=("$!")
    exec {fd_in}>"$in"
    exec {fd_out}<"$out"
    SIN[$name]=$fd_in
    SOUT[$name]=$fd_out
    if ! read -r -t 60 -u "$fd_out" line || [[ $line != PORT\ * ]]; then
        echo "crosscheck: $2 did not print PORT: ${line:-nothing}" >&2
        tail -5 "$WORKDIR/$name.stderr" >&2 || true
        exit 1
    fi
    SPORT[$name]=${line#PORT }
}

script_count() {  # $1: server name
    local line
    echo count >&"${SIN[$1]}"
    read -r -t 30 -u "${SOUT[$1]}" line
    [[ $line == COUNT\ * ]] || { echo "crosscheck: bad count answer from $1: $line" >&2; exit 1; }
    echo "${line#COUNT }"
}

listening() {  # $1: port; true once something answers with an SMTP greeting
    local greeting
    greeting=$( (exec 3<>"/dev/tcp/$HOST/$1" && read -r -t 2 line <&3 && echo "$line") \
        2>/dev/null) || return 1
    [[ $greeting == 220* ]]
}

start_sink() {  # $1: server name
    local try port i pid
    for try in $(seq 20); do
        port=$((20000 + RANDOM % 40000))
        if listening "$port"; then continue; fi  # taken
        local argv=("$SINK")
        if [ "$(id -u)" -eq 0 ]; then argv+=(-u nobody); fi  # smtp-sink refuses root without it
        (close_pipes && exec "${argv[@]}" "$HOST:$port" 256) >>"$WORKDIR/$1.stderr" 2>&1 &
        pid=$!
        PIDS+=("$pid")
        for i in $(seq 100); do
            if listening "$port"; then
                SPID[$1]=$pid
                SPORT[$1]=$port
                return 0
            fi
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.05
        done
        kill -TERM "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    echo "crosscheck: smtp-sink did not start" >&2
    exit 1
}

start_server() {  # $1: server name
    case $1 in
        smtpmock) start_script smtpmock smtpmock_inproc.py ;;
        aiosmtpd) start_script aiosmtpd aiosmtpd_sink.py ;;
        smtp-sink) start_sink smtp-sink ;;
    esac
}

stop_server() {  # $1: server name
    local pid=${SPID[$1]} i
    if [ -n "${SIN[$1]:-}" ]; then
        local fd_in=${SIN[$1]} fd_out=${SOUT[$1]}
        exec {fd_in}>&-  # end of input: the script stops its server and exits
        for i in $(seq 50); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        exec {fd_out}<&-
        unset "SIN[$1]" "SOUT[$1]"
        rm -f "$WORKDIR/$1.in" "$WORKDIR/$1.out"
    fi
    kill -TERM "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
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

median() { sort -g | awk '{ v[NR] = $1 } END { if (NR % 2) printf "%.1f\n", v[(NR + 1) / 2];
    else printf "%.1f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

# One timed run against one server; append its msg/s to RATES[server].
declare -A RATES
timed_run() {  # $1 server, $2 sessions, $3 messages, $4 reuse
    local server=$1 before=0 after stored rate
    if [ "$server" != smtp-sink ]; then before=$(script_count "$server"); fi
    source_run "$2" "$3" "$4" "${SPORT[$server]}"
    if [ "$server" != smtp-sink ]; then
        after=$(script_count "$server")
        stored=$((after - before))
        if [ "$stored" -ne "$SENT" ]; then
            log "  $server: smtp-source reported $SENT, server stored $stored"
        fi
        SENT=$stored
    fi
    rate=$(awk -v n="$SENT" -v s="$SECS" 'BEGIN { printf "%.1f", (s > 0 ? n / s : 0) }')
    RATES[$server]="${RATES[$server]:-} $rate"
    log "  $server: $SENT messages in $SECS s ($rate msg/s)"
}

# One shape: every server started (idle ones cost nothing) and warmed up with 20 messages,
# then REPEAT rounds, each running every server once in a rotating order, so that a load
# spike on the machine hits all of them rather than one; set RATE[shape/server] (median).
declare -A RATE
measure_shape() {  # $1 shape name, $2 sessions, $3 messages, $4 reuse
    local server r k n=${#SERVERS[@]}
    RATES=()
    for server in "${SERVERS[@]}"; do
        start_server "$server"
        source_run 1 20 1 "${SPORT[$server]}"  # warm-up
    done
    for r in $(seq "$REPEAT"); do
        for k in $(seq 0 $((n - 1))); do
            timed_run "${SERVERS[$(((k + r) % n))]}" "$2" "$3" "$4"
        done
    done
    for server in "${SERVERS[@]}"; do
        stop_server "$server"
        # shellcheck disable=SC2086  # one rate per word
        RATE[$1/$server]=$(printf '%s\n' ${RATES[$server]} | median)
    done
}

# --------------------------------------------------------------------------- the table

SERVERS=(smtpmock aiosmtpd smtp-sink)
SHAPES=(
    "1 client, new connection per message|1|$SINGLE|0"
    "10 clients, new connection per message|10|$CONCURRENT|0"
    "10 clients x 100 messages per connection|10|$REUSE|1"
)

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "-" }'; }

log "crosscheck: smtp-source, $REPEAT runs per shape and server, median; python $PYTHON"
for shape in "${SHAPES[@]}"; do
    IFS='|' read -r name sessions messages reuse <<<"$shape"
    log "$name ($messages messages)"
    measure_shape "$name" "$sessions" "$messages" "$reuse"
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
