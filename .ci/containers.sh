#!/usr/bin/env bash
# CI stage "containers": builds docker/Dockerfile, runs the image, both docker-compose demos (with
# podman-compose, and with docker-compose through podman's Docker API) and the Kubernetes pod (podman kube
# play), and checks what a user would see: the client printed
# "hello client" replies and exited 0, and the server, PID 1 in its container with no init, stopped on
# SIGTERM with exit 0 well before the runtime's SIGKILL.
#
# Needs root on Debian 12 and nothing else: podman, podman-compose and debootstrap come from Debian's archive,
# and the debian:bookworm and debian:bookworm-slim base images are built with debootstrap when missing (no
# image registry is used). Any check that cannot run fails the stage. On exit it removes every container,
# pod, volume and network it made. Images stay (uds-hello:latest, and uds-hello:build as the layer cache for the
# next run); the ones the previous run left are removed.
set -euo pipefail
cd "$(dirname "$0")/.."

readonly IMAGE=localhost/uds-hello:latest
readonly BUILD_IMAGE=localhost/uds-hello:build
readonly POD_FILE=docker/k8s/hello-pod.yaml
readonly MAX_IMAGE_MB=100
# A clean SIGTERM stop takes well under a second, but what is timed includes podman's own work: `down`
# also removes the containers, the volume and the network (1.5-2.2 s on an idle machine). The drain
# timeout is 10 s and the runtime's SIGKILL comes after 10-15 s: either takes longer than this.
readonly STOP_LIMIT_S=8
readonly BASE=docker.io/library/debian:bookworm
readonly SLIM=docker.io/library/debian:bookworm-slim

readonly PROJECTS=(helloci_unix helloci_tcp hellocidcunix hellocidctcp) # compose project names
readonly POD=hello                                                         # the manifest's pod

start=$SECONDS
passed=0
kube_network_existed=1 # until known otherwise: never remove what may not be ours

step() { echo "== [$((SECONDS - start)) s] $*"; }
ok() {
    passed=$((passed + 1))
    echo "ok: $*"
}
exec 3>&2 # the stage's stderr, for failures inside commands whose output goes to a log
fail() {
    echo "FAILED: $*" >&3
    exit 1
}
# Runs a command that must succeed, with a bound on how long it may take.
# Its stderr is shown, less podman's complaint that this machine has no systemd to time health checks by.
run() {
    local limit=$1 rc=0
    shift
    timeout --kill-after=10 "$limit" "$@" 2>"$scratch/stderr" || rc=$?
    grep -v 'unable to get systemd connection' "$scratch/stderr" >&2 || true
    [ "$rc" = 0 ] || fail "$* (exit $rc)"
}

# Removes what the stage makes (containers, the pod, volumes, networks), from this run or one that died.
sweep() {
    local p label kind
    for p in "${PROJECTS[@]}"; do
        for label in com.docker.compose.project io.podman.compose.project; do
            podman ps -a -q --filter "label=$label=$p" | xargs -r podman rm -f -t 0
            for kind in volume network; do
                podman "$kind" ls -q --filter "label=$label=$p" | xargs -r podman "$kind" rm -f
            done
        done
    done
    podman pod rm -f -t 0 "$POD"
    podman volume rm -f hello-socket
    podman rm -f -t 0 helloci-image
} >/dev/null 2>&1

cleanup() {
    local rc=$?
    set +e
    [ -n "${service_pid:-}" ] && kill "$service_pid" 2>/dev/null && wait "$service_pid" 2>/dev/null
    if command -v podman >/dev/null; then
        sweep
        [ -n "${kube_network_existed:-}" ] || podman network rm podman-default-kube-network >/dev/null 2>&1
    fi
    rm -rf "${scratch:-}"
    echo "== containers stage: $((SECONDS - start)) s"
    if [ "$rc" = 0 ]; then
        echo "containers: $passed passed, 0 failed"
    else
        echo "containers: $passed passed, 1 failed" >&2
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

[ "$(id -u)" = 0 ] || fail "needs root (podman's rootful store, debootstrap)"
scratch=$(mktemp -d /var/tmp/uds-hello-ci.XXXXXX)

# --- the container engine --------------------------------------------------------------------------------
step "packages"
packages=(podman runc conmon netavark aardvark-dns iptables slirp4netns uidmap catatonit podman-compose docker-compose
    debootstrap)
missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f '${Status}' "$p" 2>/dev/null | grep -qx 'install ok installed' || missing+=("$p")
done
if [ "${#missing[@]}" = 0 ]; then
    echo "already installed"
else
    run 600 apt-get update -q >/dev/null
    DEBIAN_FRONTEND=noninteractive run 900 apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
fi

step "podman settings"
# These VMs lack CAP_SYS_RESOURCE, so podman's default rlimits (nofile=1048576; it caps its own nproc at
# 32768) fail with EPERM; crun refuses their hybrid cgroup layout while runc works; and with no CNI plugins
# installed, netavark must be named to keep podman from looking for them.
mkdir -p /etc/containers/containers.conf.d
cat >/etc/containers/containers.conf.d/50-uds-hello-ci.conf <<CONF
# written by uds-hello's .ci/containers.sh
[containers]
default_ulimits = ["nofile=$(ulimit -Hn):$(ulimit -Hn)", "nproc=32768:32768"]
[network]
network_backend = "netavark"
[engine]
runtime = "runc"
CONF
echo "podman $(podman version --format '{{.Client.Version}}'), $(podman-compose version 2>/dev/null |
    grep -m1 -o 'podman-compose[a-z]* version .*')"

podman network exists podman-default-kube-network || kube_network_existed=
if podman pod exists "$POD" || [ -n "$(podman ps -a -q --filter name='^helloci')" ]; then
    echo "removing what an earlier run left"
fi
sweep

# --- base images -------------------------------------------------------------------------------------------
step "base image $BASE"
if podman image exists "$BASE"; then
    echo "present"
else
    # the archive this machine uses (the first URIs of its deb822 sources), else Debian's own
    sources=/etc/apt/sources.list.d/debian.sources
    mirror=$(awk '/^URIs:/ { print $2; exit }' "$sources" 2>/dev/null || true)
    mirror=${mirror:-http://deb.debian.org/debian}
    root=$scratch/rootfs
    timeout -k 10 900 nice -n 10 debootstrap --variant=minbase bookworm "$root" "$mirror" >"$scratch/debootstrap.log" ||
        { tail -20 "$scratch/debootstrap.log"; fail "debootstrap"; }
    # The official image's apt sources (bookworm, -updates, -security), with their updates applied.
    rm -f "$root/etc/apt/sources.list"
    if [ -f "$sources" ]; then
        cp "$sources" "$root/etc/apt/sources.list.d/debian.sources"
    else
        printf '%s\n' 'Types: deb' "URIs: $mirror" 'Suites: bookworm bookworm-updates' 'Components: main' \
            'Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg' '' 'Types: deb' \
            'URIs: http://deb.debian.org/debian-security' 'Suites: bookworm-security' 'Components: main' \
            'Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg' >"$root/etc/apt/sources.list.d/debian.sources"
    fi
    timeout -k 10 600 chroot "$root" sh -c 'apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get upgrade -y -q' \
        >"$scratch/upgrade.log" || { tail -20 "$scratch/upgrade.log"; fail "upgrading the base"; }
    rm -rf "$root"/var/cache/apt/*.bin "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/* \
        "$root"/var/log/apt/* "$root"/var/log/dpkg.log "$root"/var/log/bootstrap.log
    : >"$root/etc/resolv.conf"
    tar -C "$root" -c . | run 300 podman import -q --change 'CMD ["bash"]' - "$BASE" >/dev/null
    rm -rf "$root"
    podman tag "$BASE" localhost/debian:bookworm
fi
ok "base image $BASE: $(podman image inspect -f '{{.Size}}' "$BASE" | awk '{ printf "%.0f MB", $1 / 1e6 }')"

step "base image $SLIM"
# Made from the full image the way Debian's official slim one is: no documentation, manual pages or
# translations, and dpkg told to leave them out of every later install. A slim tag that is only another
# name for the full image (as some set-ups make it) is replaced.
if podman image exists "$SLIM" &&
    [ "$(podman image inspect -f '{{.Id}}' "$SLIM")" != "$(podman image inspect -f '{{.Id}}' "$BASE")" ]; then
    echo "present"
else
    mkdir -p "$scratch/slim"
    cat >"$scratch/slim/Containerfile" <<EOF
FROM $BASE
RUN printf '%s\n' '# the "slim" variant: no documentation, manual pages or translations' \
      'path-exclude /usr/share/doc/*' 'path-include /usr/share/doc/*/copyright' 'path-exclude /usr/share/groff/*' \
      'path-exclude /usr/share/info/*' 'path-exclude /usr/share/linda/*' 'path-exclude /usr/share/lintian/overrides/*' \
      'path-exclude /usr/share/locale/*' 'path-exclude /usr/share/man/*' > /etc/dpkg/dpkg.cfg.d/docker \
 && find /usr/share/doc -mindepth 1 ! -type d ! -name copyright -delete \
 && find /usr/share/doc -mindepth 1 -type d -empty -delete \
 && rm -rf /usr/share/groff/* /usr/share/info/* /usr/share/linda/* /usr/share/lintian/overrides/* \
      /usr/share/locale/* /usr/share/man/*
EOF
    run 300 podman build -q --squash-all -t "$SLIM" "$scratch/slim" >/dev/null
fi
ok "base image $SLIM: $(podman image inspect -f '{{.Size}}' "$SLIM" | awk '{ printf "%.0f MB", $1 / 1e6 }')"

# --- the image -------------------------------------------------------------------------------------------
step "image $IMAGE"
version=$(sed -n 's/^project(uds-hello VERSION \([^ ]*\) .*/\1/p' CMakeLists.txt)
[ -n "$version" ] || fail "no project version in CMakeLists.txt"
revision=$(git rev-parse HEAD 2>/dev/null || true)
# The build stage is tagged too: it is the layer cache for the next run, and naming it lets the images the
# previous run left behind be removed without touching anyone else's.
previous=$(podman image inspect -f '{{.Id}}' "$IMAGE" "$BUILD_IMAGE" 2>/dev/null || true)
build() { # docker format: OCI images have no HEALTHCHECK
    timeout -k 10 1800 nice -n 10 podman build --format docker --layers -f docker/Dockerfile \
        --build-arg VERSION="$version" --build-arg REVISION="$revision" "$@" . >>"$scratch/build.log" 2>&1 ||
        { tail -40 "$scratch/build.log"; fail "podman build $*"; }
}
build --target build -t "$BUILD_IMAGE"
# podman 4's layer cache ignores a changed build argument in LABEL: the revision also goes in with --label.
build -t "$IMAGE" --label org.opencontainers.image.revision="$revision"
tail -3 "$scratch/build.log"
for id in $previous; do
    # untagged now: the previous run's; rmi also removes its untagged parents that nothing else uses
    if [ -z "$(podman image inspect -f '{{.RepoTags}}' "$id" 2>/dev/null | tr -d '[]')" ]; then
        podman rmi "$id" >/dev/null 2>&1 || true
    fi
done
size=$(podman image inspect -f '{{.Size}}' "$IMAGE")
size_mb=$((size / 1000000))
[ "$size_mb" -lt "$MAX_IMAGE_MB" ] || fail "image is $size_mb MB, over $MAX_IMAGE_MB MB"
ok "image size $size_mb MB"
inspect() { podman image inspect -f "$1" "$IMAGE"; }
[ "$(inspect '{{.Config.User}}')" = 10001:10001 ] || fail "image user is '$(inspect '{{.Config.User}}')'"
[ "$(inspect '{{.Config.StopSignal}}')" = SIGTERM ] || fail "stop signal is '$(inspect '{{.Config.StopSignal}}')'"
case "$(inspect '{{.Config.Healthcheck}}')" in '' | '<nil>') fail "image has no HEALTHCHECK" ;; esac
label_version=$(inspect '{{index .Config.Labels "org.opencontainers.image.version"}}')
program_version=$(run 60 podman run --rm "$IMAGE" hello-server --version)
[ "hello-server $label_version" = "$program_version" ] ||
    fail "label version '$label_version' but the program says '$program_version'"
label_revision=$(inspect '{{index .Config.Labels "org.opencontainers.image.revision"}}')
[ "$label_revision" = "$revision" ] || fail "revision label '$label_revision', not '$revision'"
ok "image: user 10001:10001, STOPSIGNAL SIGTERM, HEALTHCHECK, labels (version $label_version)"

# --- the image alone: PID 1, health check, stop ----------------------------------------------------------
now_ms() { echo $(($(date +%s%N) / 1000000)); }
# A stop is clean when the server, PID 1 with no init, exited 0 on SIGTERM well before the runtime's SIGKILL
# and logged its drain. $1: what was stopped, $2: the server's exit code, $3: ms the stop took (- if it was
# not timed: a SIGKILL shows as exit 137 all the same), $4: the server's log.
expect_clean_stop() {
    local what=$1 code=$2 ms=$3 log=$4
    sed 's/^/  server | /' "$log"
    [ "$code" = 0 ] || fail "$what: the server exited '$code'"
    grep -q 'received SIGTERM; shutting down' "$log" || fail "$what: the server did not log the SIGTERM"
    grep -q 'stopped: served' "$log" || fail "$what: the server did not log its last line"
    if [ "$ms" = - ]; then
        ok "$what: the server exited 0 on SIGTERM"
    else
        [ "$ms" -lt $((STOP_LIMIT_S * 1000)) ] || fail "$what took $ms ms (the runtime's SIGKILL?)"
        ok "$what: the server drained and exited 0 on SIGTERM in $ms ms"
    fi
}

step "podman run (the server as PID 1, no init)"
run 60 podman run -d --name helloci-image "$IMAGE" >/dev/null
[ "$(run 30 podman exec helloci-image hello-client --wait --connect unix:/run/hello/hello.sock)" = "hello client" ] ||
    fail "no reply on the image's default socket"
[ "$(podman exec helloci-image cat /proc/1/comm)" = hello-server ] || fail "PID 1 is not hello-server"
[ "$(podman exec helloci-image id -u)" = 10001 ] || fail "not running as uid 10001"
run 30 podman healthcheck run helloci-image
ok "image: hello-server is PID 1 as uid 10001 and answers; its HEALTHCHECK passes"
# Stop it in the middle of traffic: a client sending request after request on one connection. The drain
# answers the request under way and closes the connection; it must not wait for the client to stop.
run 30 podman exec -d helloci-image hello-client --connect unix:/run/hello/hello.sock --count 1000000000 >/dev/null
for _ in $(seq 100); do # until the server holds the connection (state 03 on the socket's path), bounded
    [ "$(podman exec helloci-image grep -c ' 03 [0-9]* /run/hello/hello.sock$' /proc/net/unix)" -ge 1 ] && break
    sleep 0.1
done
t0=$(now_ms)
run 60 podman stop -t 10 helloci-image >/dev/null
ms=$(($(now_ms) - t0))
podman logs helloci-image >"$scratch/image.log" 2>&1
grep -qE 'draining [1-9][0-9]* open connections' "$scratch/image.log" ||
    { cat "$scratch/image.log"; fail "podman stop: no busy connection to drain"; }
expect_clean_stop "podman stop" "$(podman inspect -f '{{.State.ExitCode}}' helloci-image)" "$ms" "$scratch/image.log"
run 30 podman rm helloci-image >/dev/null

# --- docker-compose demos --------------------------------------------------------------------------------
compose_demo() {
    local file=$1 project=$2
    local server=${project}_server_1 client=${project}_client_1
    local out=$scratch/$project.up.log log=$scratch/$project.server.log
    local rc=0 code replies server_id since follower t0 ms
    step "podman-compose -f $file"
    run 60 docker-compose -p "$project" -f "$file" config -q
    # The README's command (the image is built already).
    timeout -k 10 300 podman-compose -p "$project" -f "$file" up --exit-code-from client >"$out" 2>&1 || rc=$?
    podman logs "$client" 2>&1 | sed 's/^/  client | /'
    [ "$rc" = 0 ] || { cat "$out"; fail "$file: up --exit-code-from client exited $rc"; }
    code=$(podman inspect -f '{{.State.ExitCode}}' "$client")
    [ "$code" = 0 ] || fail "$file: the client exited $code"
    replies=$(podman logs "$client" 2>/dev/null | grep -cx 'hello client' || true)
    [ "$replies" = 3 ] || fail "$file: the client printed $replies 'hello client' replies, not 3"
    ok "$file: the client printed 3 replies and exited 0"
    # podman-compose 1.0 leaves the server running here (docker compose stops it): check it, then `down`.
    [ "$(podman inspect -f '{{.State.Running}}' "$server")" = true ] || fail "$file: the server is not running"
    run 30 podman healthcheck run "$server"
    ok "$file: the server's health check passes"
    server_id=$(podman inspect -f '{{.Id}}' "$server")
    since=$(($(date +%s) - 1))
    timeout 60 podman logs -f "$server" >"$log" 2>&1 &
    follower=$!
    # `down` removes the container: the follower must have it open first, which it shows by
    # printing the server's start-up line.
    for _ in $(seq 100); do
        grep -q 'hello-server listening on' "$log" && break
        kill -0 "$follower" 2>/dev/null || break
        sleep 0.1
    done
    grep -q 'hello-server listening on' "$log" || { cat "$log"; fail "$file: podman logs -f shows no start-up line"; }
    t0=$(now_ms)
    run 120 podman-compose -p "$project" -f "$file" down -v >"$scratch/$project.down.log" 2>&1
    ms=$(($(now_ms) - t0))
    wait "$follower" || true
    # `down` removed the container: its exit code is in its "died" event.
    code=$(podman events --stream=false --since "$since" --filter event=died --filter "container=$server_id" \
        --format '{{.ContainerExitCode}}' | tail -1)
    expect_clean_stop "$file: down" "$code" "$ms" "$log"
    [ -z "$(podman ps -a -q --filter "label=io.podman.compose.project=$project")" ] ||
        fail "$file: containers left after down"
    [ -z "$(podman volume ls -q --filter "label=io.podman.compose.project=$project")" ] ||
        fail "$file: volumes left after down -v"
    # podman-compose 1.0 leaves the project's network behind (docker compose removes it).
    podman network ls -q --filter "label=io.podman.compose.project=$project" | xargs -r podman network rm >/dev/null
}
compose_demo docker/docker-compose.yml helloci_unix
compose_demo docker/docker-compose.tcp.yml helloci_tcp

# --- the same files with docker-compose, through the Docker API (served by podman) -------------------------
# Docker's own compose speaks the Docker API; podman serves it. Checks the files need no podman-compose.
step "podman system service (Docker API)"
export DOCKER_HOST=unix://$scratch/docker.sock
podman system service --time=0 "$DOCKER_HOST" >"$scratch/service.log" 2>&1 &
service_pid=$!
for _ in $(seq 100); do
    [ -S "$scratch/docker.sock" ] && break
    kill -0 "$service_pid" 2>/dev/null || break
    sleep 0.1
done
[ -S "$scratch/docker.sock" ] || { cat "$scratch/service.log"; fail "podman system service did not start"; }
docker_compose_demo() {
    local file=$1 project=$2
    local out=$scratch/$project.up.log rc=0 code replies
    step "docker-compose -f $file up --exit-code-from client"
    # The README's command (the image is built already); docker-compose stops the server when the client exits.
    timeout -k 10 300 docker-compose -p "$project" -f "$file" up --no-color --exit-code-from client >"$out" 2>&1 ||
        rc=$?
    grep 'hello client' "$out" | sed 's/^/  /' || true
    [ "$rc" = 0 ] || { cat "$out"; fail "$file: docker-compose up --exit-code-from client exited $rc"; }
    replies=$(grep -cE '^client_1 +\| hello client$' "$out" || true)
    [ "$replies" = 3 ] || { cat "$out"; fail "$file: docker-compose showed $replies client replies, not 3"; }
    ok "$file: docker-compose: the client printed 3 replies and exited 0"
    code=$(podman inspect -f '{{.State.ExitCode}}' "${project}_server_1")
    podman logs "${project}_server_1" >"$scratch/$project.server.log" 2>&1
    expect_clean_stop "$file: docker-compose" "$code" - "$scratch/$project.server.log"
    run 120 docker-compose -p "$project" -f "$file" down -v >"$scratch/$project.down.log" 2>&1
    [ -z "$(podman ps -a -q --filter "label=com.docker.compose.project=$project")" ] ||
        fail "$file: docker-compose: containers left after down"
}
docker_compose_demo docker/docker-compose.yml hellocidcunix
docker_compose_demo docker/docker-compose.tcp.yml hellocidctcp
kill "$service_pid"
wait "$service_pid" || true
service_pid=
unset DOCKER_HOST

# --- the Kubernetes pod ----------------------------------------------------------------------------------
step "podman kube play $POD_FILE"
timeout -k 10 120 podman kube play "$POD_FILE" >"$scratch/kube.log" 2>&1 ||
    { cat "$scratch/kube.log"; fail "podman kube play"; }
# The client prints its three replies as soon as the server answers: poll its log, bounded.
replies=0
for _ in $(seq 150); do
    replies=$(podman logs hello-client 2>/dev/null | grep -cx 'hello client' || true)
    [ "$replies" -ge 3 ] && break
    [ "$(podman inspect -f '{{.State.Running}}' hello-client)" = true ] || break
    sleep 0.2
done
podman logs hello-client 2>&1 | sed 's/^/  client | /'
[ "$replies" -ge 3 ] || fail "pod: the client printed $replies replies, not 3"
ok "pod: the client container printed 3 replies over the socket in the shared emptyDir"
# The probes' command (the liveness probe became a podman health check), and the Service's TCP endpoint.
[ "$(run 30 podman exec hello-server hello-client --connect unix:/run/hello/hello.sock --timeout 2)" = "hello client" ] ||
    fail "pod: the probes' command got no reply"
run 30 podman healthcheck run hello-server
[ "$(run 30 podman exec hello-client hello-client --connect tcp:127.0.0.1:7777 --timeout 2)" = "hello client" ] ||
    fail "pod: the TCP endpoint behind the Service got no reply"
ok "pod: the probe command, the liveness health check and the TCP endpoint answer"
for c in hello-server hello-client; do
    status=$(podman exec "$c" sh -c 'id -u; grep -E "^(CapEff|NoNewPrivs)" /proc/self/status; touch /probe 2>&1 || true')
    grep -qx 10001 <<<"$status" || fail "pod: $c is not uid 10001: $status"
    grep -qE '^CapEff:\s+0+$' <<<"$status" || fail "pod: $c has capabilities: $status"
    grep -qE '^NoNewPrivs:\s+1$' <<<"$status" || fail "pod: $c may gain privileges: $status"
    grep -q 'Read-only file system' <<<"$status" || fail "pod: $c has a writable root: $status"
done
[ "$(podman inspect -f '{{.HostConfig.Memory}}' hello-server)" = $((64 * 1024 * 1024)) ] ||
    fail "pod: server memory limit is $(podman inspect -f '{{.HostConfig.Memory}}' hello-server)"
ok "pod: uid 10001, no capabilities, no new privileges, read-only root, memory limit"
# podman 4 `kube down` kills with SIGKILL at once (fixed in podman 5.1); `pod stop` does what the kubelet does:
# SIGTERM, then SIGKILL after the grace period.
t0=$(now_ms)
run 60 podman pod stop -t 15 "$POD" >/dev/null
ms=$(($(now_ms) - t0))
code=$(podman inspect -f '{{.State.ExitCode}}' hello-client)
[ "$code" = 0 ] || fail "pod: the client exited $code on stop"
podman logs hello-server >"$scratch/pod.server.log" 2>&1
expect_clean_stop "pod: pod stop" "$(podman inspect -f '{{.State.ExitCode}}' hello-server)" "$ms" "$scratch/pod.server.log"
run 60 podman kube down "$POD_FILE" >/dev/null
! podman pod exists "$POD" || fail "pod: left after podman kube down"
[ -z "$(podman volume ls -q --filter name='^hello-socket$')" ] || fail "pod: emptyDir volume left after kube down"
ok "pod: podman kube down removed the pod and its volume"
[ -n "${kube_network_existed:-}" ] || run 30 podman network rm podman-default-kube-network >/dev/null
