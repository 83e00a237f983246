#!/usr/bin/env bash
# Run bitnet on ARM64 under emulation and compare it with this x86 machine.
#
#   sudo scripts/arm64_emulated.sh [--jit] [--cpu=NAME] [--cold] [--no-tests] [--setup-only]
#
# What it does (as root: it uses debootstrap, binfmt_misc, mount and chroot):
#   1. installs qemu-user-static and debootstrap from Debian's packages if missing, and
#      registers qemu's aarch64 handler with binfmt_misc (flag F: works inside a chroot);
#   2. once, builds a Debian bookworm arm64 root in $BITNET_ARM64_ROOT (default
#      ~/.cache/bitnet-arm64-root, outside the repository) with Python, gcc and libsndfile,
#      and a virtual environment /opt/venv holding the engine's dependencies (PyPI's
#      aarch64 wheels) and pytest;
#   3. every run, copies the checkout (tracked and untracked, not ignored files) to /src in
#      that root and installs it there with `pip install --no-deps -e .` when pyproject.toml
#      changed;
#   4. inside the root: `bitnet compile` (the ahead-of-time module; skipped with --jit, and
#      BITNET_AOT=0 when it fails), the kernel agreement tests (the small tier of
#      tests/test_kernels.py, tests/test_fusion.py, tests/test_packing.py, and
#      tests/test_blas_cores.py: stream == whole file on ARM64's BLAS; tests/test_op_attend.py: the
#      transformer's explicit float64 vector intrinsic), and
#      `bitnet infer --json --logits examples/`;
#   5. the same infer command on this machine (with $BITNET_HOST_PYTHON, default the
#      checkout's .venv/bin/python, else python3; it must import bitnet), then
#      scripts/arm64_compare.py: same labels and logits within float32 rounding, or a
#      non-zero exit.
#
# Set-up takes ~15 minutes once (2 busy cores); numba's cache and the compiled module stay
# in the root, so a rerun skips compiles whose sources did not change; the kernel tests
# under emulation take ~13 minutes with compiles (--no-tests skips them). --cold empties those caches first, to
# time a first run. Emulated timings say nothing about the speed of real ARM64 hardware.
#
# LLVM sees the host's /proc/cpuinfo inside the root and compiles for a "generic" ARM64
# CPU (ARMv8-A: NEON included); --cpu=cortex-a76 (or any LLVM AArch64 CPU name) sets
# NUMBA_CPU_NAME there, with that CPU's features (qemu emulates them all). --jit skips
# the ahead-of-time module (BITNET_AOT=0).
set -euo pipefail

REPO=$(cd "$(dirname "$0")/.." && pwd)
ROOT=${BITNET_ARM64_ROOT:-$HOME/.cache/bitnet-arm64-root}
# the x86 side: the checkout's .venv when there is one (the README's install), else python3
if [ -z "${BITNET_HOST_PYTHON:-}" ] && [ -x "$REPO/.venv/bin/python" ]; then HOST_PYTHON=$REPO/.venv/bin/python; fi
HOST_PYTHON=${HOST_PYTHON:-${BITNET_HOST_PYTHON:-python3}}
RELEASE=bookworm
INCLUDE=python3,python3-venv,python3-pip,python3-dev,gcc,libsndfile1,ca-certificates
# installed with apt-get inside the root (a change here does not redo debootstrap):
# numba's ahead-of-time compiler checks for a C++ compiler too
PACKAGES="g++"
STAMP=$ROOT/.bitnet-stamps

aot=1 cold=0 tests=1 setup_only=0 cpu=
for a in "$@"; do
    case $a in
        --cpu=*) cpu=${a#--cpu=} ;;
        --jit) aot=0 ;;
        --cold) cold=1 ;;
        --no-tests) tests=0 ;;
        --setup-only) setup_only=1 ;;
        -h|--help) sed -n '2,34p' "$0"; exit 0 ;;
        *) echo "arm64_emulated.sh: unknown option $a (see --help)" >&2; exit 2 ;;
    esac
done

say() { printf '[arm64] %s\n' "$*" >&2; }
die() { printf 'arm64_emulated.sh: %s\n' "$*" >&2; exit 1; }
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }

[ "$(id -u)" = 0 ] || die "needs root (debootstrap, binfmt_misc, mount, chroot): run it with sudo"
[ "$(uname -m)" = x86_64 ] || say "host is $(uname -m), not x86_64: the comparison is then against this host"

# ---------------------------------------------------------------- 1. qemu + binfmt_misc
if ! command -v qemu-aarch64-static >/dev/null || ! command -v debootstrap >/dev/null; then
    command -v apt-get >/dev/null || die "needs qemu-user-static and debootstrap (Debian/Ubuntu packages)"
    say "installing qemu-user-static and debootstrap"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq qemu-user-static debootstrap >/dev/null
fi
BINFMT=/proc/sys/fs/binfmt_misc
[ -e $BINFMT/register ] || mount binfmt_misc -t binfmt_misc $BINFMT
if [ ! -e $BINFMT/qemu-aarch64 ]; then
    conf=/usr/lib/binfmt.d/qemu-aarch64.conf
    [ -r $conf ] || die "no $conf: is qemu-user-static installed?"
    cat $conf > $BINFMT/register
fi

# ---------------------------------------------------------------- 2. the arm64 root (once)
t_setup=$(now)
mkdir -p "$STAMP"
if [ "$(cat "$STAMP/debootstrap" 2>/dev/null)" != "$RELEASE $INCLUDE" ]; then
    say "debootstrap $RELEASE arm64 into $ROOT (~5 minutes, once)"
    # a half-made root from an interrupted run is started again
    find "$ROOT" -mindepth 1 -maxdepth 1 ! -name .bitnet-stamps -exec rm -rf {} +
    # the mirror is debootstrap's default unless BITNET_ARM64_MIRROR names another
    debootstrap --arch=arm64 --variant=minbase --include=$INCLUDE $RELEASE "$ROOT" ${BITNET_ARM64_MIRROR:-} \
        > "$STAMP/debootstrap.log" 2>&1 || die "debootstrap failed, see $STAMP/debootstrap.log"
    rm -f "$STAMP/venv"
    echo "$RELEASE $INCLUDE" > "$STAMP/debootstrap"
fi
cp /etc/resolv.conf "$ROOT/etc/resolv.conf"
[ -r /etc/ssl/certs/ca-certificates.crt ] && cp /etc/ssl/certs/ca-certificates.crt "$ROOT/etc/ssl/certs/ca-certificates.crt"

mounted=()
cleanup() {
    local m
    for m in "${mounted[@]}"; do umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true; done
}
trap cleanup EXIT
for m in proc dev; do
    if ! mountpoint -q "$ROOT/$m"; then
        if [ $m = proc ]; then mount -t proc proc "$ROOT/proc"; else mount --bind /dev "$ROOT/dev"; fi
        mounted=("$ROOT/$m" "${mounted[@]}")
    fi
done

# run a command inside the root with a clean environment
in_root() {
    chroot "$ROOT" /usr/bin/env -i HOME=/root LANG=C.UTF-8 PATH=/opt/venv/bin:/usr/sbin:/usr/bin:/sbin:/bin \
        NUMBA_CACHE_DIR=/root/.cache/numba BITNET_CACHE_DIR=/root/.cache/bitnet \
        PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_PROGRESS_BAR=off BITNET_AOT=$aot \
        ${cpu:+NUMBA_CPU_NAME=$cpu NUMBA_CPU_FEATURES=} "$@"
}

if [ "$(cat "$STAMP/packages" 2>/dev/null)" != "$PACKAGES" ]; then
    say "apt-get install $PACKAGES in the root (once)"
    in_root sh -c "apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $PACKAGES >/dev/null" \
        || die "apt-get install $PACKAGES in the arm64 root failed"
    echo "$PACKAGES" > "$STAMP/packages"
fi

# the engine's dependencies, read from pyproject.toml, plus pytest
deps=$("$HOST_PYTHON" - "$REPO/pyproject.toml" <<'PY'
import sys, tomllib
with open(sys.argv[1], "rb") as f:
    print(" ".join(tomllib.load(f)["project"]["dependencies"] + ["pytest>=7.4"]))
PY
)
if [ "$(cat "$STAMP/venv" 2>/dev/null)" != "$deps" ]; then
    say "creating /opt/venv in the root and installing: $deps (~3 minutes, once)"
    in_root python3 -m venv /opt/venv
    # shellcheck disable=SC2086
    in_root pip install -q $deps || die "pip install in the arm64 root failed"
    rm -f "$STAMP/editable"
    echo "$deps" > "$STAMP/venv"
fi
say "set-up: $(since "$t_setup") s"
[ $setup_only = 1 ] && exit 0

# ---------------------------------------------------------------- 3. the checkout
t_copy=$(now)
rm -rf "$ROOT/src" && mkdir -p "$ROOT/src"
(cd "$REPO" && git ls-files -z -co --exclude-standard | tar --null -T - --ignore-failed-read -cf - 2>/dev/null) \
    | tar -C "$ROOT/src" -xf -
pyhash=$(sha256sum "$REPO/pyproject.toml" | cut -c1-16)
if [ "$(cat "$STAMP/editable" 2>/dev/null)" != "$pyhash" ]; then
    say "pip install --no-deps -e . in the root"
    in_root sh -c "cd /src && pip install -q --no-deps -e ." || die "installing bitnet in the arm64 root failed"
    echo "$pyhash" > "$STAMP/editable"
fi
if [ $cold = 1 ]; then
    say "--cold: emptying numba's cache and the compiled-module cache in the root"
    rm -rf "$ROOT/root/.cache/numba" "$ROOT/root/.cache/bitnet"
fi
say "copy + install: $(since "$t_copy") s"

OUT=$ROOT/out
rm -rf "$OUT" && mkdir -p "$OUT"
in_root python -c "import platform, numpy, numba, llvmlite.binding as llb; print('arm64 root:', platform.machine(), 'python', platform.python_version(), 'numpy', numpy.__version__, 'numba', numba.__version__, 'llvm cpu', llb.get_host_cpu_name())" | tee "$OUT/versions.txt"

# ---------------------------------------------------------------- 4. inside the root
aot_result=off
if [ $aot = 1 ]; then
    t=$(now)
    if in_root sh -c "cd /src && bitnet compile" > "$OUT/compile.log" 2>&1; then
        aot_result="ok, bitnet compile built or found the module ($(since "$t") s)"
    else
        aot_result="FAILED ($(since "$t") s; see $OUT/compile.log), using BITNET_AOT=0"
        aot=0
    fi
    say "AOT module on arm64: $aot_result"
fi

tests_result=skipped
if [ $tests = 1 ]; then
    t=$(now)
    say "kernel agreement tests in the root"
    if in_root sh -c "cd /src && python -m pytest -q -p no:cacheprovider tests/test_kernels.py tests/test_fusion.py tests/test_packing.py tests/test_blas_cores.py tests/test_op_attend.py" \
            > "$OUT/pytest.log" 2>&1; then
        tests_result="$(tail -n 1 "$OUT/pytest.log") ($(since "$t") s)"
    else
        tests_result="FAILED: $(tail -n 1 "$OUT/pytest.log") ($(since "$t") s; see $OUT/pytest.log)"
    fi
    say "tests: $tests_result"
fi

t=$(now)
say "bitnet infer --json --logits examples/ in the root"
in_root sh -c "cd /src && bitnet infer --json --logits examples/" > "$OUT/arm64.jsonl" 2> "$OUT/infer.log" \
    || die "bitnet infer failed in the arm64 root, see $OUT/infer.log"
t_infer_arm=$(since "$t")

# ---------------------------------------------------------------- 5. x86 and the comparison
t=$(now)
(cd "$REPO" && "$HOST_PYTHON" -m bitnet infer --json --logits examples/) > "$OUT/x86.jsonl" 2> "$OUT/infer_x86.log" \
    || die "bitnet infer failed on this machine with $HOST_PYTHON, see $OUT/infer_x86.log"
t_infer_x86=$(since "$t")

echo "arm64 AOT module: $aot_result"
echo "arm64 kernel tests: $tests_result"
echo "infer examples/: arm64 (emulated) ${t_infer_arm} s, x86 ${t_infer_x86} s"
status=0
"$HOST_PYTHON" "$REPO/scripts/arm64_compare.py" "$OUT/x86.jsonl" "$OUT/arm64.jsonl" || status=$?
case $tests_result in FAILED*) status=1 ;; esac
exit $status
