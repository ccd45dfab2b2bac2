#!/usr/bin/env bash
# CI stage: the Debian package. Builds hello-server_VERSION_ARCH.deb with config/build-deb.sh,
# runs lintian on it (any error or warning fails), then boots Debian 12 (systemd as PID 1) in
# systemd-nspawn on the debootstrap tree .ci/systemd.sh keeps, and there: `apt-get install` of
# the .deb (dependencies from the archive), a client answered on /run/hello/hello.sock with no
# other step, the manual pages and completion in place, an upgrade to a newer version keeping
# a changed configuration file, remove (the socket stops, the configuration stays) and purge
# (nothing left). Prints each check and how long each step took; exits non-zero if any fails.
#
# Usage: .ci/deb.sh
# Environment:
#   HELLO_SYSTEMD_CACHE  where the base tree is kept between runs (default /var/tmp/hello-systemd,
#                        shared with .ci/systemd.sh)
#   KEEP=1               leave the container running at the end and print how to enter it
# Needs root and the Debian archive (build dependencies, debootstrap, apt-get in the container).
# shellcheck disable=SC2015  # "A && pass ... || fail ...": pass never fails
# shellcheck disable=SC2016  # dpkg-query formats and scripts run in the container
set -Eeuo pipefail
cd "$(dirname "$0")/.."
stage=deb
# shellcheck source=.ci/nspawn.sh
source .ci/nspawn.sh
out=$PWD/build-deb-ci
step_started=$SECONDS
timings=()
step_done() { timings+=("$(printf '%-44s %4d s' "$1" $((SECONDS - step_started)))"); step_started=$SECONDS; }

# --- host packages ---------------------------------------------------------------------------
host_packages debootstrap systemd-container dpkg-dev lintian
step_done "host packages"

# --- build: the build dependencies from config/debian/control, then the package ---------------
rm -rf "$out"
say "build: config/build-deb.sh --install-build-deps $out"
if ! config/build-deb.sh --install-build-deps "$out" >"$out.log" 2>&1; then
    tail -n 40 "$out.log"
    echo "deb stage: the package did not build (log: $out.log)" >&2
    exit 1
fi
rm -f "$out.log"
deb=$(ls "$out"/hello-server_*_*.deb)
version=$(dpkg-deb -f "$deb" Version)
arch=$(dpkg-deb -f "$deb" Architecture)
pass "built $(basename "$deb"): $(stat -c %s "$deb") bytes, Installed-Size $(dpkg-deb -f "$deb" Installed-Size) KiB"
echo "   Depends: $(dpkg-deb -f "$deb" Depends)"
step_done "build the package"

# --- lintian -----------------------------------------------------------------------------------
say "lintian -I --show-overrides --fail-on error,warning $(basename "$deb")"
if lintian -I --show-overrides --fail-on error,warning "$deb" >"$out/lintian.txt" 2>&1; then
    pass "lintian: no error, no warning"
else
    fail "lintian: errors or warnings"
fi
grep -v '^running with root privileges' "$out/lintian.txt" | sed 's/^/   /' || true
step_done "lintian"

# --- an upgrade: the same package under a newer version --------------------------------------
# The .deb unpacked and packed again with the version bumped: to dpkg an upgrade like any
# other, without compiling everything a second time.
new_version=$version+ci1
repack=$(mktemp -d "$out/.repack.XXXXXX")
dpkg-deb -R "$deb" "$repack/tree"
sed -i "s/^Version: .*/Version: $new_version/" "$repack/tree/DEBIAN/control"
new_deb=$out/hello-server_${new_version}_$arch.deb
dpkg-deb --root-owner-group -Zxz -b "$repack/tree" "$new_deb" >/dev/null
rm -rf "$repack"
pass "upgrade package: $(basename "$new_deb")"
step_done "upgrade package"

# --- the base tree: .ci/systemd.sh's, made here the same way when there is none -----------------
tree_packages=(systemd systemd-sysv dbus procps util-linux passwd)
nspawn_base_tree "${tree_packages[@]}"
step_done "base tree"

# --- this run's tree: an overlay on the base, so that every run starts from the same state ---
nspawn_overlay hello-deb-run
mkdir -p "$root/var/tmp/debs"
cp "$deb" "$new_deb" "$root/var/tmp/debs/"

# --- boot ------------------------------------------------------------------------------------
nspawn_boot
step_done "boot the container"

# --- install -----------------------------------------------------------------------------------
show() { ct systemctl show -P "$2" "$1"; }             # show UNIT PROPERTY
state_of() { ct systemctl is-active "$1" || true; }
client() { ct timeout 20 hello-client --connect unix:/run/hello/hello.sock; }
wait_for() {
    local deadline=$((SECONDS + $1)); shift
    until "$@" >/dev/null 2>&1; do [ $SECONDS -lt $deadline ] || return 1; sleep 0.2; done
}
unit=hello-server.service
conf=/etc/hello/hello-server.conf

say "install: apt-get install ./$(basename "$deb") man-db (in the container)"
ct apt-get update -q >/dev/null
# The base tree may hold some of the package's libraries already (.ci/systemd.sh adds them):
# those that nothing else needs are purged here, so that apt has to find them in the archive.
purged=()
# the installed packages that are, or provide (libspdlog1.10 provides libspdlog1.10-fmt9), one
# of the package's dependencies
mapfile -t installed < <(
    ct dpkg-query -W -f '${db:Status-Abbrev}|${Package}|${Provides}\n' |
        awk -F'|' -v deps="$(dpkg-deb -f "$deb" Depends)" '
            function bare(s) { gsub(/\([^)]*\)| /, "", s); return s }
            BEGIN { n = split(deps, d, ","); for (i = 1; i <= n; i++) { sub(/\|.*/, "", d[i]); want[bare(d[i])] = 1 } }
            $1 ~ /^ii/ { found = ($2 in want); n = split($3, p, ",")
                         for (i = 1; i <= n; i++) if (bare(p[i]) in want) found = 1
                         if (found) print $2 }')
# the largest set of them that goes alone: a dependency stays in it when purging it would take
# nothing outside the set (libfmt9 takes libspdlog with it; libc6 or systemd take the system)
purge_alone() {   # purge_alone PACKAGE SET...: whether PACKAGE's purge takes only packages of SET
    local package=$1 plan; shift
    plan=$(ct apt-get -s purge "$package" 2>/dev/null | awk '$1 == "Purg" { print $2 }') || return 1
    [ -n "$plan" ] && ! grep -qvxF -f <(printf '%s\n' "$@") <<<"$plan"
}
while [ ${#installed[@]} -gt 0 ]; do
    keep=()
    for dependency in "${installed[@]}"; do
        if purge_alone "$dependency" "${installed[@]}"; then keep+=("$dependency"); fi
    done
    if [ ${#keep[@]} = ${#installed[@]} ]; then
        ct apt-get purge -y -q "${installed[@]}" >/dev/null 2>&1 && purged=("${installed[@]}")
        break
    fi
    installed=("${keep[@]}")
done
[ ${#purged[@]} = 0 ] || echo "   purged from the base tree first, for apt to fetch: ${purged[*]}"
if ct sh -c "cd /var/tmp/debs && apt-get install -y -q --no-install-recommends ./$(basename "$deb") man-db" \
        >"$run/install.log" 2>&1; then
    pass "apt-get install ./$(basename "$deb"): dependencies resolved from the archive"
    for dependency in "${purged[@]}"; do
        ct dpkg-query -W -f '${db:Status-Abbrev}' "$dependency" 2>/dev/null | grep -q '^ii' ||
            fail "apt-get install did not bring $dependency back"
    done
    grep -E '^(The following NEW|  )' "$run/install.log" | sed 's/^/   /' | head -n 12
else
    fail "apt-get install ./$(basename "$deb")"; tail -n 30 "$run/install.log"; exit 1
fi
step_done "install (apt-get, with man-db)"

# a client, right after the install and nothing else
reply=$(client 2>&1 || true)
[ "$reply" = "hello client" ] && pass "right after the install, hello-client --connect unix:/run/hello/hello.sock: $reply" ||
    fail "right after the install: hello-client --connect unix:/run/hello/hello.sock: '$reply'"
st=$(ct hello-server --version 2>&1 || true)
[ "$st" = "hello-server ${version%%[-+~]*}" ] && pass "hello-server --version: $st" || fail "hello-server --version: '$st'"
st="$(ct systemctl is-enabled hello-server.socket || true) $(state_of hello-server.socket)"
[ "$st" = "enabled active" ] && pass "hello-server.socket: enabled, active" || fail "hello-server.socket: '$st'"
st=$(ct systemctl is-enabled $unit || true)
[ "$st" = disabled ] && pass "$unit: disabled (started by its socket), and $(state_of $unit) after the client" ||
    fail "$unit: is-enabled '$st'"
st=$(ct sh -c 'getent passwd hello | cut -d: -f1,6,7; getent group hello | cut -d: -f1' | tr '\n' ' ' || true)
[ "$st" = "hello:/nonexistent:/usr/sbin/nologin hello " ] && pass "systemd-sysusers made user and group hello: $st" ||
    fail "user and group hello: '$st'"
# group and mode from the socket unit; the owner is root until the service's RuntimeDirectory=
# set-up hands /run/hello and what is in it to user hello
st=$(ct stat -c '%G %a' /run/hello/hello.sock 2>&1 || true)
[ "$st" = "hello 660" ] && pass "/run/hello/hello.sock: group hello, mode 0660" || fail "/run/hello/hello.sock: '$st'"
pid=$(show $unit MainPID)
st=$(ct stat -c %U "/proc/$pid" 2>/dev/null || true)
[ "$st" = hello ] && pass "the server runs as user hello (pid $pid)" || fail "the server's user: '$st' (pid $pid)"
for page in hello-server hello-client "5 hello-server.conf"; do
    # shellcheck disable=SC2086  # "5 hello-server.conf": section and page
    st=$(ct man -w $page 2>&1 || true)
    case $st in /usr/share/man/man*/*.gz) pass "man -w $page: $st" ;; *) fail "man -w $page: '$st'" ;; esac
done
st=$(ct sh -c 'MANWIDTH=80 man --warnings hello-server 2>&1 >/dev/null' || true)
[ -z "$st" ] && pass "man --warnings hello-server: no warning" || fail "man --warnings hello-server: $st"
st=$(ct bash --norc -c 'source /usr/share/bash-completion/completions/hello-server
    COMP_WORDS=(hello-server --framing ""); COMP_CWORD=2; _hello_server; echo "${COMPREPLY[*]}"' 2>&1 || true)
[ "$st" = "raw line" ] && pass "bash completion installed: hello-server --framing <TAB> offers: $st" ||
    fail "bash completion: '$st'"
st=$(ct dpkg-query -W -f '${Conffiles}' hello-server | awk 'NF { print $1 }')
[ "$st" = $conf ] && pass "conffiles: $st" || fail "conffiles: '$st'"
ct dpkg -L hello-server >"$run/files.txt"
missing_files=$(while read -r f; do ct test -e "$f" || echo "$f"; done <"$run/files.txt")
[ -z "$missing_files" ] && pass "dpkg -L hello-server: $(wc -l <"$run/files.txt") paths, all present" ||
    fail "dpkg -L hello-server lists missing paths: $missing_files"
step_done "checks after the install"

# --- upgrade: a changed configuration file is kept --------------------------------------------
ct sed -i 's/^log-level = info$/log-level = debug/' $conf
ct sh -c "echo '# changed by the administrator' >> $conf"
before=$(ct md5sum $conf | cut -d' ' -f1)
old_pid=$(show $unit MainPID)
say "upgrade: dpkg -i $(basename "$new_deb") (no terminal: a question about the conffile would fail it)"
if ct sh -c "cd /var/tmp/debs && dpkg -i ./$(basename "$new_deb") </dev/null" >"$run/upgrade.log" 2>&1; then
    pass "dpkg -i $(basename "$new_deb"): upgraded $version -> $(ct dpkg-query -W -f '${Version}' hello-server)"
else
    fail "dpkg -i $(basename "$new_deb")"; sed 's/^/   /' "$run/upgrade.log"
fi
after=$(ct md5sum $conf | cut -d' ' -f1)
[ "$before" = "$after" ] && ct grep -q '^log-level = debug$' $conf &&
    pass "the changed $conf is kept across the upgrade" || fail "$conf after the upgrade: $(ct cat $conf | tail -n 3)"
leftovers=$(ct sh -c 'ls /etc/hello/*.dpkg-* 2>/dev/null' || true)
[ -z "$leftovers" ] && pass "no .dpkg-dist/.dpkg-new beside it" || fail "left beside it: $leftovers"
wait_for 10 client || true
new_pid=$(show $unit MainPID)
if [ "$(client 2>&1)" = "hello client" ] && [ "$new_pid" != 0 ] && [ "$new_pid" != "$old_pid" ]; then
    pass "after the upgrade the running server was restarted (pid $old_pid -> $new_pid) and answers"
else
    fail "after the upgrade: pid $old_pid -> $new_pid, $(client 2>&1 || true)"
fi
# the debug lines are the clients' connections just above: journald may store them a moment later
debug_lines() { ct journalctl -q -o cat _PID="$new_pid" -p debug..debug | grep -c . || true; }
has_debug_lines() { [ "$(debug_lines)" -gt 0 ]; }
wait_for 10 has_debug_lines || true
st=$(debug_lines)
[ "$st" -gt 0 ] && pass "the restarted server reads the kept file (log-level = debug: $st debug lines)" ||
    fail "no debug lines from the restarted server"
step_done "upgrade"

# --- remove: the socket and the service stop, the configuration stays --------------------------
say "remove: apt-get remove hello-server"
if ct apt-get remove -y -q hello-server >"$run/remove.log" 2>&1; then pass "apt-get remove hello-server"
else fail "apt-get remove hello-server"; sed 's/^/   /' "$run/remove.log"; fi
st="$(state_of hello-server.socket) $(state_of $unit)"
[ "$st" = "inactive inactive" ] && pass "after remove: hello-server.socket and $unit are inactive" ||
    fail "after remove: socket, service: '$st'"
ct test -e /usr/bin/hello-server || ct test -e /usr/bin/hello-client && fail "after remove the programs are still there" ||
    pass "after remove /usr/bin/hello-server and hello-client are gone"
# nothing listens: systemd closed it (the file itself may stay, as RemoveOnStop= is off)
listening=$(ct sh -c "grep -c ' /run/hello/hello.sock\$' /proc/net/unix" || true)
[ "${listening:-0}" = 0 ] && pass "after remove nothing listens on /run/hello/hello.sock" ||
    fail "after remove something listens on /run/hello/hello.sock"
st=$(ct dpkg-query -W -f '${db:Status-Abbrev}' hello-server 2>&1 || true)
ct test -f $conf && [ "${st% }" = rc ] && pass "after remove: status rc, $conf kept" ||
    fail "after remove: status '$st', $conf $(ct test -f $conf && echo present || echo missing)"
step_done "remove"

# --- purge: nothing is left -------------------------------------------------------------------
say "purge: apt-get purge hello-server"
if ct apt-get purge -y -q hello-server >"$run/purge.log" 2>&1; then pass "apt-get purge hello-server"
else fail "apt-get purge hello-server"; sed 's/^/   /' "$run/purge.log"; fi
left=$(while read -r f; do
           case $f in /. | /etc | /lib | /lib/systemd | /lib/systemd/system | /usr | /usr/*) ;;
               *) if ct test -e "$f"; then echo "$f"; fi ;;
           esac
       done <"$run/files.txt"
       ct sh -c 'ls -d /etc/hello /run/hello /etc/systemd/system/*/hello-server.* \
                       /var/lib/systemd/deb-systemd-helper-enabled/*hello* \
                       /var/lib/systemd/deb-systemd-helper-enabled/*/*hello* 2>/dev/null' || true)
# /usr and the directories other packages share stay; every file of the package must be gone
left_files=$(while read -r f; do if ct test -f "$f"; then echo "$f"; fi; done <"$run/files.txt")
if [ -z "$left" ] && [ -z "$left_files" ]; then
    pass "after purge: no file of the package, no /etc/hello, no /run/hello, no unit symlink or state"
else
    fail "after purge, left: $left $left_files"
fi
st=$(ct dpkg-query -W -f '${db:Status-Abbrev}' hello-server 2>/dev/null || true)
[ -z "$st" ] || [ "${st% }" = un ] && pass "dpkg no longer knows hello-server" || fail "dpkg status after purge: '$st'"
st=$(ct getent passwd hello || true)
echo "   (the system user stays, as Debian leaves system accounts: ${st:-none})"
step_done "purge"

echo "-- timings:"
printf '   %s\n' "${timings[@]}"
echo "deb: $passed passed, $failed failed"
if [ $failed -gt 0 ]; then exit 1; fi
