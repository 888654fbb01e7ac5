#!/usr/bin/env bash
# Short run of every fuzz target (called by `cargo xtask test`; see
# docs/SECURITY.md, "Fuzzing", for the deep runs).
#
# Builds all targets once (release, debug assertions and overflow checks,
# no sanitizer: the core is `#![forbid(unsafe_code)]`; see SECURITY.md),
# then runs each from its checked-in seeds for FUZZ_SECONDS (default 20)
# seconds. New inputs go to a temporary directory, so the checked-in corpus
# is left as it is. Exits non-zero on the first crash, leak, timeout or
# out-of-memory; the reproducer is in fuzz/artifacts/<target>/.
set -euo pipefail
cd "$(dirname "$0")"
# Operation-sequence targets need long inputs from the start (libFuzzer
# otherwise grows the length limit slowly); byte-format targets do not.
lenctl() { case "$1" in client|daemon|server_session) echo 0 ;; *) echo 100 ;; esac; }

seconds="${FUZZ_SECONDS:-20}"
targets=(frame_decoder messages handshakes pq_layer client daemon server_session)
# Flags shared by the build and the runs (a run must not rebuild differently).
flags=(--release --sanitizer none)

# Whatever toolchain the caller was pinned to (cargo xtask runs under the
# project's stable one), this script uses nightly.
unset RUSTUP_TOOLCHAIN CARGO RUSTC RUSTDOC RUSTC_WRAPPER 2>/dev/null || true

if ! rustup toolchain list | grep -q '^nightly'; then
  echo "run-smoke: installing the nightly toolchain"
  rustup toolchain install nightly --profile minimal
fi
if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
  echo "run-smoke: installing cargo-fuzz"
  cargo install cargo-fuzz --locked
fi

start=$(date +%s)
echo "run-smoke: building ${#targets[@]} targets"
cargo +nightly fuzz build "${flags[@]}"
echo "run-smoke: built in $(( $(date +%s) - start ))s"

# Every reproducer of a bug found so far must pass (on the targets it was
# found with and on the one that drives the same code from the client side).
for dir in regressions/*/; do
  t=$(basename "$dir")
  [ -n "$(ls -A "$dir")" ] || continue
  for target in "$t" client; do
    if ! cargo +nightly fuzz run "${flags[@]}" "$target" "$dir"* >/dev/null 2>&1; then
      echo "run-smoke: a reproducer in $dir fails on $target"
      exit 1
    fi
  done
  echo "run-smoke: reproducers in $dir pass"
done

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
for t in "${targets[@]}"; do
  mkdir -p "$work/$t" "corpus/$t"
  log="$work/$t.log"
  if ! cargo +nightly fuzz run "${flags[@]}" "$t" "$work/$t" "corpus/$t" -- \
      -max_total_time="$seconds" -rss_limit_mb=2048 -timeout=20 -max_len=4096 -len_control="$(lenctl "$t")" \
      -print_final_stats=1 >"$log" 2>&1; then
    echo "run-smoke: $t FAILED"
    tail -n 60 "$log"
    exit 1
  fi
  runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo '?')
  cov=$(grep DONE "$log" | grep -o 'cov: [0-9]*' || echo 'cov: ?')
  echo "run-smoke: $t ok: $runs runs, $cov"
done
echo "run-smoke: all ${#targets[@]} targets ok in $(( $(date +%s) - start ))s"
