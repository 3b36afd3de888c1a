# The CPU toolchain: torch's CPU build (gloo) and the test runner's packages, nothing of the project.
# The repository is mounted read-only at /repo when a cell runs, so a code change needs no rebuild.
#
# Online:  BASE_IMAGE=python:3.11-slim, torch from TORCH_INDEX_URL, the rest from PyPI.
# Offline: WHEELHOUSE=1 installs from the build context's .comm-harness/wheels/ only (`harness images
#          build cpu --offline` fills it and makes BASE_IMAGE from Debian packages).
ARG BASE_IMAGE=python:3.11-slim

FROM ${BASE_IMAGE} AS install
ARG TORCH_VERSION=2.13.0
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
ARG WHEELHOUSE=
COPY requirements.txt /tmp/requirements.txt
# Added to the context by the harness: requirements.txt (the matrix's `packages:` and `requirements:`)
# and wheels/ (the offline wheelhouse, and the matrix's `wheelhouse:`).
COPY .comm-harness/ /tmp/harness/
# A venv: Debian's own python3 refuses pip installs into the system (PEP 668).
RUN python3 -m venv /opt/venv \
 && if [ -n "$WHEELHOUSE" ]; then \
        /opt/venv/bin/pip install --no-cache-dir --no-index --find-links /tmp/harness/wheels \
            "torch==${TORCH_VERSION}" -r /tmp/requirements.txt -r /tmp/harness/requirements.txt; \
    else \
        /opt/venv/bin/pip install --no-cache-dir --index-url "$TORCH_INDEX_URL" "torch==${TORCH_VERSION}" \
        && /opt/venv/bin/pip install --no-cache-dir --find-links /tmp/harness/wheels \
            -r /tmp/requirements.txt -r /tmp/harness/requirements.txt; \
    fi \
 && /opt/venv/bin/python -c "import torch.distributed as d; assert d.is_gloo_available(), 'torch lacks gloo'"
# Names this stage's image so the harness can remove it once the final image is tagged.
ARG IMAGE_TAG=
LABEL comm-harness.install-stage-of=${IMAGE_TAG}

# A second stage so the wheels copied into the build context do not stay in the image's layers.
FROM ${BASE_IMAGE}
COPY --from=install /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1
LABEL comm-harness.device=cpu
WORKDIR /repo
