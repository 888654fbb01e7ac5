#!/usr/bin/env bash
# Reproduces every figure of FIGURES.md ("Embedded client") and of
# docs/BENCHMARKS.md's device tables:
#   1. flash and static RAM of the release firmware (llvm-size);
#   2. no heap (check-no-heap.sh);
#   3. the raw primitives' cost: the crypto-cost binary under -icount shift=0;
#   4. the device's cost per protocol step and its stack high-water: the
#      ignored test `figures_under_icount` (real server, real host client,
#      the firmware under -icount shift=0);
#   5. the cost of each re-key (the device as initiator and responder) and the
#      stack high-water across them: the test
#      `device_rekeys_every_channel_and_chat` (also under -icount shift=0);
#   6. the deepest stack paths, from LLVM's frame sizes: stack-paths.py.
# Under `qemu-system-arm -icount shift=0` one guest instruction is one virtual
# nanosecond, so every "ns" the firmware prints there is an instruction count.
set -euo pipefail
cd "$(dirname "$0")"
root=$(cd .. && pwd)

command -v qemu-system-arm >/dev/null || { apt-get update -qq && apt-get install -y -qq qemu-system-arm; }
command -v defmt-print >/dev/null || cargo install defmt-print --locked

cargo build --release --bins 2>&1 | tail -1
sysroot=$(rustc --print sysroot)
host=$(rustc -vV | sed -n 's/^host: //p')
tools="$sysroot/lib/rustlib/$host/bin"
[ -x "$tools/llvm-size" ] || rustup component add llvm-tools
elf=${CARGO_TARGET_DIR:-$root/target}/thumbv7m-none-eabi/release/securecom-embedded-client

echo "== 1. sizes: $tools/llvm-size -A $elf"
"$tools/llvm-size" -A "$elf" | awk '
    $1 == ".vector_table" || $1 == ".text" || $1 == ".rodata" { flash += $2 }
    $1 == ".data" { flash += $2; ram += $2 }
    $1 == ".bss" || $1 == ".uninit" { ram += $2 }
    $1 ~ /^\.(vector_table|text|rodata|data|bss|uninit)$/ { printf "  %-14s %7d\n", $1, $2 }
    END { printf "flash %d bytes (%.1f KiB), static RAM %d bytes (%.1f KiB)\n", flash, flash/1024, ram, ram/1024 }'

echo "== 2. heap: ./check-no-heap.sh"
./check-no-heap.sh 2>&1 | grep -E '^(no heap|HEAP)'

echo "== 3. primitives: SECURECOM_QEMU_ARGS='-icount shift=0' cargo run --release --bin crypto-cost"
SECURECOM_QEMU_ARGS="-icount shift=0" cargo run -q --release --bin crypto-cost 2>/dev/null | grep INFO

echo "== 4. protocol steps: cargo test -p securecom-tests --test embedded -- --ignored --nocapture figures"
(cd "$root" && cargo test -q -p securecom-tests --test embedded -- --ignored --nocapture figures 2>&1) |
    grep -E 'INFO  (logged in|daemon|chat .* open|chat message|exit)|test result'

echo "== 5. re-keys: cargo test -p securecom-tests --test embedded -- --nocapture device_rekeys_every_channel_and_chat"
(cd "$root" && cargo test -q -p securecom-tests --test embedded -- --nocapture device_rekeys_every_channel_and_chat 2>&1) |
    grep -E 're-keyed|exit |test result'

echo "== 6. deepest stack paths (call graph): ./stack-paths.py"
./stack-paths.py | grep -E '^ *[0-9]+  [a-z]'
