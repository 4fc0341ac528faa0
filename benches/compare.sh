#!/usr/bin/env bash
# mailsim vs Postfix's smtp-sink: the same workloads against both, in the same run, on loopback.
# See benches/README.md for what is measured and the targets. Usage: benches/compare.sh
#
# Knobs (environment): PORT, MAILSIM_ADDR, SINK_ADDR, MESSAGES, BIG_MESSAGES, BIG_SIZE, CONNS, TLS_SESSIONS,
# TLS_PER_SESSION, TLS_CONNS, IDLE, HOLD, STEP_TIMEOUT, STEPS (default abcd: which workloads),
# SKIP_BUILD=1, NO_MAILSIM=1 (smtp-sink only).
set -uo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
PORT=${PORT:-2525}
MAILSIM_ADDR=${MAILSIM_ADDR:-127.0.0.61}  # every host its own 127/8 address, same port
SINK_ADDR=${SINK_ADDR:-127.0.0.62}
SESSIONS=20
SIZE=1024
MESSAGES=${MESSAGES:-20000}        # (a) messages over 20 persistent sessions
BIG_MESSAGES=${BIG_MESSAGES:-2000} # (a') large messages over 20 persistent sessions
BIG_SIZE=${BIG_SIZE:-102400}
CONNS=${CONNS:-10000}              # (b) messages, one connection each
TLS_SESSIONS=${TLS_SESSIONS:-20}   # (c) 20 sessions x 100 messages
TLS_PER_SESSION=${TLS_PER_SESSION:-100}
TLS_CONNS=${TLS_CONNS:-2000}       # (c) messages, one TLS session each
IDLE=${IDLE:-1000}                 # (d) idle connections
HOLD=${HOLD:-3}
STEP_TIMEOUT=${STEP_TIMEOUT:-300}  # seconds any single step may take
STEPS=${STEPS:-abcd}
FROM=sender@fabrikam.test
TO=bench@contoso.test
MAILSIM=$ROOT/target/release/mailsim
WORK=$(mktemp -d /tmp/mailsim-compare.XXXXXX)
cd "$ROOT" || exit 2  # `mailsim serve` finds its certificates under certs/
# The benchmark measures SMTP: no HTTP API (port 8025 may be taken by a running `mailsim serve`).
export MAILSIM_NO_HTTP=${MAILSIM_NO_HTTP:-true}

for a in "$MAILSIM_ADDR" "$SINK_ADDR"; do
    [[ $a == 127.* ]] || { echo "refusing $a: loopback (127/8) addresses only" >&2; exit 2; }
done

PIDS=()
cleanup() {
    local p
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
    for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null; done
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

log() { printf '%s\n' "$*" >&2; }

# --- prerequisites ----------------------------------------------------------------------------
"$ROOT/.ci/install-postfix" || exit 2
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

if [[ ${SKIP_BUILD:-0} != 1 ]]; then
    log "== cargo build --release -p mailsim"
    (cd "$ROOT" && cargo build --release -q -p mailsim) || { log "build failed"; exit 2; }
fi
[[ -x $MAILSIM ]] || { log "no $MAILSIM"; exit 2; }

# --- servers ----------------------------------------------------------------------------------
port_open() { timeout 1 bash -c "exec 3<>/dev/tcp/$1/$2" 2>/dev/null; }

wait_port() {
    local i
    for i in $(seq 1 100); do
        port_open "$1" "$2" && return 0
        kill -0 "$3" 2>/dev/null || return 1
        sleep 0.1
    done
    return 1
}

SINK_PID=
start_sink() {
    port_open "$SINK_ADDR" "$PORT" && { log "$SINK_ADDR:$PORT is already in use"; exit 2; }
    local user=()
    [[ $(id -u) == 0 ]] && user=(-u nobody)
    /usr/sbin/smtp-sink "${user[@]}" -m 4000 "$SINK_ADDR:$PORT" 4096 >"$WORK/sink.log" 2>&1 &
    SINK_PID=$!
    PIDS+=("$SINK_PID")
    wait_port "$SINK_ADDR" "$PORT" "$SINK_PID" || { log "smtp-sink did not start: $(tail -3 "$WORK/sink.log")"; exit 2; }
}

MAILSIM_PID=
# Starts a fresh `mailsim serve` (a fresh process, so memory is measured from a clean start).
start_mailsim() {
    stop_mailsim
    [[ ${NO_MAILSIM:-0} == 1 ]] && return 1
    port_open "$MAILSIM_ADDR" "$PORT" && { log "$MAILSIM_ADDR:$PORT is already in use"; exit 2; }
    MAILSIM_LOG=${MAILSIM_LOG:-warn} "$MAILSIM" serve --listen "$MAILSIM_ADDR:$PORT" \
        --accepted-domain contoso.test --mailbox "$TO" --max-connections 4000 >"$WORK/serve.log" 2>&1 &
    MAILSIM_PID=$!
    PIDS+=("$MAILSIM_PID")
    if ! wait_port "$MAILSIM_ADDR" "$PORT" "$MAILSIM_PID"; then
        log "mailsim serve did not start; mailsim figures are skipped:"
        tail -5 "$WORK/serve.log" >&2
        MAILSIM_PID=
        return 1
    fi
}

stop_mailsim() {
    if [[ -n $MAILSIM_PID ]]; then
        kill "$MAILSIM_PID" 2>/dev/null
        wait "$MAILSIM_PID" 2>/dev/null
        MAILSIM_PID=
    fi
}

# --- measuring --------------------------------------------------------------------------------
now_ns() { date +%s%N; }

# smtp-source COUNT ARGS... -> prints COUNT per second, or "-" when it failed.
source_rate() {
    local count=$1 s e
    shift
    s=$(now_ns)
    if ! timeout "$STEP_TIMEOUT" /usr/sbin/smtp-source "$@" >"$WORK/source.log" 2>&1; then
        log "smtp-source $*: failed: $(tail -2 "$WORK/source.log")"
        echo -
        return
    fi
    e=$(now_ns)
    awk -v n="$count" -v ns="$((e - s))" 'BEGIN { printf "%.1f", n / (ns / 1e9) }'
}

# mailsim bench ARGS... -> JSON report in $WORK/bench.json (empty when it failed).
bench() {
    if ! timeout "$STEP_TIMEOUT" "$MAILSIM" bench --json --timeout "$STEP_TIMEOUT" "$@" >"$WORK/bench.json" 2>"$WORK/bench.err"; then
        log "mailsim bench $*: failed: $(tail -2 "$WORK/bench.err")"
        : >"$WORK/bench.json"
    fi
}

# jget KEY -> the first numeric value of "KEY" in bench.json, or "-".
jget() {
    local v
    v=$(sed -n "s/.*\"$1\": *\([0-9.eE+-]*\).*/\1/p" "$WORK/bench.json" | head -1)
    [[ -n $v ]] && printf '%.1f' "$v" || echo -
}

bench_errors() { local v; v=$(sed -n 's/.*"errors": *\([0-9]*\).*/\1/p' "$WORK/bench.json" | head -1); echo "${v:--}"; }

ratio() {
    [[ $1 == - || $2 == - ]] && { echo -; return; }
    awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "-" }'
}

verdict() { # VALUE TARGET {ge|le}
    [[ $1 == - ]] && { echo "n/a"; return; }
    awk -v v="$1" -v t="$2" -v op="$3" 'BEGIN { ok = (op == "ge") ? v >= t : v <= t; print ok ? "meets target" : "BELOW TARGET" }'
}

SUMMARY=()
row() { SUMMARY+=("$(printf '%-58s %14s %14s %8s  %s' "$@")"); }

start_sink
have_mailsim=1
start_mailsim || have_mailsim=0
MS=$MAILSIM_ADDR:$PORT
SK=$SINK_ADDR:$PORT

want() { [[ $STEPS == *$1* ]]; }
a_ms=- a_sink=- a_ratio=- ab_ms=- ab_sink=- ab_ms_err=- ab_sink_err=-
b_ms=- b_sink=- b_ratio=- bb_ms=- bb_sink=- bb_ms_err=- bb_sink_err=-
c_msgs=- c_sess=- c_lat=- c_err=- c2_sess=- c2_lat=- c2_err=-
d_plain=- d_tls=- d_sink=-

# (a) 20 persistent plain sessions, 1 KiB messages. smtp-source -d keeps the connection.
if want a; then
    log "== (a) $SESSIONS persistent sessions, $MESSAGES x ${SIZE} B"
    a_sink=$(source_rate "$MESSAGES" -s $SESSIONS -m "$MESSAGES" -l $SIZE -d -f $FROM -t $TO "$SK")
    [[ $have_mailsim == 1 ]] && a_ms=$(source_rate "$MESSAGES" -s $SESSIONS -m "$MESSAGES" -l $SIZE -d -f $FROM -t $TO "$MS")
    a_ratio=$(ratio "$a_ms" "$a_sink")
    bench --server "$SK" --sessions $SESSIONS --messages "$MESSAGES" --size $SIZE --from $FROM --to $TO
    ab_sink=$(jget messages_per_s) ab_sink_err=$(bench_errors)
    if [[ $have_mailsim == 1 ]]; then
        bench --server "$MS" --sessions $SESSIONS --messages "$MESSAGES" --size $SIZE --from $FROM --to $TO
        ab_ms=$(jget messages_per_s) ab_ms_err=$(bench_errors)
    fi
fi

# Peak resident memory of the serve process so far (VmHWM), in MiB.
peak_rss() { awk '/^VmHWM:/ { printf "%.1f", $2 / 1024 }' "/proc/$1/status" 2>/dev/null || echo -; }
a_rss=- big_rss=- big_ms=- big_sink=-
[[ $have_mailsim == 1 ]] && want a && a_rss=$(peak_rss "$MAILSIM_PID")

# (a') large messages, each on a fresh server: 2,000 x 100 KiB over the same 20 sessions (memory
# must not grow with message size: content is not held whole per session).
if want a && [[ $have_mailsim == 1 ]]; then
    log "== (a') $SESSIONS persistent sessions, $BIG_MESSAGES x ${BIG_SIZE} B"
    big_sink=$(source_rate "$BIG_MESSAGES" -s $SESSIONS -m "$BIG_MESSAGES" -l "$BIG_SIZE" -d -f $FROM -t $TO "$SK")
    if start_mailsim; then
        big_ms=$(source_rate "$BIG_MESSAGES" -s $SESSIONS -m "$BIG_MESSAGES" -l "$BIG_SIZE" -d -f $FROM -t $TO "$MS")
        big_rss=$(peak_rss "$MAILSIM_PID")
    fi
fi

# (b) a new connection per message, 20 in parallel (smtp-source's default without -d).
if want b; then
    log "== (b) new connection per message, $SESSIONS parallel, $CONNS messages"
    b_sink=$(source_rate "$CONNS" -s $SESSIONS -m "$CONNS" -l $SIZE -f $FROM -t $TO "$SK")
    [[ $have_mailsim == 1 ]] && b_ms=$(source_rate "$CONNS" -s $SESSIONS -m "$CONNS" -l $SIZE -f $FROM -t $TO "$MS")
    b_ratio=$(ratio "$b_ms" "$b_sink")
    bench --server "$SK" --sessions $SESSIONS --messages "$CONNS" --size $SIZE --new-connection-per-message \
        --from $FROM --to $TO
    bb_sink=$(jget sessions_per_s) bb_sink_err=$(bench_errors)
    if [[ $have_mailsim == 1 ]]; then
        bench --server "$MS" --sessions $SESSIONS --messages "$CONNS" --size $SIZE --new-connection-per-message \
            --from $FROM --to $TO
        bb_ms=$(jget sessions_per_s) bb_ms_err=$(bench_errors)
    fi
fi

# (c) STARTTLS: persistent sessions, then a new TLS session (full handshake) per message.
# smtp-sink has no STARTTLS, so these are mailsim's own figures.
if want c && [[ $have_mailsim == 1 ]]; then
    log "== (c) STARTTLS: $TLS_SESSIONS sessions x $TLS_PER_SESSION messages; $TLS_CONNS TLS sessions"
    bench --server "$MS" --tls --sessions "$TLS_SESSIONS" --messages $((TLS_SESSIONS * TLS_PER_SESSION)) \
        --size $SIZE --from $FROM --to $TO
    c_msgs=$(jget messages_per_s) c_sess=$(jget sessions_per_s) c_lat=$(jget p99) c_err=$(bench_errors)
    bench --server "$MS" --tls --new-connection-per-message --sessions $SESSIONS --messages "$TLS_CONNS" \
        --size $SIZE --from $FROM --to $TO
    c2_sess=$(jget sessions_per_s) c2_lat=$(jget p99) c2_err=$(bench_errors)
fi

# (d) idle connections: server memory per connection, each on a fresh server process. mailsim
# bench opens one warm-up round of 20 sessions before taking the baseline.
idle_bytes() { # PID SERVER [--tls]
    local pid=$1 server=$2 opened
    shift 2
    bench --server "$server" --idle "$IDLE" --hold "$HOLD" --server-pid "$pid" "$@"
    opened=$(sed -n 's/.*"opened": *\([0-9]*\).*/\1/p' "$WORK/bench.json" | head -1)
    [[ ${opened:-0} -lt $IDLE ]] && log "  only ${opened:-0} of $IDLE idle connections opened"
    jget bytes_per_connection
}
if want d; then
    log "== (d) $IDLE idle connections, held ${HOLD}s"
    if start_mailsim; then d_plain=$(idle_bytes "$MAILSIM_PID" "$MS"); fi
    if start_mailsim; then d_tls=$(idle_bytes "$MAILSIM_PID" "$MS" --tls); fi
    stop_mailsim
    d_sink=$(idle_bytes "$SINK_PID" "$SK")
fi
kib() { [[ $1 == - ]] && echo - || awk -v b="$1" 'BEGIN { printf "%.1f", b / 1024 }'; }

# --- report -----------------------------------------------------------------------------------
row "workload" "mailsim" "smtp-sink" "ratio" "target"
row "(a) persistent, smtp-source driver (msgs/s)" "$a_ms" "$a_sink" "$a_ratio" "ratio >= 0.7: $(verdict "$a_ratio" 0.7 ge)"
row "(a) persistent, mailsim bench driver (msgs/s)" "$ab_ms" "$ab_sink" "$(ratio "$ab_ms" "$ab_sink")" "errors: $ab_ms_err / $ab_sink_err"
row "(a) peak RSS of serve (MiB)" "$a_rss" "" "" "< 32 MiB: $(verdict "$a_rss" 31.999 le)"
row "(a') ${BIG_MESSAGES} x ${BIG_SIZE} B, smtp-source driver (msgs/s)" "$big_ms" "$big_sink" "$(ratio "$big_ms" "$big_sink")" ""
row "(a') peak RSS of serve (MiB)" "$big_rss" "" "" "< 32 MiB: $(verdict "$big_rss" 31.999 le)"
row "(b) conn per message, smtp-source driver (sessions/s)" "$b_ms" "$b_sink" "$b_ratio" "ratio >= 0.5: $(verdict "$b_ratio" 0.5 ge)"
row "(b) conn per message, mailsim bench driver (sessions/s)" "$bb_ms" "$bb_sink" "$(ratio "$bb_ms" "$bb_sink")" "errors: $bb_ms_err / $bb_sink_err"
row "(c) STARTTLS ${TLS_SESSIONS}x${TLS_PER_SESSION} (msgs/s)" "$c_msgs" "n/a" "" "sessions/s $c_sess, p99 ${c_lat} ms, errors $c_err"
row "(c) new TLS session per message (sessions/s)" "$c2_sess" "n/a" "" "p99 ${c2_lat} ms, errors $c2_err"
row "(d) idle after EHLO (KiB/connection)" "$(kib "$d_plain")" "$(kib "$d_sink")" "" "<= 8 KiB: $(verdict "$(kib "$d_plain")" 8 le)"
row "(d) idle after STARTTLS+EHLO (KiB/connection)" "$(kib "$d_tls")" "n/a" "" "<= 32 KiB: $(verdict "$(kib "$d_tls")" 32 le)"
echo
echo "mailsim vs smtp-sink on $(nproc) cores, $(date -u +%Y-%m-%dT%H:%M:%SZ); mailsim at $MS, smtp-sink at $SK"
printf '%s\n' "${SUMMARY[@]}"
