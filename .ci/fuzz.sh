#!/usr/bin/env bash
# CI stage: fuzzing with libFuzzer under AddressSanitizer + UndefinedBehaviorSanitizer.
# Builds tests/fuzz/ with clang++-14 in build-fuzz/ (-DHELLO_FUZZ=ON), then runs each target
# for a fixed time on a copy of its seed corpus (tests/fuzz/corpus/TARGET/, which is not
# changed). Prints the executions of each, and fails if any target finds something: a crash,
# a sanitizer report, a broken property (the targets abort) or a hang (-timeout); the
# input is kept under build-fuzz/fuzz-runs/TARGET/ and its path printed.
#
# Usage: .ci/fuzz.sh [TARGET...]     (default: all three)
# Environment:
#   FUZZ_SECONDS   how long each target runs (default 60)
#   FUZZ_TIMEOUT   seconds one input may take before it counts as a hang (default 10)
#   CMAKE_BUILD_PARALLEL_LEVEL  build jobs, as for any `cmake --build`
# Reproduce a finding: build-fuzz/tests/fuzz/TARGET FILE
set -Eeuo pipefail
cd "$(dirname "$0")/.."
started=$SECONDS
export DEBIAN_FRONTEND=noninteractive
seconds=${FUZZ_SECONDS:-60}
timeout=${FUZZ_TIMEOUT:-10}
targets=("$@")
[ ${#targets[@]} != 0 ] || targets=(fuzz_line_framer fuzz_endpoint_parse fuzz_config_file)
say() { echo "== [$((SECONDS - started)) s] $*"; }

# --- packages: the compiler and libFuzzer, and what configuring the project needs --------------
packages=(clang-14 libclang-rt-14-dev g++ cmake ninja-build pkg-config libboost1.81-dev
          libboost-program-options1.81-dev libspdlog-dev libsystemd-dev libgtest-dev python3)
missing=()
for package in "${packages[@]}"; do
    dpkg-query -W -f '${db:Status-Abbrev}' "$package" 2>/dev/null | grep -q '^ii' || missing+=("$package")
done
if [ ${#missing[@]} != 0 ]; then
    as_root=()
    [ "$(id -u)" = 0 ] || as_root=(sudo)
    say "packages: installing ${missing[*]}"
    "${as_root[@]}" apt-get update -q >/dev/null
    "${as_root[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
fi

# --- build -------------------------------------------------------------------------------------
say "build: clang++-14, HELLO_FUZZ=ON, in build-fuzz"
# -O1: libFuzzer's usual choice, and the sanitized coroutines build a third faster than at -O2.
cmake -S . -B build-fuzz -G Ninja -DCMAKE_CXX_COMPILER=clang++-14 -DCMAKE_BUILD_TYPE=Release \
      -DCMAKE_CXX_FLAGS_RELEASE="-O1 -DNDEBUG" -DHELLO_WERROR=ON -DHELLO_FUZZ=ON >/dev/null
cmake --build build-fuzz --target "${targets[@]}"

# --- run ---------------------------------------------------------------------------------------
export ASAN_OPTIONS=${ASAN_OPTIONS:-abort_on_error=1:detect_leaks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
top=$PWD
runs=$top/build-fuzz/fuzz-runs
# fuzz_config_file's scratch files: a finding ends a target before it can remove its own.
shm=/tmp
[ -d /dev/shm ] && shm=/dev/shm
HELLO_FUZZ_SCRATCH_DIR=$(mktemp -d "$shm/hello-fuzz.XXXXXX")
export HELLO_FUZZ_SCRATCH_DIR
trap 'rm -rf "$HELLO_FUZZ_SCRATCH_DIR"' EXIT
failed=()
summary=()
for target in "${targets[@]}"; do
    work=$runs/$target
    rm -rf "$work"
    mkdir -p "$work/corpus" "$work/artifacts"
    cp tests/fuzz/corpus/"$target"/* "$work/corpus/"
    options=(-max_len=4096 -timeout="$timeout" -max_total_time="$seconds" -print_final_stats=1
             -artifact_prefix="$work/artifacts/")
    [ -f tests/fuzz/"$target".dict ] && options+=(-dict="$PWD/tests/fuzz/$target.dict")
    say "$target: ${seconds} s on $(find "$work/corpus" -type f | wc -l) seed inputs"
    status=0
    target_started=$SECONDS
    # From the work directory: a stray file (such as a leak's) lands there, not in the tree.
    (cd "$work" && "$top/build-fuzz/tests/fuzz/$target" "${options[@]}" corpus) > "$work/log" 2>&1 || status=$?
    final_stat() { sed -n "s/^stat::$1: *//p" "$work/log" | tail -1; }
    executions=$(final_stat number_of_executed_units)
    line="$target: ${executions:-?} executions in $((SECONDS - target_started)) s ($(final_stat average_exec_per_sec) per second), corpus $(find "$work/corpus" -type f | wc -l) inputs, peak RSS $(final_stat peak_rss_mb) MB"
    artifacts=$(find "$work/artifacts" -type f | sort)
    if [ "$status" != 0 ] || [ -n "$artifacts" ]; then
        failed+=("$target")
        line="$line: FOUND SOMETHING (exit $status)"
        # What it found: libFuzzer's report, without the progress lines and the long stacks
        # of libFuzzer's own frames.
        grep -vE '^#[0-9]+\s+(NEW|REDUCE|pulse|INITED)|Uses: [0-9]+|^INFO: |NEW_FUNC' "$work/log" |
            grep -vE '^\s+#[0-9]+ 0x[0-9a-f]+ in (fuzzer::|main |_start |__libc_start)' | tail -60 || true
        for artifact in $artifacts; do
            echo "input: $artifact ($(stat -c %s "$artifact") bytes)"
            echo "  reproduce: build-fuzz/tests/fuzz/$target $artifact"
            head -c 512 "$artifact" | od -An -c | head -8
        done
    fi
    echo "$line"
    summary+=("$line")
done

say "fuzzing: done"
printf '%s\n' "${summary[@]}"
if [ ${#failed[@]} != 0 ]; then
    echo "fuzz stage: FAILED: ${failed[*]} (inputs under $runs/TARGET/artifacts/; full logs in $runs/TARGET/log)" >&2
    exit 1
fi
echo "fuzz stage: no findings"
