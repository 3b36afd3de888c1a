"""docs/matrix-reference.md is generated from the matrix schema: it names every key the loader accepts, and
a change of the schema or the built-in defaults without regenerating the page fails here."""

from __future__ import annotations

from cli_runs import REPO_ROOT

from harness.config.matrix import BUILTIN_DEFAULTS, _load_schema
from harness.config.matrix_reference import render_reference

PAGE = REPO_ROOT / "docs" / "matrix-reference.md"


def test_the_reference_page_is_the_schemas():
    assert PAGE.read_text() == render_reference(_load_schema()), (
        "docs/matrix-reference.md drifted from the schema: python -m harness.config.matrix_reference > "
        "docs/matrix-reference.md"
    )


def test_every_key_and_default_is_on_the_page():
    schema, page = _load_schema(), PAGE.read_text()
    keys = [*schema["properties"], *schema["$defs"]["device"]["properties"]]
    keys += list(schema["$defs"]["device"]["properties"]["image"]["properties"])
    assert [key for key in keys if f"| `{key}` |" not in page] == []
    assert "| `required` | boolean | `true` |" in page and BUILTIN_DEFAULTS["required"] is True
