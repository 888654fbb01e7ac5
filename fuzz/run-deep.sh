#!/usr/bin/env bash
# Deep run of the fuzz targets, one after the other, one libFuzzer job each
# (see docs/SECURITY.md, "Fuzzing"). New inputs are kept in
# fuzz/corpus/<target>/ (git ignores all but the seeds).
#
#   bash fuzz/run-deep.sh                  # every target, default times
#   bash fuzz/run-deep.sh client 3600      # one target, one hour
#   JOBS=2 bash fuzz/run-deep.sh           # libFuzzer -fork=2 (2 processes per target)
#   RUNS=10000000 bash fuzz/run-deep.sh server_session 36000
#                                          # stop after 10 M executions (or the time)
#   NO_TRACE_COMPARES=1 bash fuzz/run-deep.sh
#                                          # without libFuzzer's comparison tracing:
#                                          # ~1.3x the executions of the stateful
#                                          # targets (own build, target/no-tc)
#
# Prints, per target: executions, corpus size (files, bytes), crashes.
set -euo pipefail
cd "$(dirname "$0")"
# Operation-sequence targets need long inputs from the start (libFuzzer
# otherwise grows the length limit slowly); byte-format targets do not.
lenctl() { case "$1" in client|daemon|server_session) echo 0 ;; *) echo 100 ;; esac; }
unset RUSTUP_TOOLCHAIN CARGO RUSTC RUSTDOC RUSTC_WRAPPER 2>/dev/null || true
flags=(--release --sanitizer "${SANITIZER:-none}")
[ -n "${NO_TRACE_COMPARES:-}" ] && flags+=(--no-trace-compares --target-dir target/no-tc)
declare -A secs=([frame_decoder]=60 [messages]=120 [handshakes]=180 [client]=420 [daemon]=240 [server_session]=420)
if [ $# -ge 1 ]; then
  secs=([$1]=${2:-600})
fi
cargo +nightly fuzz build "${flags[@]}" >/dev/null
runs=()
[ -n "${RUNS:-}" ] && runs=(-runs="$RUNS")
fork=()
[ "${JOBS:-1}" -gt 1 ] && fork=(-fork="$JOBS" -ignore_crashes=1)
mkdir -p logs
for t in frame_decoder messages handshakes client daemon server_session; do
  [ -n "${secs[$t]:-}" ] || continue
  mkdir -p "corpus/$t"
  log="logs/$t.log"
  status=0
  cargo +nightly fuzz run "${flags[@]}" "$t" "corpus/$t" -- \
    -max_total_time="${secs[$t]}" -rss_limit_mb=2048 -timeout=20 -max_len=4096 -len_control="$(lenctl "$t")" \
    -print_final_stats=1 "${runs[@]}" "${fork[@]}" >"$log" 2>&1 || status=$?
  execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -1)
  files=$(find "corpus/$t" -type f | wc -l)
  bytes=$(du -sb "corpus/$t" | cut -f1)
  crashes=$(find "artifacts/$t" -type f 2>/dev/null | wc -l)
  echo "$t: ${secs[$t]}s, ${execs:-?} executions, corpus $files files / $bytes bytes, artifacts $crashes, exit $status"
done
