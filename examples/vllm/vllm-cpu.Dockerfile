# The cpu toolchain plus one vLLM release's communicators: torch 2.13 (CPU), the harness's test packages, what
# vLLM's communicator modules import (requirements.txt), and vLLM and xgrammar with --no-deps (their own
# requirements pin a CUDA torch). Build context: this directory; wheels/ comes from fetch-wheels.sh.
# VLLM_VERSION is the matrix's `vllm` axis (`build_args: {VLLM_VERSION: "${{ matrix.vllm }}"}`): one image
# per version, each tagged by its own content hash.
#
# Offline (`harness images build cpu --offline`, or `harness run ... --executor docker --offline`): the harness
# resolves the matrix's `requirements:` into .comm-harness/wheels/ on the host and sets WHEELHOUSE=1.
ARG BASE_IMAGE=python:3.11-slim

FROM ${BASE_IMAGE} AS install
ARG TORCH_VERSION=2.13.0
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
ARG WHEELHOUSE=
ARG VLLM_VERSION=0.33.0
COPY .comm-harness/ /tmp/harness/
COPY wheels/ /tmp/vllm-wheels/
RUN python3 -m venv /opt/venv \
 && if [ -n "$WHEELHOUSE" ]; then \
        /opt/venv/bin/pip install --no-cache-dir --no-index --find-links /tmp/harness/wheels \
            "torch==${TORCH_VERSION}" -r /tmp/harness/requirements.txt; \
    else \
        /opt/venv/bin/pip install --no-cache-dir --index-url "$TORCH_INDEX_URL" "torch==${TORCH_VERSION}" \
        && /opt/venv/bin/pip install --no-cache-dir -r /tmp/harness/requirements.txt; \
    fi \
 && /opt/venv/bin/pip install --no-cache-dir --no-deps --no-index --find-links /tmp/vllm-wheels \
        "vllm==${VLLM_VERSION}" xgrammar==0.2.8 \
 && VLLM_TARGET_DEVICE=cpu /opt/venv/bin/python -c \
        "import vllm.distributed.device_communicators.cpu_communicator as c; print('vLLM communicators import')"
ARG IMAGE_TAG=
LABEL comm-harness.install-stage-of=${IMAGE_TAG}

FROM ${BASE_IMAGE}
COPY --from=install /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    VLLM_TARGET_DEVICE=cpu
LABEL comm-harness.device=cpu
WORKDIR /repo
