# The Intel XPU toolchain: torch from PyTorch's XPU index (native xccl backend, oneCCL and the SYCL runtime
# come as wheels) and the Level Zero user-space driver; the kernel driver and /dev/dri come from the host.
# Not built on the project's own machines (no registry, no Intel GPU there): written and reviewed.
#
# Online:  Intel's base image, the GPU user-space driver (compute-runtime .debs from GPU_UMD_URLS),
#          torch from TORCH_INDEX_URL.
# Offline: WHEELHOUSE=1 installs Python packages from the context's .comm-harness/wheels/ (for Python 3.12);
#          pass GPU_UMD_URLS= (empty) with a BASE_IMAGE that already holds the driver.
ARG BASE_IMAGE=intel/deep-learning-essentials:2025.3.2-0-devel-ubuntu24.04

# What both the install stage and the final image need: Python and the GPU user-space driver.
FROM ${BASE_IMAGE} AS runtime
# Intel's compute runtime (Level Zero GPU driver, OpenCL ICD, graphics compiler) and the Level Zero loader.
ARG GPU_UMD_URLS="\
https://github.com/intel/intel-graphics-compiler/releases/download/v2.24.8/intel-igc-core-2_2.24.8+20344_amd64.deb \
https://github.com/intel/intel-graphics-compiler/releases/download/v2.24.8/intel-igc-opencl-2_2.24.8+20344_amd64.deb \
https://github.com/intel/compute-runtime/releases/download/25.48.36300.8/intel-opencl-icd_25.48.36300.8-0_amd64.deb \
https://github.com/intel/compute-runtime/releases/download/25.48.36300.8/libigdgmm12_22.8.2_amd64.deb \
https://github.com/intel/compute-runtime/releases/download/25.48.36300.8/libze-intel-gpu1_25.48.36300.8-0_amd64.deb \
https://github.com/oneapi-src/level-zero/releases/download/v1.26.0/level-zero_1.26.0+u24.04_amd64.deb"
RUN if ! python3 -m venv --help >/dev/null 2>&1; then \
        apt-get update && apt-get install -y --no-install-recommends python3 python3-venv python3-pip \
        && rm -rf /var/lib/apt/lists/*; \
    fi \
 && if [ -n "$GPU_UMD_URLS" ]; then \
        mkdir /tmp/umd && cd /tmp/umd \
        && for url in $GPU_UMD_URLS; do wget -q "$url"; done \
        && dpkg -i ./*.deb && cd / && rm -rf /tmp/umd; \
    fi \
 # Without the loader torch.xpu sees no device at all, and every cell would be skipped for the wrong reason.
 && if ! ldconfig -p | grep -q libze_loader; then \
        echo "no Level Zero loader (libze_loader) in the image: set GPU_UMD_URLS or BASE_IMAGE" >&2; exit 1; \
    fi

FROM runtime AS install
ARG TORCH_VERSION=2.13.0
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/xpu
ARG WHEELHOUSE=
COPY requirements.txt /tmp/requirements.txt
# Added to the context by the harness: requirements.txt (the matrix's `packages:` and `requirements:`)
# and wheels/ (the offline wheelhouse, and the matrix's `wheelhouse:`).
COPY .comm-harness/ /tmp/harness/
RUN python3 -m venv /opt/venv \
 && if [ -n "$WHEELHOUSE" ]; then \
        /opt/venv/bin/pip install --no-cache-dir --no-index --find-links /tmp/harness/wheels \
            "torch==${TORCH_VERSION}" -r /tmp/requirements.txt -r /tmp/harness/requirements.txt; \
    else \
        /opt/venv/bin/pip install --no-cache-dir --index-url "$TORCH_INDEX_URL" "torch==${TORCH_VERSION}" \
        && /opt/venv/bin/pip install --no-cache-dir --find-links /tmp/harness/wheels \
            -r /tmp/requirements.txt -r /tmp/harness/requirements.txt; \
    fi \
 && /opt/venv/bin/python -c "import torch, torch.distributed as d; \
assert getattr(torch.version, 'xpu', None), 'torch ' + torch.__version__ + ' is not an XPU build'; \
assert d.is_xccl_available(), 'torch lacks the xccl backend'"
# Names this stage's image so the harness can remove it once the final image is tagged.
ARG IMAGE_TAG=
LABEL comm-harness.install-stage-of=${IMAGE_TAG}

# A last stage so the wheels copied into the build context do not stay in the image's layers.
FROM runtime
COPY --from=install /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1
LABEL comm-harness.device=xpu
WORKDIR /repo
