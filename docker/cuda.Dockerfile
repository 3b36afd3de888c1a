# The CUDA toolchain: torch's CUDA build with NCCL. Only the driver comes from the host: the NVIDIA
# container runtime injects it for the cell's DeviceRequest, or the harness mounts it (image.gpus: devices).
#
# Where torch comes from (TORCH_FROM, the matrix's `image.torch`):
#   wheels (default): torch's CUDA wheels, which bring the CUDA runtime and NCCL (nvidia-* packages), so any
#          base with a matching Python works.
#          Online:  torch from TORCH_INDEX_URL, the rest from PyPI.
#          Offline: WHEELHOUSE=1 installs from the build context's .comm-harness/wheels/ only. `harness images
#          build cuda --offline` fills it on a host without a GPU (PyPI's Linux torch wheels are CUDA
#          builds), or `--wheelhouse DIR` uses a directory you filled.
#   base:  the base image's own python3 already holds a CUDA torch (NVIDIA's NGC PyTorch images, or an image
#          made from a GPU host's environment): /opt/venv sees the base's packages through a .pth file, and
#          only the harness's requirements are installed into it, pinned to the versions the base has.
ARG BASE_IMAGE=python:3.11-slim

FROM ${BASE_IMAGE} AS install
ARG BASE_IMAGE
ARG TORCH_VERSION=2.13.0
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cu130
ARG WHEELHOUSE=
ARG TORCH_FROM=wheels
COPY requirements.txt /tmp/requirements.txt
# Added to the context by the harness: requirements.txt (the matrix's `packages:` and `requirements:`)
# and wheels/ (the offline wheelhouse, and the matrix's `wheelhouse:`).
COPY .comm-harness/ /tmp/harness/
COPY torch-from-base.sh /tmp/torch-from-base.sh
RUN if [ "$TORCH_FROM" = base ]; then \
        BASE_IMAGE="$BASE_IMAGE" WHEELHOUSE="$WHEELHOUSE" sh /tmp/torch-from-base.sh; \
    else \
        python3 -m venv /opt/venv \
        && if [ -n "$WHEELHOUSE" ]; then \
            /opt/venv/bin/pip install --no-cache-dir --no-index --find-links /tmp/harness/wheels \
                "torch==${TORCH_VERSION}" -r /tmp/requirements.txt -r /tmp/harness/requirements.txt; \
        else \
            /opt/venv/bin/pip install --no-cache-dir --index-url "$TORCH_INDEX_URL" "torch==${TORCH_VERSION}" \
            && /opt/venv/bin/pip install --no-cache-dir --find-links /tmp/harness/wheels \
                -r /tmp/requirements.txt -r /tmp/harness/requirements.txt; \
        fi; \
    fi \
 # A CPU wheel that slipped into the wheelhouse (or a base without a CUDA torch) would make a "cuda" image
 # that cannot run a single cell.
 && /opt/venv/bin/python -c "import sys, torch, torch.distributed as d; \
where = 'base image $BASE_IMAGE' if '$TORCH_FROM' == 'base' else 'the wheels'; \
assert torch.version.cuda, 'torch ' + torch.__version__ + ' from ' + where + ' is not a CUDA build'; \
assert d.is_nccl_available(), 'torch ' + torch.__version__ + ' from ' + where + ' lacks NCCL'"
# Names this stage's image so the harness can remove it once the final image is tagged.
ARG IMAGE_TAG=
LABEL comm-harness.install-stage-of=${IMAGE_TAG}

FROM ${BASE_IMAGE}
COPY --from=install /opt/venv /opt/venv
# Cells run as an unprivileged user who needs a temporary directory; a base made from a host's files
# (`harness images import-host`) may have none.
RUN mkdir -p /tmp /var/tmp && chmod 1777 /tmp /var/tmp
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    # What the NVIDIA runtime mounts from the host driver: CUDA (compute) and nvidia-smi (utility).
    NVIDIA_DRIVER_CAPABILITIES=compute,utility
LABEL comm-harness.device=cuda
WORKDIR /repo
