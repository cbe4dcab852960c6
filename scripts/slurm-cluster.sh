#!/usr/bin/env bash
# Bring up / tear down a real one-node SLURM cluster with accounting
# (munge, MariaDB, slurmdbd, slurmctld, slurmd) on a Debian 12 machine,
# as root, without systemd.
#
# Usage: slurm-cluster.sh up | down | status | accounting on|off
#
#   up              install missing packages, configure, start what is not
#                   running, wait until the node is idle and sacct answers
#   down            stop slurmd, slurmctld, slurmdbd, mariadbd, munged
#   status          list daemons and sinfo; exit 0 iff the cluster is usable
#   accounting off  stop slurmdbd only (sacct then fails, squeue still works)
#   accounting on   start slurmdbd again and wait until sacct answers
#
# Logs: /var/log/slurm/{slurmctld,slurmd,slurmdbd,mariadb,munged}.log
set -euo pipefail

CLUSTER_NAME=jobledger
PARTITION=debug
DB_NAME=slurm_acct_db
DB_USER=slurm
DB_PASS=jobledger-slurmdbd

SLURM_ETC=/etc/slurm
SLURM_CONF=$SLURM_ETC/slurm.conf
SLURMDBD_CONF=$SLURM_ETC/slurmdbd.conf
LOG_DIR=/var/log/slurm
RUN_DIR=/run/slurm
STATE_DIR=/var/spool/slurmctld
SPOOL_DIR=/var/spool/slurmd

MUNGE_KEY=/etc/munge/munge.key
MUNGE_PID=/run/munge/munged.pid
MUNGE_LOG=$LOG_DIR/munged.log
MYSQL_RUN=/run/mysqld
MYSQL_PID=$MYSQL_RUN/mysqld.pid
MYSQL_SOCK=$MYSQL_RUN/mysqld.sock
MYSQL_LOG=$LOG_DIR/mariadb.log

PACKAGES=(slurm-wlm slurmdbd mariadb-server munge)
WAIT_SECS=${SLURM_CLUSTER_WAIT:-60}

export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin:$PATH
export SLURM_CONF

say() { printf 'slurm-cluster: %s\n' "$*"; }
die() { printf 'slurm-cluster: ERROR: %s\n' "$*" >&2; exit 1; }

# Print the last lines of the given log files to stderr.
show_logs() {
    local f
    for f in "$@"; do
        [[ -f $f ]] || continue
        printf -- '----- tail of %s -----\n' "$f" >&2
        tail -n 25 "$f" >&2 || true
    done
}

# ---------------------------------------------------------------- processes

# pidfile of a daemon
pidfile_of() {
    case $1 in
        munged) echo "$MUNGE_PID" ;;
        mariadbd) echo "$MYSQL_PID" ;;
        slurmdbd) echo "$RUN_DIR/slurmdbd.pid" ;;
        slurmctld) echo "$RUN_DIR/slurmctld.pid" ;;
        slurmd) echo "$RUN_DIR/slurmd.pid" ;;
        *) die "unknown daemon $1" ;;
    esac
}

# True if pid $1 is a live (not zombie) process named $2. PID 1 on these
# machines reaps orphans only every second or two, so a dead daemon can linger
# as a zombie that still carries its name.
pid_is() {
    local pid=$1 name=$2 stat
    stat=$(cat "/proc/$pid/stat" 2>/dev/null) || return 1
    # /proc/PID/stat: "pid (comm) state ..."
    [[ ${stat#*\(} == "$name) "* ]] || return 1
    stat=${stat##*) }
    [[ ${stat:0:1} != [ZX] ]]
}

# Print the pids of daemon $1: the one in its pidfile (if that process really
# is the daemon), otherwise any live process whose name is exactly $1.
daemon_pids() {
    local name=$1 pf pid
    pf=$(pidfile_of "$name")
    if [[ -r $pf ]]; then
        # the pidfile can vanish between the test and the read (daemon start)
        pid=$({ tr -dc '0-9' <"$pf"; } 2>/dev/null || true)
        if [[ -n $pid ]] && pid_is "$pid" "$name"; then
            echo "$pid"
            return 0
        fi
    fi
    for pid in $(pgrep -x "$name" 2>/dev/null || true); do
        if pid_is "$pid" "$name"; then
            echo "$pid"
        fi
    done
}

is_running() { [[ -n $(daemon_pids "$1") ]]; }

# All live processes named exactly $1 (the pidfile one and strays).
all_daemon_pids() {
    local pid
    for pid in $(pgrep -x "$1" 2>/dev/null || true); do
        if pid_is "$pid" "$1"; then
            echo "$pid"
        fi
    done
}

# Stop daemon $1 (and stray copies of it) with SIGTERM, wait up to $2 s, then
# SIGKILL.
stop_daemon() {
    local name=$1 timeout=${2:-30} pids deadline
    pids=$( (daemon_pids "$name"; all_daemon_pids "$name") | sort -u)
    if [[ -z $pids ]]; then
        rm -f "$(pidfile_of "$name")"
        return 0
    fi
    # shellcheck disable=SC2086
    kill -TERM $pids 2>/dev/null || true
    deadline=$((SECONDS + timeout))
    while [[ -n $(all_daemon_pids "$name") ]]; do
        if ((SECONDS >= deadline)); then
            say "$name did not stop in ${timeout}s, killing it"
            pids=$(all_daemon_pids "$name")
            # shellcheck disable=SC2086
            [[ -n $pids ]] && kill -KILL $pids 2>/dev/null || true
            sleep 1
            break
        fi
        sleep 0.2
    done
    rm -f "$(pidfile_of "$name")"
    say "stopped $name"
}

# wait_for DESCRIPTION TIMEOUT LOGS... -- COMMAND...
# Run COMMAND until it succeeds; on timeout show the logs and exit 1.
wait_for() {
    local what=$1 timeout=$2 deadline logs=()
    shift 2
    while [[ $1 != -- ]]; do
        logs+=("$1")
        shift
    done
    shift
    deadline=$((SECONDS + timeout))
    until "$@" >/dev/null 2>&1; do
        if ((SECONDS >= deadline)); then
            printf 'slurm-cluster: ERROR: timed out after %ss waiting for %s\n' \
                "$timeout" "$what" >&2
            show_logs "${logs[@]}"
            exit 1
        fi
        sleep 0.5
    done
}

# ---------------------------------------------------------------- packages

ensure_packages() {
    local missing=() p
    for p in "${PACKAGES[@]}"; do
        if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
            missing+=("$p")
        fi
    done
    ((${#missing[@]} == 0)) && return 0
    say "installing ${missing[*]}"
    # Keep maintainer scripts from starting daemons: this script starts them.
    local policy=/usr/sbin/policy-rc.d added_policy=0
    if [[ ! -e $policy ]]; then
        printf '#!/bin/sh\nexit 101\n' >"$policy"
        chmod 755 "$policy"
        added_policy=1
    fi
    local rc=0
    {
        DEBIAN_FRONTEND=noninteractive apt-get update -q &&
            DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
                -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold \
                "${missing[@]}"
    } >/var/log/slurm-cluster-apt.log 2>&1 || rc=$?
    ((added_policy)) && rm -f "$policy"
    if ((rc != 0)); then
        tail -n 30 /var/log/slurm-cluster-apt.log >&2
        die "apt-get install failed (see /var/log/slurm-cluster-apt.log)"
    fi
}

# ---------------------------------------------------------------- config

# Write $2 (content) to $1 if different. Return 0 if the file changed.
write_if_changed() {
    local path=$1 content=$2 mode=${3:-0644}
    if [[ -f $path ]] && [[ $(cat "$path") == "$content" ]]; then
        chmod "$mode" "$path"
        return 1
    fi
    local tmp
    tmp=$(mktemp "$path.XXXXXX")
    printf '%s\n' "$content" >"$tmp"
    chmod "$mode" "$tmp"
    mv -f "$tmp" "$path"
    return 0
}

make_dirs() {
    mkdir -p "$SLURM_ETC" "$LOG_DIR" "$RUN_DIR" "$STATE_DIR" "$SPOOL_DIR"
    chown root:root "$LOG_DIR"   # munged refuses logs in non-root dirs
    chmod 755 "$LOG_DIR" "$RUN_DIR"
    chmod 700 "$STATE_DIR" "$SPOOL_DIR"

    mkdir -p /etc/munge /var/log/munge /run/munge /var/lib/munge
    chown munge:munge /etc/munge /var/log/munge /run/munge /var/lib/munge
    chmod 700 /etc/munge /var/log/munge /var/lib/munge
    chmod 755 /run/munge
    touch "$MUNGE_LOG"
    chown munge:munge "$MUNGE_LOG"
    chmod 640 "$MUNGE_LOG"

    mkdir -p "$MYSQL_RUN"
    chown mysql:mysql "$MYSQL_RUN"
    chmod 755 "$MYSQL_RUN"
    touch "$MYSQL_LOG"
    chown mysql:mysql "$MYSQL_LOG"
    chmod 640 "$MYSQL_LOG"
}

# Sets SLURM_CONF_CHANGED / DBD_CONF_CHANGED to 0/1.
write_configs() {
    local host cline cpus mem sockets cores threads realmem
    host=$(hostname -s)
    cline=$(slurmd -C 2>/dev/null | head -n 1) || true
    [[ $cline == NodeName=* ]] || die "slurmd -C gave no node line: $cline"
    field() { sed -n "s/.*[[:space:]]$1=\([0-9]*\).*/\1/p" <<<"$cline"; }
    cpus=$(field CPUs)
    mem=$(field RealMemory)
    sockets=$(field SocketsPerBoard)
    cores=$(field CoresPerSocket)
    threads=$(field ThreadsPerCore)
    [[ -n $cpus && -n $mem ]] || die "cannot parse slurmd -C: $cline"
    # A bit below what slurmd measures, so the node never registers with
    # "Low RealMemory" and gets drained.
    realmem=$((mem * 95 / 100))
    ((realmem > 0)) || realmem=1
    local topo=""
    if [[ -n $sockets && -n $cores && -n $threads ]] &&
        ((sockets * cores * threads == cpus)); then
        topo=" Sockets=$sockets CoresPerSocket=$cores ThreadsPerCore=$threads"
    fi

    local conf
    conf=$(
        cat <<EOF
# Generated by scripts/slurm-cluster.sh -- edits will be overwritten.
ClusterName=$CLUSTER_NAME
SlurmctldHost=$host(127.0.0.1)
SlurmUser=root
SlurmdUser=root
MailProg=/bin/true
AuthType=auth/munge
CryptoType=crypto/munge
MpiDefault=none
SwitchType=switch/none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
MaxJobCount=100000
MaxArraySize=100001
MinJobAge=300
JobRequeue=1
# Quick time-limit enforcement: a --time=0:01:00 job ends TIMEOUT soon after.
OverTimeLimit=0
KillWait=5
InactiveLimit=0
MessageTimeout=10
SlurmctldTimeout=30
SlurmdTimeout=60
StateSaveLocation=$STATE_DIR
SlurmdSpoolDir=$SPOOL_DIR
SlurmctldPidFile=$RUN_DIR/slurmctld.pid
SlurmdPidFile=$RUN_DIR/slurmd.pid
SlurmctldLogFile=$LOG_DIR/slurmctld.log
SlurmdLogFile=$LOG_DIR/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
# Max RSS and CPU time per step, for jobledger usage (sampled every second).
JobAcctGatherType=jobacct_gather/linux
JobAcctGatherFrequency=task=1
JobCompType=jobcomp/none
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost
AccountingStoragePort=6819
NodeName=$host NodeAddr=127.0.0.1 CPUs=$cpus$topo RealMemory=$realmem State=UNKNOWN
PartitionName=$PARTITION Nodes=$host Default=YES MaxTime=INFINITE State=UP
EOF
    )
    SLURM_CONF_CHANGED=0
    if write_if_changed "$SLURM_CONF" "$conf" 0644; then
        SLURM_CONF_CHANGED=1
    fi

    local dbd
    dbd=$(
        cat <<EOF
# Generated by scripts/slurm-cluster.sh -- edits will be overwritten.
AuthType=auth/munge
DbdHost=localhost
DbdPort=6819
SlurmUser=root
DebugLevel=info
LogFile=$LOG_DIR/slurmdbd.log
PidFile=$RUN_DIR/slurmdbd.pid
StorageType=accounting_storage/mysql
StorageHost=localhost
StorageUser=$DB_USER
StoragePass=$DB_PASS
StorageLoc=$DB_NAME
EOF
    )
    DBD_CONF_CHANGED=0
    if write_if_changed "$SLURMDBD_CONF" "$dbd" 0600; then
        DBD_CONF_CHANGED=1
    fi
    chown root:root "$SLURMDBD_CONF"
}

# ---------------------------------------------------------------- daemons

munge_ok() { munge -n </dev/null 2>/dev/null | unmunge >/dev/null 2>&1; }

start_munge() {
    if [[ ! -s $MUNGE_KEY ]]; then
        say "creating munge key"
        dd if=/dev/urandom of="$MUNGE_KEY" bs=1024 count=1 status=none
    fi
    chown munge:munge "$MUNGE_KEY"
    chmod 400 "$MUNGE_KEY"
    if is_running munged && munge_ok; then
        return 0
    fi
    stop_daemon munged 10
    runuser -u munge -- /usr/sbin/munged --force --log-file="$MUNGE_LOG" \
        </dev/null >>"$MUNGE_LOG" 2>&1 9>&- || {
        show_logs "$MUNGE_LOG"
        die "munged failed to start"
    }
    wait_for "munge" "$WAIT_SECS" "$MUNGE_LOG" -- munge_ok
    say "started munged"
}

mysql_ok() { mariadb-admin --protocol=socket --socket="$MYSQL_SOCK" ping; }
mysql_ok_or_gone() { mysql_ok || ! is_running mariadbd; }

start_mariadb() {
    if is_running mariadbd; then
        # Running (maybe still starting): wait until it answers or dies.
        wait_for "mariadbd" "$WAIT_SECS" "$MYSQL_LOG" -- mysql_ok_or_gone
    fi
    if ! mysql_ok >/dev/null 2>&1; then
        if is_running mariadbd; then
            show_logs "$MYSQL_LOG"
            die "mariadbd runs but does not answer on $MYSQL_SOCK"
        fi
        # start-stop-daemon / init script are not reliable here; run directly.
        setsid /usr/sbin/mariadbd --user=mysql --pid-file="$MYSQL_PID" \
            --socket="$MYSQL_SOCK" --log-error="$MYSQL_LOG" \
            --innodb-lock-wait-timeout=900 \
            </dev/null >>"$MYSQL_LOG" 2>&1 9>&- &
        disown || true
        wait_for "mariadbd" "$WAIT_SECS" "$MYSQL_LOG" -- mysql_ok
        say "started mariadbd"
    fi
    mariadb --protocol=socket --socket="$MYSQL_SOCK" -u root <<EOF
CREATE DATABASE IF NOT EXISTS \`$DB_NAME\`;
CREATE USER IF NOT EXISTS '$DB_USER'@'localhost' IDENTIFIED BY '$DB_PASS';
ALTER USER '$DB_USER'@'localhost' IDENTIFIED BY '$DB_PASS';
GRANT ALL PRIVILEGES ON \`$DB_NAME\`.* TO '$DB_USER'@'localhost';
FLUSH PRIVILEGES;
EOF
}

dbd_ok() { sacctmgr -n -P list cluster format=Cluster; }
dbd_ok_or_gone() { dbd_ok || ! is_running slurmdbd; }
sacct_ok() { sacct -n -X >/dev/null; }

start_slurmdbd() {
    local restart=${1:-0}
    if is_running slurmdbd; then
        if ((restart)); then
            say "slurmdbd.conf changed, restarting slurmdbd"
            stop_daemon slurmdbd
        else
            wait_for "slurmdbd" "$WAIT_SECS" "$LOG_DIR/slurmdbd.log" -- dbd_ok_or_gone
            dbd_ok >/dev/null 2>&1 && return 0
            stop_daemon slurmdbd 10
        fi
    fi
    /usr/sbin/slurmdbd </dev/null >>"$LOG_DIR/slurmdbd.log" 2>&1 9>&- || {
        show_logs "$LOG_DIR/slurmdbd.log"
        die "slurmdbd failed to start"
    }
    wait_for "slurmdbd to answer" "$WAIT_SECS" "$LOG_DIR/slurmdbd.log" "$MYSQL_LOG" -- dbd_ok
    say "started slurmdbd"
}

ensure_cluster_registered() {
    if sacctmgr -n -P list cluster format=Cluster 2>/dev/null | grep -qx "$CLUSTER_NAME"; then
        return 0
    fi
    sacctmgr -i add cluster "$CLUSTER_NAME" >/dev/null
    say "registered cluster $CLUSTER_NAME in slurmdbd"
}

# start_slurm_daemon NAME RESTART [READY-CHECK...]: start slurmctld or slurmd
# (restarting it when its config changed) and wait for READY-CHECK if given.
start_slurm_daemon() {
    local name=$1 restart=${2:-0}
    shift 2
    if is_running "$name"; then
        ((restart)) || return 0
        say "slurm.conf changed, restarting $name"
        stop_daemon "$name"
    fi
    "/usr/sbin/$name" </dev/null >>"$LOG_DIR/$name.log" 2>&1 9>&- || {
        show_logs "$LOG_DIR/$name.log"
        die "$name failed to start"
    }
    if (($#)); then
        wait_for "$name to answer" "$WAIT_SECS" "$LOG_DIR/$name.log" -- "$@"
    fi
    say "started $name"
}

node_state() { sinfo -h -N -n "$(hostname -s)" -o '%t' 2>/dev/null | head -n 1; }

node_usable() {
    case $(node_state) in
        idle | mix | alloc | comp) return 0 ;;
        *) return 1 ;;
    esac
}

# Wait until the node is usable; resume it once if it is down/drained while
# slurmd runs (e.g. left drained by an earlier test).
wait_node() {
    local deadline=$((SECONDS + WAIT_SECS)) resumed=0 st
    while ! node_usable; do
        st=$(node_state)
        if ((!resumed)) && ((SECONDS > deadline - WAIT_SECS + 3)) &&
            [[ $st == down* || $st == drain* || $st == drng* || $st == fail* ]] &&
            is_running slurmd; then
            say "node is $st, resuming it"
            scontrol update nodename="$(hostname -s)" state=resume >/dev/null 2>&1 || true
            resumed=1
        fi
        if ((SECONDS >= deadline)); then
            printf 'slurm-cluster: ERROR: node not usable after %ss (state: %s)\n' \
                "$WAIT_SECS" "${st:-unknown}" >&2
            sinfo -N -l >&2 2>&1 || true
            show_logs "$LOG_DIR/slurmctld.log" "$LOG_DIR/slurmd.log"
            exit 1
        fi
        sleep 0.5
    done
}

# ---------------------------------------------------------------- commands

cmd_up() {
    local t0=$SECONDS
    [[ $(id -u) -eq 0 ]] || die "must run as root"
    ensure_packages
    make_dirs
    write_configs
    start_munge
    start_mariadb
    start_slurmdbd "$DBD_CONF_CHANGED"
    ensure_cluster_registered
    start_slurm_daemon slurmctld "$SLURM_CONF_CHANGED" scontrol ping
    start_slurm_daemon slurmd "$SLURM_CONF_CHANGED"
    wait_node
    wait_for "sacct to answer" "$WAIT_SECS" "$LOG_DIR/slurmdbd.log" "$LOG_DIR/slurmctld.log" -- sacct_ok
    say "up in $((SECONDS - t0))s: cluster $CLUSTER_NAME, node $(hostname -s) $(node_state), partition $PARTITION, accounting ok"
}

cmd_down() {
    [[ $(id -u) -eq 0 ]] || die "must run as root"
    stop_daemon slurmd
    stop_daemon slurmctld
    stop_daemon slurmdbd
    if is_running mariadbd; then
        # clean InnoDB shutdown; returns once the server has shut down
        mariadb-admin --protocol=socket --socket="$MYSQL_SOCK" shutdown >/dev/null 2>&1 || true
        if [[ -z $(all_daemon_pids mariadbd) ]]; then
            rm -f "$MYSQL_PID"
            say "stopped mariadbd"
        fi
    fi
    stop_daemon mariadbd 60
    stop_daemon munged
    say "down"
}

cmd_status() {
    local d pids ok=0
    for d in munged mariadbd slurmdbd slurmctld slurmd; do
        pids=$(daemon_pids "$d" | tr '\n' ' ')
        if [[ -n $pids ]]; then
            printf '%-10s running (pid %s)\n' "$d" "${pids% }"
        else
            printf '%-10s stopped\n' "$d"
        fi
    done
    if is_running slurmctld && sinfo 2>&1; then
        :
    else
        echo "sinfo: slurmctld not answering"
        ok=1
    fi
    if ! node_usable; then
        ok=1
    fi
    local err
    if err=$(sacct -n -X 2>&1 >/dev/null); then
        echo "accounting: ok"
    else
        echo "accounting: FAILED: ${err:-sacct failed}"
        ok=1
    fi
    return "$ok"
}

cmd_accounting() {
    [[ $(id -u) -eq 0 ]] || die "must run as root"
    case ${1:-} in
        off)
            stop_daemon slurmdbd
            ;;
        on)
            make_dirs
            write_configs
            start_munge
            start_mariadb
            start_slurmdbd "$DBD_CONF_CHANGED"
            ensure_cluster_registered
            wait_for "sacct to answer" "$WAIT_SECS" "$LOG_DIR/slurmdbd.log" -- sacct_ok
            say "accounting on"
            ;;
        *) die "usage: $0 accounting on|off" ;;
    esac
}

usage() {
    echo "usage: $0 up | down | status | accounting on|off" >&2
    exit 2
}

# Serialize concurrent invocations (e.g. parallel test sessions calling up).
# Every daemon is started with "9>&-" so that it does not inherit (and hold
# forever) the lock.
take_lock() {
    exec 9>/run/lock/jobledger-slurm-cluster.lock
    flock -w 300 9 || die "another slurm-cluster.sh is still running"
}

main() {
    case ${1:-} in
        up | down | accounting) take_lock ;;
    esac
    case ${1:-} in
        up) cmd_up ;;
        down) cmd_down ;;
        status) cmd_status ;;
        accounting) cmd_accounting "${2:-}" ;;
        *) usage ;;
    esac
}

main "$@"
