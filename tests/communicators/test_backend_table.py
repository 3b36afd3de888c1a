"""The all2all backend table is generated from the data; docs/communicators.md shows the current one."""

from __future__ import annotations

from pathlib import Path

from communicators import PLATFORMS, render_backend_table, render_readme_block, valid_all2all_backend_names
from communicators.backend_table import BEGIN_MARKER, END_MARKER

PAGE = Path(__file__).resolve().parents[2] / "docs" / "communicators.md"


def _rows() -> dict[str, list[str]]:
    lines = render_backend_table().strip().splitlines()
    header = [cell.strip() for cell in lines[0].strip("|").split("|")]
    assert header == ["name", *PLATFORMS, "needs", "manager"]
    rows = {}
    for line in lines[2:]:
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        rows[cells[0].strip("`")] = cells[1:]
    return rows


def test_the_table_has_one_row_per_name_and_one_column_per_platform():
    rows = _rows()
    assert list(rows) == valid_all2all_backend_names()
    assert all(len(cells) == len(PLATFORMS) + 2 for cells in rows.values())


def test_the_table_cells_say_what_each_name_becomes():
    rows = _rows()
    cuda = PLATFORMS.index("cuda")
    cpu = PLATFORMS.index("cpu")
    assert rows["naive"][cpu] == "`allgather_reducescatter` (deprecated)"
    assert rows["deepep_low_latency"][cuda] == "`deepep_low_latency`"
    assert rows["deepep_low_latency"][cpu] == "`allgather_reducescatter` (fallback)"
    assert rows["flashinfer_all2allv"][cuda] == "`flashinfer_nvlink_two_sided` (deprecated)"
    assert rows["pplx"][cuda] == "`allgather_reducescatter` (removed, fallback)"
    assert rows["deepep_low_latency"][-2:] == ["`deep_ep`", "serving engine"]
    assert rows["allgather_reducescatter"][-1] == "`AgRsAll2AllManager`"


def test_the_communicators_page_shows_the_current_table():
    text = PAGE.read_text() if PAGE.exists() else ""
    begin, end = text.find(BEGIN_MARKER), text.find(END_MARKER)
    assert 0 <= begin < end, (
        f"{PAGE} has no backend table between {BEGIN_MARKER} and {END_MARKER}: "
        "paste the output of `python -m communicators` there"
    )
    page_block = text[begin : end + len(END_MARKER)] + "\n"
    assert page_block == render_readme_block(), (
        f"{PAGE}'s backend table is out of date: replace the block between the markers with the output "
        "of `python -m communicators`"
    )
