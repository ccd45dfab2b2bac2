# Sourced by the CI stages that boot Debian 12 (systemd as PID 1) in systemd-nspawn, after
# `set -Eeuo pipefail` and with `stage` set to the stage's name (for messages). It gives the
# stage its frame: the start time, an ERR trap naming the failed step, the root check, say(),
# pass() and fail() with their counters; then the stage calls, in this order:
#   host_packages PACKAGE...     install on the host those that are missing
#   nspawn_base_tree PACKAGE...  debootstrap the cached base tree once, add what it lacks
#   nspawn_overlay PREFIX        this run's root: an overlay on the base tree, in $root
#   nspawn_boot                  boot it; pass or fail "systemd booted", exit when it did not
#   ct COMMAND...                run a command in the container
# The EXIT trap stops the container and removes the run's tree.
# shellcheck shell=bash
# shellcheck disable=SC2154  # stage: the caller's
# shellcheck disable=SC2015  # "A && B || break": B never fails

started=$SECONDS
export DEBIAN_FRONTEND=noninteractive
# where a step that is not a check failed (not for the command substitutions inside checks)
trap '[ "$BASH_SUBSHELL" != 0 ] || echo "$stage stage: failed: $BASH_COMMAND (line $LINENO ${BASH_LINENO[*]})" >&2' ERR
[ "$(id -u)" = 0 ] || { echo "$stage stage: needs root (apt-get, debootstrap, mounts, systemd-nspawn)" >&2; exit 1; }
passed=0
failed=0
say() { echo "== [$((SECONDS - started)) s] $*"; }
pass() { passed=$((passed + 1)); echo "PASS: $*"; }
fail() { failed=$((failed + 1)); echo "FAIL: $*"; }

# host_packages PACKAGE...: the host has these installed
host_packages() {
    local package missing=()
    for package in "$@"; do
        dpkg-query -W -f '${db:Status-Abbrev}' "$package" 2>/dev/null | grep -q '^ii' || missing+=("$package")
    done
    if [ ${#missing[@]} = 0 ]; then
        say "host packages: present"
    else
        say "host packages: installing ${missing[*]}"
        apt-get update -q >/dev/null
        apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
    fi
}

cache=${HELLO_SYSTEMD_CACHE:-/var/tmp/hello-systemd}
base=$cache/bookworm          # reused while present, extended when a stage needs more packages
run=
root=
nspawn_pid=
init=

# nspawn_base_tree PACKAGE...: the base tree holds at least these packages
nspawn_base_tree() {
    local mirror include package missing=()
    mkdir -p "$cache"
    exec 9>"$cache/lock"
    flock 9   # one run at a time uses (and may extend) the base tree
    mirror=$(awk '/^URIs:/ { print $2; exit }' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
    mirror=${mirror:-http://deb.debian.org/debian}
    if [ ! -e "$base/.complete" ]; then
        say "base tree: debootstrap bookworm ($*)"
        rm -rf "$base"
        include=$(IFS=,; echo "$*")
        debootstrap --variant=minbase --include="$include" bookworm "$base" "$mirror" >"$cache/debootstrap.log" 2>&1 ||
            { tail -n 20 "$cache/debootstrap.log"; exit 1; }
        rm -f "$base/etc/apt/sources.list" "$base"/var/cache/apt/archives/*.deb
        [ -f /etc/apt/sources.list.d/debian.sources ] && cp /etc/apt/sources.list.d/debian.sources "$base/etc/apt/sources.list.d/"
        echo hello-ci >"$base/etc/hostname"
        touch "$base/.complete"
    else
        say "base tree: reusing $base"
    fi
    for package in "$@"; do
        dpkg-query --admindir="$base/var/lib/dpkg" -W -f '${db:Status-Abbrev}' "$package" 2>/dev/null | grep -q '^ii' ||
            missing+=("$package")
    done
    if [ ${#missing[@]} -gt 0 ]; then
        say "base tree: adding ${missing[*]}"
        # Single quotes: "$@" is the inner shell's, the packages passed after `sh`.
        # shellcheck disable=SC2016
        systemd-nspawn --register=no --keep-unit -q -D "$base" --pipe sh -c \
            'apt-get update -q >/dev/null && apt-get install -y -q --no-install-recommends "$@" >/dev/null && apt-get clean' \
            sh "${missing[@]}" </dev/null
        rm -rf "$base"/var/lib/apt/lists/*
    fi
}

# nspawn_overlay PREFIX: a fresh root for this run in $root, so every run starts from the same state
nspawn_overlay() {
    run=$(mktemp -d "/var/tmp/$1.XXXXXX")
    root=$run/root
    trap nspawn_cleanup EXIT
    mkdir -p "$run/upper" "$run/work" "$root"
    if ! mount -t overlay overlay -o "lowerdir=$base,upperdir=$run/upper,workdir=$run/work" "$root" 2>/dev/null; then
        say "no overlayfs here: copying the base tree"
        cp -a --reflink=auto "$base/." "$root/"
    fi
}

nspawn_cleanup() {
    local rc=$?
    trap - ERR
    if [ -n "$nspawn_pid" ] && kill -0 "$nspawn_pid" 2>/dev/null; then
        if [ "${KEEP:-0}" = 1 ]; then
            echo "container kept: nsenter -t $init -a bash; stop it with: kill $nspawn_pid"
            return $rc
        fi
        kill -TERM "$nspawn_pid" 2>/dev/null || true   # nspawn asks the container's systemd to power off
        for _ in $(seq 100); do kill -0 "$nspawn_pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$nspawn_pid" 2>/dev/null || true
        wait "$nspawn_pid" 2>/dev/null || true
    fi
    if [ -n "$run" ]; then
        mountpoint -q "$root" && umount "$root"
        rm -rf "$run"
    fi
    echo "== $stage stage: done in $((SECONDS - started)) s"
    return $rc
}

# the container's init: the process whose pid in its own namespace is 1, under nspawn
nspawn_find_init() {
    local status pid
    for status in /proc/[0-9]*/status; do
        pid=${status#/proc/}; pid=${pid%/status}
        [ "$pid" != "$nspawn_pid" ] || continue
        if awk -v want="$nspawn_pid" '/^PPid:/ { ppid = $2 } /^NSpid:/ { inner = $NF; n = NF }
               END { exit !(ppid == want && n > 2 && inner == 1) }' "$status" 2>/dev/null; then
            echo "$pid"; return 0
        fi
    done
    return 1
}

# run a command in the container (all its namespaces), with a clean environment
ct() {
    nsenter -t "$init" -a -- env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 \
        DEBIAN_FRONTEND=noninteractive "$@"
}

nspawn_boot() {
    local state deadline
    say "boot: systemd-nspawn --register=no --keep-unit --console=passive -b"
    systemd-nspawn --register=no --keep-unit --console=passive -b -D "$root" >"$run/console.log" 2>&1 &
    nspawn_pid=$!
    for _ in $(seq 300); do
        init=$(nspawn_find_init) && break
        kill -0 "$nspawn_pid" 2>/dev/null || break
        sleep 0.1
    done
    [ -n "$init" ] || { cat "$run/console.log"; echo "$stage stage: the container did not start" >&2; exit 1; }
    # Until the manager has finished starting up (60 s at most). Early in the boot systemctl
    # answers "offline" (the manager has not yet marked /run/systemd/system) or nothing at all
    # (its bus is not up): both mean "not yet", not "failed".
    deadline=$((SECONDS + 60))
    while :; do
        state=$(ct systemctl is-system-running 2>/dev/null || true)
        case $state in running | degraded | maintenance | stopping) break ;; esac
        [ $SECONDS -lt $deadline ] && kill -0 "$nspawn_pid" 2>/dev/null || break
        sleep 0.2
    done
    case $state in
        running) pass "systemd booted: is-system-running = running" ;;
        degraded) pass "systemd booted: is-system-running = degraded (units outside this project failed:)"
                  ct systemctl --failed --no-legend --plain | sed 's/^/   /' ;;
        *) fail "systemd booted: is-system-running = '${state}' after $((SECONDS - deadline + 60)) s"
           tail -n 30 "$run/console.log"; exit 1 ;;
    esac
}
