#!/usr/bin/env bash
# Inbound with the durable queue: `mailsim serve --state-dir` against `mailsim serve` in memory and
# against a private Postfix (smtpd + cleanup + qmgr, delivering to the discard transport, queue on
# disk), the same workload and drivers as benches/compare.sh (a), in the same run, on loopback.
# See benches/README.md ("Durable queue"). Usage: benches/durable.sh
#
# Each mailsim row is ROUNDS rounds (default 3) of in memory then state-dir, one after the other, and
# reports the medians: the in-memory figure, bound by CPU, moves with whatever else the machine runs
# far more than the state-dir one, bound by the disk's flush, so a single pair's ratio swings.
#
# Knobs (environment): PORT, MEM_ADDR, DISK_ADDR, POSTFIX_ADDR, MESSAGES, SESSIONS, SIZE, ROUNDS,
# STEP_TIMEOUT, SKIP_BUILD=1, NO_POSTFIX=1, KEEP=1 (keep the work directory: logs, state, Postfix).
set -uo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
PORT=${PORT:-2525}
MEM_ADDR=${MEM_ADDR:-127.0.0.65}
DISK_ADDR=${DISK_ADDR:-127.0.0.66}
POSTFIX_ADDR=${POSTFIX_ADDR:-127.0.0.67}
SESSIONS=${SESSIONS:-20}
SIZE=${SIZE:-1024}
MESSAGES=${MESSAGES:-20000}
ROUNDS=${ROUNDS:-3}
STEP_TIMEOUT=${STEP_TIMEOUT:-300}
FROM=sender@fabrikam.test
TO=bench@contoso.test
RELAY_TO=bench@relay.test
MAILSIM=$ROOT/target/release/mailsim
WORK=$(mktemp -d /tmp/mailsim-durable.XXXXXX)
cd "$ROOT" || exit 2
# Two servers run side by side: neither serves the web page / HTTP API (both would want 127.0.0.1:8025).
export MAILSIM_NO_HTTP=${MAILSIM_NO_HTTP:-true}

for a in "$MEM_ADDR" "$DISK_ADDR" "$POSTFIX_ADDR"; do
    [[ $a == 127.* ]] || { echo "refusing $a: loopback (127/8) addresses only" >&2; exit 2; }
done

PIDS=()
PF_DIR=$WORK/postfix
PF_STARTED=0
cleanup() {
    local p
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
    for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null; done
    if [[ $PF_STARTED == 1 ]]; then
        # Stopped by its own master's PID (never by name: other Postfix instances may run here).
        local master
        master=$(head -1 "$PF_DIR/queue/pid/master.pid" 2>/dev/null | tr -d ' ')
        [[ -n $master ]] && kill "$master" 2>/dev/null
        for _ in $(seq 1 50); do [[ -n $master ]] && kill -0 "$master" 2>/dev/null || break; sleep 0.1; done
    fi
    if [[ ${KEEP:-0} == 1 ]]; then log "kept $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

log() { printf '%s\n' "$*" >&2; }

# --- prerequisites: Debian's postfix (never the system instance) ---------------------------
"$ROOT/.ci/install-postfix" || exit 2
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

if [[ ${SKIP_BUILD:-0} != 1 ]]; then
    log "== cargo build --release -p mailsim"
    cargo build --release -q -p mailsim || { log "build failed"; exit 2; }
fi
[[ -x $MAILSIM ]] || { log "no $MAILSIM"; exit 2; }

port_open() { timeout 1 bash -c "exec 3<>/dev/tcp/$1/$2" 2>/dev/null; }
wait_port() { # ADDR PORT [PID]
    local i
    for i in $(seq 1 100); do
        port_open "$1" "$2" && return 0
        [[ -n ${3:-} ]] && ! kill -0 "$3" 2>/dev/null && return 1
        sleep 0.1
    done
    return 1
}

# --- servers ----------------------------------------------------------------------------------
start_mailsim() { # ADDR [--state-dir DIR]
    local addr=$1
    shift
    port_open "$addr" "$PORT" && { log "$addr:$PORT is already in use"; exit 2; }
    MAILSIM_LOG=${MAILSIM_LOG:-warn} "$MAILSIM" serve --listen "$addr:$PORT" --no-tls \
        --accepted-domain contoso.test --accepted-domain relay.test:InternalRelay --mailbox "$TO" \
        --max-connections 4000 "$@" >"$WORK/serve-$addr.log" 2>&1 &
    PIDS+=("$!")
    wait_port "$addr" "$PORT" "$!" || { log "mailsim serve on $addr did not start: $(tail -3 "$WORK/serve-$addr.log")"; exit 2; }
}

# A private Postfix: its own config directory, queue and data directories under $WORK, listening
# on $POSTFIX_ADDR:$PORT only, relaying contoso.test to the discard transport. smtpd hands each
# message to cleanup, which writes and fsyncs the queue file before smtpd answers 250; qmgr then
# "delivers" it to discard, which removes it. Needs root (the master runs as root, its daemons as
# the postfix user).
start_postfix() {
    [[ $(id -u) == 0 ]] || { log "a private Postfix needs root; skipped"; return 1; }
    port_open "$POSTFIX_ADDR" "$PORT" && { log "$POSTFIX_ADDR:$PORT is already in use"; exit 2; }
    mkdir -p "$PF_DIR/queue" "$PF_DIR/data"
    chmod 755 "$WORK" "$PF_DIR"  # the postfix user must reach its data directory
    chown postfix "$PF_DIR/data"
    cat >"$PF_DIR/main.cf" <<EOF
compatibility_level = 3.6
queue_directory = $PF_DIR/queue
data_directory = $PF_DIR/data
command_directory = /usr/sbin
daemon_directory = /usr/lib/postfix/sbin
meta_directory = /etc/postfix
shlib_directory = /usr/lib/postfix
mail_owner = postfix
setgid_group = postdrop
myhostname = bench.postfix.test
mydomain = postfix.test
myorigin = \$myhostname
# Postfix wants an address configured on an interface here; master.cf binds $POSTFIX_ADDR itself.
inet_interfaces = loopback-only
inet_protocols = ipv4
mydestination =
relay_domains = contoso.test
transport_maps = inline:{contoso.test=discard:}
mynetworks = 127.0.0.0/8
smtpd_relay_restrictions = permit_mynetworks, reject
smtpd_recipient_restrictions = permit_mynetworks, reject
smtpd_client_connection_count_limit = 0
smtpd_client_connection_rate_limit = 0
default_process_limit = 200
smtpd_banner = \$myhostname ESMTP
maillog_file = $PF_DIR/maillog
maillog_file_prefixes = $PF_DIR
alias_maps =
alias_database =
local_recipient_maps =
biff = no
EOF
    cat >"$PF_DIR/master.cf" <<EOF
$POSTFIX_ADDR:$PORT inet n - n - - smtpd
pickup    unix  n - n 60 1 pickup
cleanup   unix  n - n - 0 cleanup
qmgr      unix  n - n 300 1 qmgr
rewrite   unix  - - n - - trivial-rewrite
bounce    unix  - - n - 0 bounce
defer     unix  - - n - 0 bounce
trace     unix  - - n - 0 bounce
verify    unix  - - n - 1 verify
flush     unix  n - n 1000? 0 flush
proxymap  unix  - - n - - proxymap
smtp      unix  - - n - - smtp
relay     unix  - - n - - smtp
showq     unix  n - n - - showq
error     unix  - - n - - error
retry     unix  - - n - - error
discard   unix  - - n - - discard
anvil     unix  - - n - 1 anvil
scache    unix  - - n - 1 scache
postlog   unix-dgram n - n - 1 postlogd
EOF
    # `postfix` reports fatal errors on stderr only when it is a terminal (else to syslog, which
    # may not exist): its own log file says why when it does not start.
    if ! /usr/sbin/postfix -c "$PF_DIR" start >"$WORK/postfix-start.log" 2>&1; then
        log "private postfix did not start: $(tail -3 "$PF_DIR/maillog" 2>/dev/null) $(tail -3 "$WORK/postfix-start.log")"
        return 1
    fi
    PF_STARTED=1
    wait_port "$POSTFIX_ADDR" "$PORT" || { log "private postfix does not listen: $(tail -3 "$PF_DIR/maillog" 2>/dev/null)"; return 1; }
}

# --- measuring (as compare.sh) ----------------------------------------------------------------
now_ns() { date +%s%N; }
source_rate() { # COUNT ARGS...
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
bench_rate() { # SERVER -> messages/s from `mailsim bench`, or "-"
    local v
    if ! timeout "$STEP_TIMEOUT" "$MAILSIM" bench --json --timeout "$STEP_TIMEOUT" --server "$1" \
        --sessions "$SESSIONS" --messages "$MESSAGES" --size "$SIZE" --from $FROM --to $TO >"$WORK/bench.json" 2>"$WORK/bench.err"; then
        log "mailsim bench --server $1: failed: $(tail -2 "$WORK/bench.err")"
        echo -
        return
    fi
    v=$(sed -n 's/.*"messages_per_s": *\([0-9.eE+-]*\).*/\1/p' "$WORK/bench.json" | head -1)
    [[ -n $v ]] && printf '%.1f' "$v" || echo -
}
ratio() {
    [[ $1 == - || $2 == - ]] && { echo -; return; }
    awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "-" }'
}
median() { # VALUES... ("-" ignored) -> the median, or "-"
    printf '%s\n' "$@" | grep -v '^-$' | sort -g |
        awk '{ v[NR] = $1 } END { if (NR == 0) print "-"; else if (NR % 2) print v[(NR + 1) / 2]; else printf "%.1f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}
# ROUNDS rounds of MEASURE on the in-memory server then on the state-dir one; sets NAME_mem and
# NAME_disk to the medians and NAME_rounds to each round's ratio.
rounds() { # NAME MEASURE ARGS... (the server's address replaces the word SERVER)
    local name=$1 measure=$2 i m d mems=() disks=() ratios=()
    shift 2
    for ((i = 1; i <= ROUNDS; i++)); do
        m=$("$measure" "${@/#SERVER/$MEM}")
        d=$("$measure" "${@/#SERVER/$DISK}")
        mems+=("$m") disks+=("$d") ratios+=("$(ratio "$d" "$m")")
    done
    printf -v "${name}_mem" '%s' "$(median "${mems[@]}")"
    printf -v "${name}_disk" '%s' "$(median "${disks[@]}")"
    printf -v "${name}_rounds" '%s' "${ratios[*]}"
}
verdict() { # VALUE TARGET
    [[ $1 == - ]] && { echo "n/a"; return; }
    awk -v v="$1" -v t="$2" 'BEGIN { print (v >= t) ? "meets target" : "BELOW TARGET" }'
}

start_mailsim "$MEM_ADDR"
start_mailsim "$DISK_ADDR" --state-dir "$WORK/state"
have_postfix=0
[[ ${NO_POSTFIX:-0} != 1 ]] && start_postfix && have_postfix=1

MEM=$MEM_ADDR:$PORT DISK=$DISK_ADDR:$PORT PF=$POSTFIX_ADDR:$PORT
log "== $SESSIONS persistent sessions, $MESSAGES x $SIZE B, smtp-source -d ($ROUNDS rounds)"
rounds s source_rate "$MESSAGES" -s "$SESSIONS" -m "$MESSAGES" -l "$SIZE" -d -f $FROM -t $TO SERVER
s_pf=-
[[ $have_postfix == 1 ]] && s_pf=$(source_rate "$MESSAGES" -s "$SESSIONS" -m "$MESSAGES" -l "$SIZE" -d -f $FROM -t $TO "$PF")
log "== the same with mailsim bench (pipelining, $ROUNDS rounds)"
rounds b bench_rate SERVER
b_pf=-
[[ $have_postfix == 1 ]] && b_pf=$(bench_rate "$PF")

# The same without the mailbox store's one .eml file per message: a recipient in an InternalRelay
# domain with no route (no DNS in `serve --tenant`), so every message is accepted, journaled and
# deferred (4.4.312): what the durable queue itself costs.
log "== relay recipient (accepted, journaled, deferred; no mailbox file), smtp-source -d"
rounds r source_rate "$MESSAGES" -s "$SESSIONS" -m "$MESSAGES" -l "$SIZE" -d -f $FROM -t $RELAY_TO SERVER

journal=$(stat -c %s "$WORK/state/spool/journal" 2>/dev/null || echo -)
row() { printf '%-44s %12s %12s %12s %10s %10s\n' "$@"; }
echo
echo "durable queue on $(nproc) cores, $(date -u +%Y-%m-%dT%H:%M:%SZ); msgs/s, medians of $ROUNDS rounds (Postfix: one run); in memory at $MEM, --state-dir at $DISK, Postfix at $PF"
row "driver" "in memory" "state-dir" "postfix" "disk/mem" "disk/pf"
row "smtp-source -s $SESSIONS -d" "$s_mem" "$s_disk" "$s_pf" "$(ratio "$s_disk" "$s_mem")" "$(ratio "$s_disk" "$s_pf")"
row "mailsim bench --sessions $SESSIONS" "$b_mem" "$b_disk" "$b_pf" "$(ratio "$b_disk" "$b_mem")" "$(ratio "$b_disk" "$b_pf")"
row "smtp-source -s $SESSIONS -d, to $RELAY_TO" "$r_mem" "$r_disk" "n/a" "$(ratio "$r_disk" "$r_mem")" ""
echo "disk/mem per round: smtp-source $s_rounds; mailsim bench $b_rounds; relay $r_rounds"
echo "targets: state-dir >= 0.5 x in memory ($(verdict "$(ratio "$s_disk" "$s_mem")" 0.5), smtp-source); >= 4 x Postfix ($(verdict "$(ratio "$s_disk" "$s_pf")" 4), smtp-source)"
echo "spool journal after the run: $journal bytes (compacted as messages finish)"
