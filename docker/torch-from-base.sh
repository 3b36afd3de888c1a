#!/bin/sh
# The cuda image's install step when torch comes from the base image (the matrix's `image.torch: base`):
# NVIDIA's NGC PyTorch images, or an image made from a GPU host's own environment, whose python3 already
# holds a CUDA torch and NCCL. Makes /opt/venv, which sees the base's packages through a .pth file, and
# installs only the harness's requirements into it (from the wheelhouse when WHEELHOUSE is set), with
# torch, triton and the nvidia-* libraries pinned to the base's own versions so none is replaced.
# Every failure names the base image and says what to use instead.
set -eu
fail() {
    echo "base image ${BASE_IMAGE:-?} (image.torch: base): $*" >&2
    exit 1
}
command -v python3 >/dev/null 2>&1 || fail "no python3 on its PATH ($PATH)"
python3 -c 'import torch' 2>/dev/null \
    || fail "its python3 ($(command -v python3)) cannot import torch; use a base whose python3 holds a CUDA torch (NGC's PyTorch images), or image.torch: wheels"
if [ "$(python3 -c 'import sys; print(sys.prefix)')" = /opt/venv ]; then
    # The base's own environment is /opt/venv (an image of this harness as the base): install into it.
    :
else
    python3 -m venv --without-pip /opt/venv || fail "python3 -m venv failed: the base's Python lacks the venv module"
    site=$(/opt/venv/bin/python3 -c 'import sysconfig; print(sysconfig.get_path("purelib"))')
    # The base's package folders come after /opt/venv's own: what the harness installs wins (pytest 8 over a
    # base's pytest 9), torch and the CUDA libraries are the base's.
    python3 -c 'import sys; print("\n".join(p for p in sys.path if p.endswith(("site-packages", "dist-packages"))))' \
        >"$site/base-environment.pth"
fi
# The venv's interpreter runs the base's pip where there is one (it sees the base's packages), else pip from
# the wheelhouse; either installs into /opt/venv.
if /opt/venv/bin/python3 -m pip --version >/dev/null 2>&1; then
    pip="/opt/venv/bin/python3 -m pip"
else
    wheel=$(ls /tmp/harness/wheels/pip-*.whl 2>/dev/null | head -1)
    [ -n "$wheel" ] || fail "it has no pip, and the wheelhouse holds no pip wheel to install with"
    pip="/opt/venv/bin/python3 $wheel/pip"
fi
$pip list --format=freeze 2>/dev/null | grep -iE '^(torch|triton|nvidia-[a-z0-9-]+)==' >/tmp/base-constraints.txt || true
grep -qi '^torch==' /tmp/base-constraints.txt || fail "pip lists no torch distribution in it"
if [ -n "${WHEELHOUSE:-}" ]; then
    source="--no-index"
else
    source=""
fi
# shellcheck disable=SC2086  # $pip and $source are word lists on purpose
$pip install --no-cache-dir $source --find-links /tmp/harness/wheels -c /tmp/base-constraints.txt \
    -r /tmp/requirements.txt -r /tmp/harness/requirements.txt \
    || fail "installing the harness's requirements failed (the wheelhouse needs them for its Python, $(python3 -c 'import platform; print(platform.python_version())'))"
