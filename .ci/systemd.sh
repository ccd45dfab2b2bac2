#!/usr/bin/env bash
# CI stage: the systemd units under a real systemd. Boots Debian 12 (systemd as PID 1) in
# systemd-nspawn on a debootstrap tree, installs the project into it with `cmake --install`,
# and checks socket activation, readiness, reload, the watchdog, a clean stop and journald
# priorities. Prints each check, exits non-zero if any fails.
#
# Usage: .ci/systemd.sh [BUILD_DIR]
#   BUILD_DIR  an existing build to install (default: a Release build in build-systemd/)
# Environment:
#   HELLO_SYSTEMD_CACHE  where the base tree is kept between runs (default /var/tmp/hello-systemd)
#   KEEP=1               leave the container running at the end and print how to enter it
# Needs root and the Debian archive (for debootstrap and apt-get).
# shellcheck disable=SC2015  # "A && pass ... || fail ...": pass never fails
set -Eeuo pipefail
cd "$(dirname "$0")/.."
stage=systemd
# shellcheck source=.ci/nspawn.sh
source .ci/nspawn.sh
unit=hello-server.service

# --- host packages ---------------------------------------------------------------------------
wanted=(debootstrap systemd-container)
build=${1:-}
[ -n "$build" ] || wanted+=(g++ cmake ninja-build pkg-config libboost1.81-dev libboost-program-options1.81-dev
                             libspdlog-dev libsystemd-dev)
host_packages "${wanted[@]}"

# --- the build -------------------------------------------------------------------------------
if [ -z "$build" ]; then
    build="build-systemd"
    say "build: Release, tests off, in $build"
    cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DHELLO_BUILD_TESTS=OFF >/dev/null
    cmake --build "$build"
fi
build=$(realpath "$build")
for program in hello-server hello-client; do
    [ -x "$build/apps/$program" ] || { echo "systemd stage: no $build/apps/$program" >&2; exit 1; }
done

# The Debian packages holding the programs' shared libraries, found through the host's dpkg
# (the tree must hold the same ones: it is the same release).
runtime_packages() {
    local lib path candidate package
    ldd "$build/apps/hello-server" "$build/apps/hello-client" | awk '$2 == "=>" && $3 ~ /^\// { print $3 }' |
        sort -u | while read -r lib; do
            path=$(realpath "$lib")
            package=
            for candidate in "$lib" "$path" "${lib#/usr}" "/usr${lib#/usr}" "${path#/usr}" "/usr${path#/usr}"; do
                package=$(dpkg -S "$candidate" 2>/dev/null | head -n1 | cut -d: -f1) && [ -n "$package" ] && break
            done
            [ -n "$package" ] || { echo "systemd stage: no Debian package holds $lib" >&2; exit 1; }
            echo "$package"
        done | sort -u
}
mapfile -t libs < <(runtime_packages)
# procps: /bin/kill for ExecReload=; util-linux: setpriv, to connect as other users
tree_packages=(systemd systemd-sysv dbus procps util-linux passwd "${libs[@]}")

# --- the base tree and this run's overlay on it (.ci/nspawn.sh) -------------------------------
nspawn_base_tree "${tree_packages[@]}"
nspawn_overlay hello-systemd-run

say "install: DESTDIR=$root cmake --install $build --prefix /usr"
DESTDIR=$root cmake --install "$build" --prefix /usr | sed 's/^/   /'
for program in hello-server hello-client; do
    if [ ! -e "$root/usr/bin/$program" ]; then   # a build without install rules for the programs
        echo "   Copying: $build/apps/$program -> /usr/bin/$program"
        install -m 0755 "$build/apps/$program" "$root/usr/bin/$program"
    fi
done

# --- boot ------------------------------------------------------------------------------------
nspawn_boot

# --- the checks --------------------------------------------------------------------------------
show() { ct systemctl show -P "$2" "$1"; }             # show UNIT PROPERTY
client() { ct timeout 20 hello-client --connect "$@"; } # hello-client as root in the container
# wait_for SECONDS COMMAND...: poll until COMMAND succeeds
wait_for() {
    local deadline=$((SECONDS + $1)); shift
    until "$@" >/dev/null 2>&1; do [ $SECONDS -lt $deadline ] || return 1; sleep 0.2; done
}
state_of() { ct systemctl is-active "$1" || true; }
is_active() { [ "$(state_of "$1")" = active ]; }
answers() { [ "$(client "$@" 2>/dev/null)" = "hello client" ]; }

ct systemd-sysusers
ct useradd --no-create-home --groups hello alice
ct useradd --no-create-home bob
ct systemctl daemon-reload

out=$(ct systemd-analyze verify /usr/lib/systemd/system/hello-server.socket /usr/lib/systemd/system/$unit 2>&1) &&
    [ -z "$out" ] && pass "systemd-analyze verify prints nothing" ||
    { fail "systemd-analyze verify:"; echo "$out" | sed 's/^/   /'; }
score=$(ct systemd-analyze security $unit 2>&1 | sed -n 's/.*Overall exposure level for [^:]*: \([0-9.]*\).*/\1/p')
if [ -n "$score" ] && awk -v s="$score" 'BEGIN { exit !(s <= 2.0) }'; then
    pass "systemd-analyze security: $score (2.0 or lower)"
else
    fail "systemd-analyze security: '$score', want 2.0 or lower"
fi

if ct systemctl enable --now hello-server.socket 2>&1 | sed 's/^/   /'; [ "${PIPESTATUS[0]}" = 0 ] &&
   is_active hello-server.socket; then
    pass "systemctl enable --now hello-server.socket: the socket is active"
else
    fail "systemctl enable --now hello-server.socket"
fi
st=$(ct stat -c '%U:%G %a' /run/hello/hello.sock 2>&1 || true)
[ "$st" = "root:hello 660" ] && pass "/run/hello/hello.sock is root:hello 0660" || fail "/run/hello/hello.sock: '$st'"
st=$(state_of $unit)
[ "$st" = inactive ] && pass "$unit is inactive before the first client" || fail "$unit before the first client: '$st'"

reply=$(client unix:/run/hello/hello.sock 2>&1 || true)
[ "$reply" = "hello client" ] && pass "the first client starts the service and gets: $reply" ||
    fail "hello-client --connect unix:/run/hello/hello.sock: '$reply'"
st=$(state_of $unit)
[ "$st" = active ] && pass "systemctl is-active $unit: active" || fail "systemctl is-active $unit: '$st'"
pid=$(show $unit MainPID)
st=$(ct stat -c %U "/proc/$pid" 2>/dev/null || true)
[ "$st" = hello ] && pass "the server runs as user hello (pid $pid)" || fail "the server's user: '$st' (pid $pid)"
as_user() { ct setpriv --reuid="$1" --regid="$1" --init-groups timeout 20 hello-client --connect unix:/run/hello/hello.sock; }
[ "$(as_user alice 2>&1)" = "hello client" ] && pass "alice (group hello) gets hello client" ||
    fail "alice (group hello): '$(as_user alice 2>&1)'"
rc=0; out=$(as_user bob 2>&1) || rc=$?
[ $rc = 69 ] && pass "bob (not in group hello) is refused: $out" || fail "bob (not in group hello): exit $rc, '$out'"
st=$(show $unit StatusText)
[ -n "$st" ] && pass "the server's status: $st" || fail "no STATUS= from the server (StatusText empty)"

# reload: a second endpoint and line framing, from the file; the same process goes on
conf=/etc/hello/hello-server.conf
ct cp $conf $conf.orig
ct sed -i 's/^framing = raw$/framing = line/' $conf
ct sh -c "echo 'listen = unix:/run/hello/second.sock' >> $conf"
if ct systemctl reload $unit; then pass "systemctl reload $unit"; else fail "systemctl reload $unit"; fi
if wait_for 10 answers unix:/run/hello/second.sock --framing line &&
   answers unix:/run/hello/hello.sock --framing line; then
    pass "after the reload: unix:/run/hello/second.sock answers, and both answer line framing"
else
    fail "the reload did not apply: second.sock '$(client unix:/run/hello/second.sock --framing line --timeout 2 2>&1)'," \
         "line framing on hello.sock '$(client unix:/run/hello/hello.sock --framing line --timeout 2 2>&1)'"
fi
[ "$pid" != 0 ] && [ "$(show $unit MainPID)" = "$pid" ] && pass "the reload kept the process (pid $pid)" ||
    fail "the reload kept no process: main pid $pid -> $(show $unit MainPID)"
# a broken file: the reload fails before it reaches the server, which carries on
ct sh -c "echo 'framing = sideways' >> $conf"
if ! is_active $unit; then fail "systemctl reload with a broken config: the service is not running"
elif ct systemctl reload $unit 2>/dev/null; then fail "systemctl reload with a broken config succeeded"
else pass "systemctl reload with a broken config fails (ExecReload= checks the file first)"; fi
if is_active $unit && [ "$(show $unit MainPID)" = "$pid" ] && answers unix:/run/hello/hello.sock --framing line; then
    pass "after the refused reload the server still serves (pid $pid)"
else
    fail "after the refused reload: $(state_of $unit), pid $(show $unit MainPID)"
fi
# the same broken file through SIGHUP alone: the server itself logs why, at error priority
since=$(ct date +%s)
ct systemctl kill -s SIGHUP --kill-whom=main $unit || true
server_lines() { ct journalctl -q -o cat _PID="$pid" --since "@$since" -p "$1"; }
has_server_errors() { [ -n "$(server_lines err)" ]; }
wait_for 5 has_server_errors || true
errors=$(server_lines err)
infos=$(ct journalctl -q -o cat _PID="$pid" -p info..info)
if [ -n "$errors" ] && [ -n "$infos" ] && ! grep -qxF -f <(echo "$infos") <(echo "$errors"); then
    pass "journald priorities: the server's error lines are at err, its info lines are not"
    ct journalctl -q -p err -u hello-server --since "@$since" | sed 's/^/   journalctl -p err -u hello-server: /'
else
    fail "journald priorities: the server's lines at err: '${errors}'; at info: $(echo "$infos" | grep -c .) lines"
fi
answers unix:/run/hello/hello.sock --framing line && pass "a broken config via SIGHUP leaves the server serving" ||
    fail "a broken config via SIGHUP: the server no longer answers"
ct mv $conf.orig $conf
ct systemctl reload $unit || true

# watchdog: a hung event loop is killed and the service restarted. SIGSTOP hangs it from outside,
# as a deadlock would: no WATCHDOG=1 comes any more, and no code in the server is there for tests.
ct mkdir -p /etc/systemd/system/$unit.d
ct sh -c "printf '[Service]\nWatchdogSec=3s\n' > /etc/systemd/system/$unit.d/50-test-watchdog.conf"
ct systemctl daemon-reload
ct systemctl restart $unit || true
wait_for 10 is_active $unit || true
pid=$(show $unit MainPID)
restarts=$(show $unit NRestarts)
if ! is_active $unit || ! answers unix:/run/hello/hello.sock; then
    fail "watchdog: the service with WatchdogSec=3s is not serving ($(state_of $unit))"
else
    since=$(ct date +%s)
    ct systemctl kill -s SIGSTOP --kill-whom=main $unit || true
    restarted() { [ "$(show $unit NRestarts)" -gt "$restarts" ] && is_active $unit; }
    # journald may store systemd's line a moment after the restart is visible
    watchdog_logged() { ct journalctl -q -u $unit --since "@$since" | grep -q 'Watchdog timeout'; }
    if wait_for 15 restarted; then
        if wait_for 5 watchdog_logged; then
            pass "watchdog: the hung server (pid $pid) was killed and restarted as pid $(show $unit MainPID), NRestarts $restarts -> $(show $unit NRestarts)"
        else
            fail "watchdog: restarted, but not for a watchdog timeout"
        fi
        ct journalctl -q -u $unit --since "@$since" | grep -E 'Watchdog|Failed with|Scheduled restart' | sed 's/^/   /'
    elif answers unix:/run/hello/hello.sock --timeout 2; then
        fail "watchdog: the server still answers after SIGSTOP"
    else
        fail "watchdog: the server stopped answering but was not restarted within 15 s"
    fi
fi
wait_for 10 answers unix:/run/hello/hello.sock || true
ct rm -r /etc/systemd/system/$unit.d
ct systemctl daemon-reload

# stop: clean, the socket stays, and the next client starts the service again
if ct systemctl stop $unit && [ "$(show $unit Result)" = success ] &&
   [ "$(show $unit ExecMainCode)" = 1 ] && [ "$(show $unit ExecMainStatus)" = 0 ]; then
    pass "systemctl stop $unit: Result=success, exit status 0"
else
    fail "systemctl stop $unit: Result=$(show $unit Result) ExecMainCode=$(show $unit ExecMainCode) ExecMainStatus=$(show $unit ExecMainStatus)"
fi
if ct test -S /run/hello/hello.sock && is_active hello-server.socket && answers unix:/run/hello/hello.sock &&
   is_active $unit; then
    pass "after the stop the socket is still there and the next client starts the service again"
else
    fail "after the stop: socket $(state_of hello-server.socket), service $(state_of $unit)"
fi
ct systemctl stop hello-server.socket $unit || true
ct systemctl start hello-server.socket || true
if answers unix:/run/hello/hello.sock; then pass "stop and start of both units: the socket works again"
else fail "stop and start of both units: no answer"; fi

if [ $failed -gt 0 ]; then
    echo "-- journal of the hello units:"
    ct journalctl -q -u hello-server.socket -u $unit --no-pager | tail -n 60 | sed 's/^/   /'
fi
echo "systemd: $passed passed, $failed failed"
if [ $failed -gt 0 ]; then exit 1; fi
