#!/usr/bin/env python3
"""The firmware's deepest stack paths, from the frame sizes LLVM records.

Usage: ./stack-paths.py   (from measure.sh, step 6)

Builds the release firmware with `-Z emit-stack-sizes` (RUSTC_BOOTSTRAP=1 on
the stable toolchain: the flag only records sizes, the code is the same
build's) into its own target directory, reads every function's frame with
`llvm-readobj --stack-sizes`, checks each call of the paths below against the
ELF's disassembly (`llvm-objdump -d`), and prints each path's frames and sum.
A frame of 0 is a function inlined into its caller (its frame is the
caller's). The paths are the ones that reach the KEM (the device's deepest
stack: `fips203`'s re-encryption); docs/BENCHMARKS.md, "the stack within
budget", quotes them.
"""
import os
import re
import subprocess
import sys

here = os.path.dirname(os.path.abspath(__file__))
target = os.environ.get("STACK_TARGET_DIR", os.path.join(here, "..", "target", "stack-sizes"))
sysroot = subprocess.run(["rustc", "--print", "sysroot"], capture_output=True, text=True, check=True).stdout.strip()
host = re.search(r"host: (\S+)", subprocess.run(["rustc", "-vV"], capture_output=True, text=True).stdout).group(1)
tools = os.path.join(sysroot, "lib", "rustlib", host, "bin")
env = dict(os.environ, RUSTC_BOOTSTRAP="1", CARGO_TARGET_DIR=target)
subprocess.run(["cargo", "rustc", "-q", "--release", "--bin", "securecom-embedded-client", "--",
                "--emit=obj,link", "-Z", "emit-stack-sizes"], cwd=here, env=env, check=True)
deps = os.path.join(target, "thumbv7m-none-eabi", "release", "deps")
obj = max((os.path.join(deps, f) for f in os.listdir(deps)
           if f.startswith("securecom_embedded_client-") and f.endswith(".o")), key=os.path.getmtime)
elf = os.path.join(target, "thumbv7m-none-eabi", "release", "securecom-embedded-client")

short = lambda f: f.replace("securecom_embedded_client::crypto::DeviceCrypto", "DC").replace(
    "rand_chacha::chacha::ChaCha20Rng", "Rng")
ss = subprocess.run([os.path.join(tools, "llvm-readobj"), "--stack-sizes", "--demangle", obj],
                    capture_output=True, text=True, check=True).stdout
sizes = {}
for m in re.finditer(r"Functions: \[(.*?)\]\s*\n\s*Size: (0x[0-9A-Fa-f]+)", ss):
    sizes[short(m.group(1).strip())] = int(m.group(2), 16)
calls, cur = {}, None
dis = subprocess.run([os.path.join(tools, "llvm-objdump"), "-d", "--demangle", "--no-show-raw-insn", elf],
                     capture_output=True, text=True, check=True).stdout
for line in dis.splitlines():
    m = re.match(r"^[0-9a-f]+ <(.*)>:$", line.strip())
    if m:
        cur = short(m.group(1))
        continue
    m = re.search(r"\s(b[a-z.]*)\s+0x[0-9a-f]+ <(.*)>( @.*)?$", line)
    if m and cur:
        calls.setdefault(cur, set()).add(short(re.sub(r"\+0x[0-9a-f]+$", "", m.group(2))))


def find(pat, names):
    exact = [f for f in names if f == pat]
    hits = exact or [f for f in names if pat in f]
    return hits[0] if len(hits) == 1 else None


BASE = ["main", "::__cortex_m_rt_main", "Device>::start_login", "Device>::run_until_done"]
KEM_D = ["PqLayer<DC>>::read_message", "k_pke_encrypt", "gen_a_hat", "keccak::p1600"]
KEM_E = ["PqLayer<DC>>::write_message", "pq::encaps_into", "k_pke_encrypt", "gen_a_hat", "keccak::p1600"]
PATHS = {
    "chat handshake, responder: encapsulation": ["Device>::pump_standard", "Device>::feed_standard",
        "on_chat_handshake", "flush_chat_handshake"] + KEM_E,
    "chat re-key, initiator: decapsulation": ["Device>::pump_standard", "Device>::feed_standard",
        "on_chat_data", "Keys<DC>>::read_rekey", "Rekey<DC>>::read_message"] + KEM_D,
    "standard channel re-key, initiator: decapsulation": ["Device>::pump_standard", "Device>::feed_standard",
        "Keys<DC>>::read_rekey", "Rekey<DC>>::read_message"] + KEM_D,
    "chat handshake, initiator: decapsulation": ["Device>::pump_standard", "Device>::feed_standard",
        "on_chat_handshake"] + KEM_D,
    "login: the layer's decapsulation": ["Device>::pump_standard", "Device>::feed_standard"] + KEM_D,
    "chat re-key, responder: encapsulation": ["Device>::pump_standard", "Device>::flush_std",
        "flush_chat_rekey", "Keys<DC>>::write_rekey"] + KEM_E,
    "request channel re-key, responder: encapsulation": ["Device>::pump_request", "Device>::flush_request",
        "Keys<DC>>::write_rekey"] + KEM_E,
}
ok = True
for name, path in PATHS.items():
    total, lines, prev = 0, [], None
    for pat in BASE + path:
        f = find(pat, sizes) or find(pat, calls)
        if f is None:
            print(f"{name}: no single function matches {pat!r}", file=sys.stderr)
            ok = False
            break
        n = sizes.get(f, 0)
        # The call must exist, possibly through frames inlined away (not
        # checked: an inlined function has no symbol to call).
        if prev is not None and f in sizes and prev in calls and not any(
                f == c for c in calls[prev]) and n:
            note = "  (called through an inlined or unlisted frame)"
        else:
            note = ""
        total += n
        lines.append(f"    {n:6d}  {f[:110]}{note}")
        prev = f
    else:
        print(f"{total:6d}  {name}")
        print("\n".join(lines))
sys.exit(0 if ok else 1)
