# The CUDA toolchain: torch's CUDA build with NCCL. The wheels bring the CUDA runtime and NCCL
# (nvidia-* packages), so any base with a matching Python works; only the driver comes from the host,
# injected by the NVIDIA container runtime for the cell's DeviceRequest.
#
# Online:  torch from TORCH_INDEX_URL, the rest from PyPI.
# Offline: WHEELHOUSE=1 installs from the build context's .comm-harness/wheels/ only. `harness images build
#          cuda --offline` fills it on a host without a GPU (PyPI's Linux torch wheels are CUDA builds),
#          or `--wheelhouse DIR` uses a directory you filled.
ARG BASE_IMAGE=python:3.11-slim

FROM ${BASE_IMAGE} AS install
ARG TORCH_VERSION=2.13.0
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cu130
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
 # A CPU wheel that slipped into the wheelhouse would make a "cuda" image that cannot run a single cell.
 && /opt/venv/bin/python -c "import torch, torch.distributed as d; \
assert torch.version.cuda, 'torch ' + torch.__version__ + ' is not a CUDA build'; \
assert d.is_nccl_available(), 'torch lacks NCCL'"
# Names this stage's image so the harness can remove it once the final image is tagged.
ARG IMAGE_TAG=
LABEL comm-harness.install-stage-of=${IMAGE_TAG}

FROM ${BASE_IMAGE}
COPY --from=install /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    # What the NVIDIA runtime mounts from the host driver: CUDA (compute) and nvidia-smi (utility).
    NVIDIA_DRIVER_CAPABILITIES=compute,utility
LABEL comm-harness.device=cuda
WORKDIR /repo
