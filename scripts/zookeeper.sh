#!/usr/bin/env bash
# ZooKeeper servers on loopback for riffle's HA tests, demos and chaos drills.
#
#   scripts/zookeeper.sh install                 install Debian's zookeeper (3.8) + slf4j, idempotent
#   scripts/zookeeper.sh check                   exit 0 if installed, else one line naming the set-up
#   scripts/zookeeper.sh start [--port P] [--dir DIR] [--fresh] [--secure-port S --tls-dir T [--client-auth A]]
#   scripts/zookeeper.sh stop  [--port P] [--dir DIR]
#   scripts/zookeeper.sh ensemble start N [--base-port P] [--dir DIR] [--fresh]
#   scripts/zookeeper.sh ensemble stop [--dir DIR]
#   scripts/zookeeper.sh kill-member K [--dir DIR]       SIGKILL member K (1-based)
#   scripts/zookeeper.sh restart-member K [--dir DIR]    start member K again, wait until it serves
#   scripts/zookeeper.sh status
#   scripts/zookeeper.sh tls-certs DIR             a test CA, server and client certificates (openssl)
#
# `start` prints the connect string (127.0.0.1:P) once the server answers; `ensemble start`
# prints all members' (127.0.0.1:P,127.0.0.1:P+1,...) once every member is leader or follower.
# Member K of an ensemble uses client port P+K-1, quorum port P+1000+K-1, election port
# P+2000+K-1. Servers listen on 127.0.0.1 only. A standalone server keeps its files in
# DIR (default ${TMPDIR:-/tmp}/riffle-zk-P), an ensemble in DIR/member-K (default DIR
# ${TMPDIR:-/tmp}/riffle-zk-ensemble); zk.log there has the server's log. A server is only
# ever signalled through the pid file of its own directory, after checking that the pid
# still runs that directory's configuration.
#
# Ticks are 500 ms and sessions may be 1 s to 60 s, so tests can use 2 s sessions (Debian's
# default configuration raises anything under 4 s). Environment: ZK_WAIT_S (how long to wait
# for a server, 30), ZK_HEAP (JVM heap, 256m).
#
# TLS: `start --secure-port S --tls-dir T` also serves TLS on 127.0.0.1:S (ZooKeeper's
# secureClientPort, on its Netty connection factory with Debian's netty jars added to the class
# path) with T/server.pem (key and certificate) as key store and T/ca.pem as trust store, both
# PEM; --client-auth is ZooKeeper's ssl.clientAuth (need, the default: clients must present a
# certificate of that CA; want; none). It then prints 127.0.0.1:S. The plain port P stays open
# for the script's own health checks (four-letter words) and for plain clients. `tls-certs DIR`
# writes what it needs: ca.pem/ca.key (a fresh CA), server.pem (server.key + server.crt, valid
# for 127.0.0.1 and localhost) and client.key/client.crt, all signed by that CA, valid 2 days.
set -euo pipefail

SETUP_HINT="run scripts/setup-tests (or scripts/zookeeper.sh install) once"
ZK_JAR=/usr/share/java/zookeeper.jar
SLF4J_SIMPLE=/usr/share/java/slf4j-simple.jar
# What ZooKeeper's NettyServerCnxnFactory (the only one that serves TLS) needs beyond
# zookeeper.jar; Debian's zookeeper package depends on libnetty-java, which installs them.
NETTY_JARS=(netty-buffer netty-codec netty-common netty-handler netty-resolver netty-transport
    netty-transport-native-epoll netty-transport-native-unix-common)
TMP="${TMPDIR:-/tmp}"
TMP="${TMP%/}"
WAIT_S="${ZK_WAIT_S:-30}"
HEAP="${ZK_HEAP:-256m}"
INDEX="$TMP/riffle-zk.index"   # every directory this script started a server in (for status)

fail() { echo "zookeeper.sh: $*" >&2; exit 1; }

as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

installed() { command -v java >/dev/null 2>&1 && [ -f "$ZK_JAR" ] && [ -f "$SLF4J_SIMPLE" ]; }

do_install() {
    installed && return 0
    export DEBIAN_FRONTEND=noninteractive
    as_root apt-get install -y -qq zookeeper libslf4j-java >/dev/null 2>&1 || {
        as_root apt-get update -qq >/dev/null
        as_root apt-get install -y -qq zookeeper libslf4j-java >/dev/null
    }
    installed || fail "installed Debian's zookeeper but $ZK_JAR or $SLF4J_SIMPLE is missing"
}

do_check() {
    installed || { echo "ZooKeeper is not installed: $SETUP_HINT" >&2; exit 3; }
}

# The class path: ZooKeeper and its logger, and netty when DIR's server serves TLS.
classpath() {
    local dir=$1 cp="$ZK_JAR:$SLF4J_SIMPLE" jar
    if grep -q '^secureClientPort=' "$dir/zoo.cfg"; then
        for jar in "${NETTY_JARS[@]}"; do
            [ -f "/usr/share/java/$jar.jar" ] || {
                echo "ZooKeeper's TLS needs /usr/share/java/$jar.jar (Debian's libnetty-java): $SETUP_HINT" >&2
                exit 3
            }
            cp+=":/usr/share/java/$jar.jar"
        done
    fi
    echo "$cp"
}

# tls-certs DIR: a throw-away CA and a server and a client certificate signed by it.
tls_certs() {
    local dir=${1:-} who eku
    [ -n "$dir" ] || fail "usage: tls-certs DIR"
    command -v openssl >/dev/null 2>&1 || { echo "openssl is not installed: $SETUP_HINT" >&2; exit 3; }
    mkdir -p "$dir"
    dir=$(realpath "$dir")
    (
        cd "$dir"
        umask 077
        openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days 2 -subj "/CN=riffle test CA $$" \
            -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
        for who in server client; do
            eku=serverAuth
            [ "$who" = client ] && eku=clientAuth
            openssl req -newkey rsa:2048 -nodes -keyout "$who.key" -out "$who.csr" -subj "/CN=riffle test $who" 2>/dev/null
            printf '%s\n' "basicConstraints=CA:FALSE" "keyUsage=critical,digitalSignature,keyEncipherment" \
                "extendedKeyUsage=$eku" "subjectAltName=IP:127.0.0.1,DNS:localhost" >"$who.ext"
            openssl x509 -req -in "$who.csr" -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 -out "$who.crt" \
                -extfile "$who.ext" 2>/dev/null
            rm -f "$who.csr" "$who.ext"
        done
        rm -f ca.srl
        cat server.key server.crt >server.pem
    ) || fail "openssl could not write the certificates in $dir"
    echo "$dir"
}

# ---- one server ------------------------------------------------------------------------------

# A four-letter command to a local port; prints the answer, nothing if none (bash's /dev/tcp).
ask() {
    timeout 3 bash -c 'exec 9<>"/dev/tcp/127.0.0.1/$1" && printf "%s" "$2" >&9 && cat <&9' _ "$1" "$2" 2>/dev/null || true
}

mode_of() { ask "$1" srvr | sed -n 's/^Mode: //p'; }

listening() { timeout 1 bash -c 'exec 9<>"/dev/tcp/127.0.0.1/$1"' _ "$1" 2>/dev/null; }

# The pid of DIR's server, if it is alive and really runs DIR/zoo.cfg.
pid_of() {
    local dir=$1 pid
    pid=$(cat "$dir/zk.pid" 2>/dev/null) || return 1
    [ -n "$pid" ] && [ -r "/proc/$pid/cmdline" ] || return 1
    tr '\0' '\n' <"/proc/$pid/cmdline" | grep -qxF "$dir/zoo.cfg" || return 1
    echo "$pid"
}

# configure DIR CLIENT_PORT [serverN=... lines]
configure() {
    local dir=$1 port=$2
    shift 2
    mkdir -p "$dir/data"
    cat >"$dir/zoo.cfg" <<EOF
tickTime=500
initLimit=20
syncLimit=10
minSessionTimeout=1000
maxSessionTimeout=60000
dataDir=$dir/data
clientPort=$port
clientPortAddress=127.0.0.1
maxClientCnxns=0
admin.enableServer=false
autopurge.purgeInterval=0
4lw.commands.whitelist=srvr,ruok,stat,mntr,conf
EOF
    local line
    for line in "$@"; do echo "$line" >>"$dir/zoo.cfg"; done
    if [ -n "${SECURE_PORT:-}" ]; then
        cat >>"$dir/zoo.cfg" <<EOF
secureClientPort=$SECURE_PORT
secureClientPortAddress=127.0.0.1
serverCnxnFactory=org.apache.zookeeper.server.NettyServerCnxnFactory
ssl.keyStore.location=$TLS_DIR/server.pem
ssl.keyStore.type=PEM
ssl.trustStore.location=$TLS_DIR/ca.pem
ssl.trustStore.type=PEM
ssl.clientAuth=$CLIENT_AUTH
EOF
    fi
    echo "$port" >"$dir/client-port"
}

launch() {
    local dir=$1 cp
    do_check
    cp=$(classpath "$dir")
    setsid java -Xms16m -Xmx"$HEAP" -XX:+UseSerialGC -XX:TieredStopAtLevel=1 \
        -Djava.net.preferIPv4Stack=true -Dzookeeper.admin.enableServer=false \
        -Dzookeeper.jmx.log4j.disable=true -Dorg.slf4j.simpleLogger.showDateTime=true \
        -cp "$cp" org.apache.zookeeper.server.quorum.QuorumPeerMain \
        "$dir/zoo.cfg" >>"$dir/zk.log" 2>&1 </dev/null &
    echo $! >"$dir/zk.pid"
    disown $! 2>/dev/null || true
    touch "$INDEX"
    grep -qxF "$dir" "$INDEX" || echo "$dir" >>"$INDEX"
}

# await DIR MODES: wait until DIR's server reports a mode matching the regex MODES.
await() {
    local dir=$1 modes=$2 port mode until=$((SECONDS + WAIT_S))
    port=$(cat "$dir/client-port")
    while [ "$SECONDS" -lt "$until" ]; do
        mode=$(mode_of "$port")
        [[ -n $mode && $mode =~ ^($modes)$ ]] && return 0
        if ! pid_of "$dir" >/dev/null; then
            echo "zookeeper.sh: the server on port $port exited; the end of $dir/zk.log:" >&2
            tail -n 20 "$dir/zk.log" >&2 || true
            return 1
        fi
        sleep 0.2
    done
    echo "zookeeper.sh: the server on port $port did not serve within ${WAIT_S}s; the end of $dir/zk.log:" >&2
    tail -n 20 "$dir/zk.log" >&2 || true
    return 1
}

# halt DIR [SIGNAL]: signal DIR's server (TERM by default), SIGKILL it if it is still there after 10 s.
halt() {
    local dir=$1 signal=${2:-TERM} pid n
    if pid=$(pid_of "$dir"); then
        kill -s "$signal" "$pid" 2>/dev/null || true
        for n in $(seq 50); do
            [ -d "/proc/$pid" ] || break
            sleep 0.2
        done
        [ -d "/proc/$pid" ] && kill -KILL "$pid" 2>/dev/null && sleep 0.2
    fi
    rm -f "$dir/zk.pid"
}

# Parses --port/--base-port, --dir, --fresh (and, for `start`, the TLS options) into PORT,
# DIR, FRESH, SECURE_PORT, TLS_DIR, CLIENT_AUTH.
options() {
    FRESH=0 SECURE_PORT="" TLS_DIR="" CLIENT_AUTH=need
    while [ $# -gt 0 ]; do
        case $1 in
            --port | --base-port) PORT=${2:-}; shift 2 || fail "$1 needs a value" ;;
            --dir) DIR=$(realpath -m "${2:-}"); shift 2 || fail "--dir needs a value" ;;
            --fresh) FRESH=1; shift ;;
            --secure-port) SECURE_PORT=${2:-}; shift 2 || fail "--secure-port needs a value" ;;
            --tls-dir) TLS_DIR=$(realpath -m "${2:-}"); shift 2 || fail "--tls-dir needs a value" ;;
            --client-auth) CLIENT_AUTH=${2:-}; shift 2 || fail "--client-auth needs a value" ;;
            *) fail "unknown option: $1" ;;
        esac
    done
    [[ $PORT =~ ^[0-9]+$ ]] && [ "$PORT" -gt 0 ] && [ "$PORT" -lt 63000 ] || fail "not a usable port: $PORT"
    if [ -n "$SECURE_PORT$TLS_DIR" ]; then
        [[ $SECURE_PORT =~ ^[0-9]+$ ]] && [ "$SECURE_PORT" -gt 0 ] && [ "$SECURE_PORT" -lt 65536 ] &&
            [ "$SECURE_PORT" != "$PORT" ] || fail "--secure-port needs a usable port other than $PORT"
        [ -f "$TLS_DIR/server.pem" ] && [ -f "$TLS_DIR/ca.pem" ] ||
            fail "--tls-dir needs server.pem and ca.pem (scripts/zookeeper.sh tls-certs DIR writes them)"
        [[ $CLIENT_AUTH =~ ^(need|want|none)$ ]] || fail "--client-auth is need, want or none"
    fi
}

# await_secure: wait until the TLS port listens too (it is bound with the plain one).
await_secure() {
    local until=$((SECONDS + WAIT_S))
    [ -z "$SECURE_PORT" ] && return 0
    while [ "$SECONDS" -lt "$until" ]; do
        listening "$SECURE_PORT" && return 0
        sleep 0.2
    done
    echo "zookeeper.sh: the TLS port $SECURE_PORT did not listen within ${WAIT_S}s; the end of $DIR/zk.log:" >&2
    tail -n 20 "$DIR/zk.log" >&2 || true
    return 1
}

start_one() {
    PORT=2181 DIR=""
    options "$@"
    DIR=${DIR:-$TMP/riffle-zk-$PORT}
    if pid_of "$DIR" >/dev/null; then
        await "$DIR" standalone || exit 1
    else
        listening "$PORT" && fail "port $PORT is taken by another program"
        [ -n "$SECURE_PORT" ] && listening "$SECURE_PORT" && fail "port $SECURE_PORT is taken by another program"
        [ "$FRESH" = 1 ] && rm -rf "$DIR/data"
        configure "$DIR" "$PORT"
        : >"$DIR/zk.log"
        launch "$DIR"
        { await "$DIR" standalone && await_secure; } || { halt "$DIR" KILL; exit 1; }
    fi
    echo "127.0.0.1:${SECURE_PORT:-$PORT}"
}

stop_one() {
    PORT=2181 DIR=""
    options "$@"
    halt "${DIR:-$TMP/riffle-zk-$PORT}"
}

# ---- ensembles -------------------------------------------------------------------------------

# Reads DIR/ensemble (members and base port) into MEMBERS and BASE.
read_ensemble() {
    [ -f "$DIR/ensemble" ] || fail "no ensemble was started in $DIR"
    read -r MEMBERS BASE <"$DIR/ensemble"
}

quorum() {
    local k list=""
    for k in $(seq "$MEMBERS"); do list+="${list:+,}127.0.0.1:$((BASE + k - 1))"; done
    echo "$list"
}

ensemble_start() {
    MEMBERS=${1:-}
    shift || true
    [[ $MEMBERS =~ ^[1-9][0-9]?$ ]] || fail "usage: ensemble start N [--base-port P] [--dir DIR] [--fresh]"
    PORT=2181 DIR=""
    options "$@"
    [ -z "$SECURE_PORT" ] || fail "--secure-port/--tls-dir are for a standalone server (start) only"
    DIR=${DIR:-$TMP/riffle-zk-ensemble}
    BASE=$PORT
    if [ -f "$DIR/ensemble" ]; then
        local was k
        was=$(cat "$DIR/ensemble")
        if [ "$was" != "$MEMBERS $BASE" ]; then
            for k in $(seq "${was%% *}"); do
                pid_of "$DIR/member-$k" >/dev/null && fail "another ensemble ($was) runs in $DIR"
            done
        fi
    fi
    mkdir -p "$DIR"
    echo "$MEMBERS $BASE" >"$DIR/ensemble"
    local servers=() k member
    for k in $(seq "$MEMBERS"); do
        servers+=("server.$k=127.0.0.1:$((BASE + 1000 + k - 1)):$((BASE + 2000 + k - 1))")
    done
    for k in $(seq "$MEMBERS"); do
        member="$DIR/member-$k"
        pid_of "$member" >/dev/null && continue
        listening "$((BASE + k - 1))" && fail "port $((BASE + k - 1)) is taken by another program"
        [ "$FRESH" = 1 ] && rm -rf "$member/data"
        configure "$member" "$((BASE + k - 1))" "${servers[@]}"
        echo "$k" >"$member/data/myid"
        : >"$member/zk.log"
        launch "$member"
    done
    for k in $(seq "$MEMBERS"); do
        if ! await "$DIR/member-$k" "leader|follower"; then
            for member in "$DIR"/member-*; do halt "$member" KILL; done
            exit 1
        fi
    done
    quorum
}

ensemble_stop() {
    PORT=1 DIR=""
    options "$@"
    DIR=${DIR:-$TMP/riffle-zk-ensemble}
    read_ensemble
    local k
    for k in $(seq "$MEMBERS"); do halt "$DIR/member-$k" & done
    wait
}

member() {
    local action=$1 k=${2:-}
    shift 2 || fail "usage: $action K [--dir DIR]"
    PORT=1 DIR=""
    options "$@"
    DIR=${DIR:-$TMP/riffle-zk-ensemble}
    read_ensemble
    [[ $k =~ ^[0-9]+$ ]] && [ "$k" -ge 1 ] && [ "$k" -le "$MEMBERS" ] || fail "no member $k (1..$MEMBERS)"
    local dir="$DIR/member-$k" pid
    case $action in
        kill-member)
            pid=$(pid_of "$dir") || fail "member $k is not running"
            kill -KILL "$pid"
            rm -f "$dir/zk.pid"
            echo "killed member $k (pid $pid, 127.0.0.1:$((BASE + k - 1)))"
            ;;
        restart-member)
            pid_of "$dir" >/dev/null && halt "$dir" KILL
            launch "$dir"
            await "$dir" "leader|follower" || { halt "$dir" KILL; exit 1; }
            echo "member $k serves as $(mode_of "$((BASE + k - 1))") on 127.0.0.1:$((BASE + k - 1))"
            ;;
    esac
}

status() {
    local dir pid port any=0
    if [ -f "$INDEX" ]; then
        while read -r dir; do
            [ -f "$dir/client-port" ] || continue
            pid=$(pid_of "$dir") || continue
            port=$(cat "$dir/client-port")
            printf '127.0.0.1:%-6s pid %-8s %-11s %s\n' "$port" "$pid" "$(mode_of "$port" || true)" "$dir"
            any=1
        done <"$INDEX"
    fi
    [ "$any" = 1 ] || echo "no ZooKeeper server started by zookeeper.sh is running"
}

case ${1:-} in
    install) do_install ;;
    check) do_check ;;
    start) shift; start_one "$@" ;;
    stop) shift; stop_one "$@" ;;
    ensemble)
        case ${2:-} in
            start) shift 2; ensemble_start "$@" ;;
            stop) shift 2; ensemble_stop "$@" ;;
            *) fail "usage: ensemble start N [...] | ensemble stop [--dir DIR]" ;;
        esac
        ;;
    kill-member | restart-member) member "$@" ;;
    status) status ;;
    tls-certs) shift; tls_certs "$@" ;;
    -h | --help | help) sed -n '2,14p' "$0" | cut -c3- ;;
    *) sed -n '2,14p' "$0" | cut -c3- >&2; exit 2 ;;
esac
