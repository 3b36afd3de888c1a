#!/usr/bin/env bash
# The harness in someone else's repository, timed: the wheel built from this checkout, a fresh venv outside
# any checkout (--system-site-packages: the machine's torch, as a user who has one), the wheel and
# examples/engine-template installed into it, then the template's first cell locally and in Docker.
# Prints the wheel's size and contents and each step's seconds.
#   bash benchmarks/harness/outside_project.sh
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
chmod 755 "$work"
t() { local started=$SECONDS; "$@"; echo "   ($((SECONDS - started)) s)"; }

echo "== wheel"
t python3 -m build --wheel --outdir "$work/dist" "$repo" >/dev/null 2>&1
wheel=$(ls "$work"/dist/comm_harness-*.whl)
python3 - "$wheel" <<'PY'
import collections, sys, zipfile
z = zipfile.ZipFile(sys.argv[1])
files = [i for i in z.infolist() if not i.is_dir()]
print(f"{sys.argv[1].rsplit('/', 1)[1]}: {sum(1 for _ in files)} files, "
      f"{__import__('os').path.getsize(sys.argv[1]) / 1024:.0f} KiB")
top = collections.Counter(
    "/".join(i.filename.split("/")[: 2 if i.filename.startswith("harness/") else 1]) for i in files
)
for name, count in sorted(top.items()):
    print(f"   {count:3} {name}")
PY

cp -r "$repo/examples/engine-template" "$work/myengine"
find "$work/myengine" -name '*.egg-info' -prune -exec rm -rf {} +
chmod -R a+rX "$work"
cd "$work/myengine"
export -n PYTHONPATH VIRTUAL_ENV || true
unset PYTHONPATH VIRTUAL_ENV
started=$SECONDS
echo "== fresh venv, the wheel and the template installed"
t python3 -m venv --system-site-packages .venv
t .venv/bin/python -m pip install -q "$wheel" -e .
echo "== first cell, locally"
t .venv/bin/harness run matrix.yaml --executor local --out out-local | tail -2
echo "   from a fresh venv to the first passing cell locally: $((SECONDS - started)) s"
echo "== first cell, in Docker (the stock cpu image present: its first offline build is timed in docs/measured.md)"
t .venv/bin/harness run matrix.yaml --executor docker --out out-docker | tail -2
echo "   from a fresh venv to a passing cell in Docker as well: $((SECONDS - started)) s"
