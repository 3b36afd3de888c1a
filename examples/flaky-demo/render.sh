#!/usr/bin/env bash
# Runs the demo matrix and renders its merged junit.xml as a JUnit viewer shows it:
# junit2html (pip install junit2html) and a headless Chromium screenshot (Debian's chromium).
#   bash examples/flaky-demo/render.sh [OUT_PNG]   (default docs/images/junit-viewer.png)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
png=$(realpath -m "${1:-$here/../../docs/images/junit-viewer.png}")
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
rm -rf /tmp/comm-harness-flaky-demo && mkdir -p /tmp/comm-harness-flaky-demo
cd "$here"
# Exit 1 is expected: test_broadcast_wrong fails for real.
harness run matrix.yaml --executor local --out "$work/out" || [ $? -eq 1 ]
junit2html "$work/out/junit.xml" "$work/report.html"
chromium --headless --no-sandbox --disable-gpu --hide-scrollbars --window-size=1300,1500 \
    --screenshot="$png" "file://$work/report.html" 2>/dev/null
echo "rendered $png"
