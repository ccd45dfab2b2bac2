#!/usr/bin/env bash
# Races hello-server against its peers: a one-thread C epoll server (the practical ceiling of
# one core), a plain one-coroutine-per-connection Boost.Asio server, and redis 7 answering PING,
# over UNIX and TCP, in the scenarios S1-S4 (see tests/bench/peers_report.py). An independent
# load generator drives every server the same way, pinned to one core with the server on the
# other. The matrix runs RUNS times and the report gives medians and ratios: on a noisy machine
# only ratios from the same run set mean anything.
#
# Usage: tests/bench/peers.sh HARNESS [HELLO_SERVER]
#   HARNESS       a directory with the load generator and the peers, driven by its
#                 run_anchors.sh (loadgen.c, refserver.c, asio_ref/, redis-server on PATH)
#   HELLO_SERVER  default: build/apps/hello-server
# Environment: RUNS (3), SERVERS ("hello ref1 asio redis"), TRANSPORTS ("unix tcp"), DUR (5),
#   HELLO_THREADS (1), OUT (where the runs and report.md go; default a new directory in /tmp)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
harness=${1:?usage: peers.sh HARNESS [HELLO_SERVER]}
server=$(realpath "${2:-build/apps/hello-server}")
[ -x "$harness/run_anchors.sh" ] || { echo "peers.sh: no run_anchors.sh in $harness" >&2; exit 64; }
[ -x "$server" ] || { echo "peers.sh: no hello-server at $server (build it first)" >&2; exit 64; }
out=${OUT:-$(mktemp -d /tmp/hello-peers.XXXXXX)}
mkdir -p "$out"
runs=${RUNS:-3}

results=()
for run in $(seq "$runs"); do
    echo "== run $run of $runs" >&2
    RESULTS=$out/run$run SERVERS=${SERVERS:-"hello ref1 asio redis"} TRANSPORTS=${TRANSPORTS:-"unix tcp"} \
        HELLO_SERVER=$server HELLO_THREADS=${HELLO_THREADS:-1} DUR=${DUR:-5} PIN=1 \
        "$harness/run_anchors.sh" >"$out/run$run.log" 2>&1 || { tail -n 20 "$out/run$run.log" >&2; exit 1; }
    found=("$out/run$run"/*/results.jsonl)
    [ -s "${found[0]}" ] || { echo "peers.sh: run $run left no results in $out/run$run" >&2; exit 1; }
    results+=("${found[0]}")
done
{
    echo "hello-server $("$server" --version 2>/dev/null | head -n1), $(nproc) cores: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2-)"
    echo "command: RUNS=$runs tests/bench/peers.sh $harness $server"
    echo
    python3 "$here/peers_report.py" "${results[@]}"
} | tee "$out/report.md"
echo "(runs and report in $out)" >&2
