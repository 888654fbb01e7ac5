#!/usr/bin/env bash
# Proves the firmware has no heap: no global allocator, no `alloc` crate.
#
# 1. The release ELFs define and reference none of the symbols an allocation
#    needs (`__rust_alloc` and its siblings, the `__rg_*`/`__rdl_*` shims an
#    allocator generates): nothing allocates and no allocator is linked.
# 2. No crate in the firmware's dependency tree enables an `alloc` feature.
# Exit status 0: no heap.
set -euo pipefail
cd "$(dirname "$0")"

cargo build --release --bins
sysroot=$(rustc --print sysroot)
host=$(rustc -vV | sed -n 's/^host: //p')
nm="$sysroot/lib/rustlib/$host/bin/llvm-nm"
if [ ! -x "$nm" ]; then
    rustup component add llvm-tools
fi
target_dir=${CARGO_TARGET_DIR:-../target}

status=0
for elf in "$target_dir"/thumbv7m-none-eabi/release/{securecom-embedded-client,crypto-cost}; do
    hits=$("$nm" "$elf" | grep -E '__rust_(alloc|dealloc|realloc|alloc_zeroed|alloc_error_handler|no_alloc_shim)|__rg_|__rdl_|__rust_oom' || true)
    if [ -n "$hits" ]; then
        echo "HEAP: $(basename "$elf") has allocator symbols:"
        echo "$hits"
        status=1
    else
        echo "no heap: $(basename "$elf") defines and references no allocator symbol"
    fi
done

features=$(cargo tree -e features --target thumbv7m-none-eabi 2>/dev/null | grep -E 'feature "alloc"' || true)
if [ -n "$features" ]; then
    echo "HEAP: an alloc feature is enabled:"
    echo "$features"
    status=1
else
    echo "no heap: no crate in the tree enables an \"alloc\" feature"
fi
exit $status
