# An image that cannot be built (no shell in an empty image), for the "build failure is a cell error" test.
FROM scratch
COPY requirements.txt /requirements.txt
RUN echo "unreachable: scratch has no /bin/sh"
