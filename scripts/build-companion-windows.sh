#!/usr/bin/env bash
# Builds the companion for Windows (the .exe an officer downloads) from Linux:
#   target/x86_64-pc-windows-gnu/companion-dist/guild-sync-companion.exe
# Installs what is missing first, so it runs on a clean machine (CI runs it as root):
# the Rust target through rustup, and mingw-w64's gcc (Debian/Ubuntu: gcc-mingw-w64-x86-64),
# which compiles ring's C and assembly and links the .exe.
# Extra arguments go to cargo (e.g. --locked).
set -euo pipefail
cd "$(dirname "$0")/.."

TARGET=x86_64-pc-windows-gnu
LINKER=x86_64-w64-mingw32-gcc

if ! rustup target list --installed | grep -qx "$TARGET"; then
    echo "build-companion-windows: adding the Rust target $TARGET"
    rustup target add "$TARGET"
fi

if ! command -v "$LINKER" >/dev/null; then
    if ! command -v apt-get >/dev/null; then
        echo "build-companion-windows: $LINKER is missing; install mingw-w64 (gcc for $TARGET)" >&2
        exit 1
    fi
    echo "build-companion-windows: installing gcc-mingw-w64-x86-64"
    SUDO=
    if [ "$(id -u)" -ne 0 ]; then
        SUDO=sudo
    fi
    export DEBIAN_FRONTEND=noninteractive
    $SUDO apt-get update -qq
    $SUDO apt-get install -y -qq gcc-mingw-w64-x86-64 >/dev/null
fi

# Cargo does not pick mingw's gcc as the linker by itself; the cc crate (ring's C code) finds it
# by the target's name.
export CARGO_TARGET_X86_64_PC_WINDOWS_GNU_LINKER="$LINKER"

# The .exe is a download: the `companion-dist` profile (root Cargo.toml) is the release profile
# optimised for size, with link-time optimisation and no debug info.
cargo build --profile companion-dist --target "$TARGET" -p guild-sync-companion "$@"

exe="${CARGO_TARGET_DIR:-target}/$TARGET/companion-dist/guild-sync-companion.exe"
echo "build-companion-windows: built $exe ($(stat -c %s "$exe") bytes)"
