#!/usr/bin/env bash
# Cargo runner (see .cargo/config.toml): boots a firmware ELF in QEMU's
# lm3s6965evb and decodes its defmt log with defmt-print.
#
#   cargo run --release                   # the client (needs a running server)
#   cargo run --release --bin crypto-cost # the primitives' cost (no server)
#
# Environment (defaults in brackets):
#   SECURECOM_SERVER_PORT   [7300]        UART0 dials 127.0.0.1:PORT (the server must listen first)
#   SECURECOM_DAEMON_PORT   [4242]        listen mode: UART1 listens on 127.0.0.1:PORT (the server dials it)
#   SECURECOM_DEVICE_CONFIG [device.cfg]  the configuration file (README.md), passed by semihosting
#   SECURECOM_REQUEST_MODE  [the config's request_mode line, else listen]
#                                         listen: UART1 listens on the daemon port;
#                                         dial: UART1 connects to the server's port
#                                         (and again 1 s after each close: reconnect=1)
#   SECURECOM_QEMU_ARGS     []            extra QEMU arguments, e.g. "-icount shift=0"
#   SECURECOM_DEFMT_RAW     []            if set: write the raw defmt stream to this file instead
#                                         of decoding it (decode later with defmt-print -e ELF)
# Exit status: the firmware's (README.md, "Exit statuses").
set -euo pipefail

elf=${1:?usage: run-qemu.sh FIRMWARE.elf}
elf=$(realpath "$elf")

if ! command -v qemu-system-arm >/dev/null; then
    echo "run-qemu.sh: installing qemu-system-arm" >&2
    (apt-get update -qq && apt-get install -y -qq qemu-system-arm) >&2
fi
if [ -z "${SECURECOM_DEFMT_RAW:-}" ] && ! command -v defmt-print >/dev/null; then
    echo "run-qemu.sh: installing defmt-print" >&2
    cargo install defmt-print --locked >&2
fi

qemu=(qemu-system-arm -cpu cortex-m3 -machine lm3s6965evb -nographic -monitor none)
case "$(basename "$elf")" in
    crypto-cost)
        qemu+=(-semihosting-config enable=on,target=native -serial null -serial null)
        ;;
    *)
        server_port=${SECURECOM_SERVER_PORT:-7300}
        daemon_port=${SECURECOM_DAEMON_PORT:-4242}
        config=$(realpath "${SECURECOM_DEVICE_CONFIG:-device.cfg}")
        case "$config" in *[,[:space:]]*)
            echo "run-qemu.sh: the config path must not contain commas or spaces: $config" >&2
            exit 2 ;;
        esac
        # The request channel's UART as the configuration wants it.
        mode=${SECURECOM_REQUEST_MODE:-$(awk '$1 == "request_mode" { m = $2 } END { print m }' "$config" 2>/dev/null || true)}
        case "${mode:-listen}" in
            listen) request=(-serial "tcp:127.0.0.1:$daemon_port,server=on,wait=off") ;;
            dial) request=(-chardev "socket,id=request,host=127.0.0.1,port=$server_port,reconnect=1"
                -serial chardev:request) ;;
            *) echo "run-qemu.sh: request mode must be listen or dial, not: $mode" >&2
                exit 2 ;;
        esac
        qemu+=(-semihosting-config "enable=on,target=native,arg=securecom-embedded-client,arg=$config"
            -serial "tcp:127.0.0.1:$server_port" "${request[@]}")
        ;;
esac
# shellcheck disable=SC2206 # word splitting of the extra arguments is wanted
qemu+=(${SECURECOM_QEMU_ARGS:-} -kernel "$elf")

if [ -n "${SECURECOM_DEFMT_RAW:-}" ]; then
    exec "${qemu[@]}" >"$SECURECOM_DEFMT_RAW"
fi
set +e
"${qemu[@]}" | defmt-print -e "$elf"
status=("${PIPESTATUS[@]}")
set -e
exit "${status[0]}"
