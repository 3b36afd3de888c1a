"""Known gaps as data: a YAML file, kept by whoever qualifies an implementation, keyed by its version.

    versions:
      "0.33.0": &current
        - test: test_gather_*                 # fnmatch on the test name without its platform id
          platforms: [xpu_emulated]           # TargetPlatform ids
          world_sizes: [4]                    # optional; every world size when absent
          defect: vllm                        # whose defect: the implementation's name, or torch
          reason: gather all-gathers into a stacked output, which gloo rejects
          match: 'ProcessGroupGloo::allgather: invalid'   # regex the failure's text must contain
          source: vllm/distributed/device_communicators/xpu_communicator.py:61   # optional, where it is
      "0.34.0": *current                      # a release with the same gaps (YAML alias)
      "0.20.0":
        - *current                            # a list inside the list: its gaps, spliced in
        - test: ...

Keys other than `versions` (e.g. `shared:`) may hold lists for aliases.

Each gap becomes a strict xfail (harness/adapters/base.py, KnownGap). Mistakes are errors with file, line and
key: an unknown key, a missing field, a regex that does not compile, and a gap another one shadows (an earlier
gap that applies to every test, platform and world size of a later one wins, so the later never would).
"""

from __future__ import annotations

import fnmatch
import re
from pathlib import Path
from typing import Any

import yaml

from harness.adapters.base import KnownGap
from harness.common.errors import ConfigurationError
from harness.common.yaml_locations import node_at, parse_yaml_with_nodes

GAP_KEYS = {"test", "platforms", "world_sizes", "defect", "reason", "match", "source"}
REQUIRED_KEYS = ("test", "platforms", "defect", "reason")


class GapFileError(ValueError):
    """The gap file is missing, unreadable, or has a mistake; the message names file, line and key."""


def versions_in(path: Path) -> list[str]:
    """The versions the file records gaps for, in file order."""
    data, _root = _load(path)
    return list(data["versions"])


def load_known_gaps(path: Path, version: str) -> tuple[KnownGap, ...] | None:
    """The gaps recorded for `version`; None when the file has no entry for it (not the same as no gaps:
    `"0.35.0": []` says a version was qualified and has none)."""
    data, root = _load(path)
    entries = data["versions"].get(version)
    if entries is None:
        return None
    node = node_at(root, ["versions", version])
    if not isinstance(entries, list):
        raise GapFileError(f"{path}:{_line(node)}: versions.{version} must be a list of gaps")
    gaps: list[KnownGap] = []
    for index, (entry, entry_node) in enumerate(_spliced(entries, node)):
        where = f"{path}:{_line(entry_node)}: versions.{version} gap {index + 1}"
        gap = _gap(entry, where)
        for earlier_index, earlier in enumerate(gaps):
            if shadows(earlier, gap):
                raise GapFileError(
                    f"{where} ({gap.test} on {', '.join(gap.platforms)}) is shadowed by gap "
                    f"{earlier_index + 1} ({earlier.test}), which applies first to every test it covers: put "
                    "the narrower gap first, or remove it"
                )
        gaps.append(gap)
    return tuple(gaps)


def shadows(earlier: KnownGap, later: KnownGap) -> bool:
    """Whether `earlier` applies wherever `later` does (its pattern matches later's, it covers its platforms
    and world sizes), so that `later`, being checked second, never applies."""
    sizes_covered = not earlier.world_sizes or (
        bool(later.world_sizes) and set(later.world_sizes) <= set(earlier.world_sizes)
    )
    return (
        set(later.platforms) <= set(earlier.platforms)
        and sizes_covered
        and fnmatch.fnmatchcase(later.test, earlier.test)
    )


def unmatched(gaps: tuple[KnownGap, ...], test_names: set[tuple[str, str]]) -> list[KnownGap]:
    """The gaps that apply to none of `test_names` ((name without platform id, platform id) pairs)."""
    return [
        gap
        for gap in gaps
        if not any(
            platform in gap.platforms and fnmatch.fnmatchcase(name, gap.test) for name, platform in test_names
        )
    ]


def _spliced(entries: list[Any], node: Any) -> list[tuple[Any, Any]]:
    """The gaps of a version's list with the lists inside it spliced in (`- *shared`: another list's gaps),
    each with its YAML node (for line numbers)."""
    nodes = node.value if isinstance(node, yaml.SequenceNode) else [None] * len(entries)
    spliced: list[tuple[Any, Any]] = []
    for entry, entry_node in zip(entries, nodes, strict=True):
        if isinstance(entry, list):
            spliced += _spliced(entry, entry_node)
        else:
            spliced.append((entry, entry_node))
    return spliced


def _line(node: Any) -> int:
    return node.start_mark.line + 1 if node is not None else 0


def _load(path: Path) -> tuple[dict[str, Any], Any]:
    try:
        text = path.read_text()
    except OSError as error:
        raise GapFileError(f"{path}: cannot read the known-gaps file: {error.strerror}") from None
    try:
        data, root = parse_yaml_with_nodes(text, path)
    except ConfigurationError as error:
        raise GapFileError(str(error).splitlines()[0]) from None
    if not isinstance(data, dict) or not isinstance(data.get("versions"), dict):
        raise GapFileError(f"{path}:1: a known-gaps file maps `versions:` (version -> list of gaps)")
    data["versions"] = {str(version): entries for version, entries in data["versions"].items()}
    return data, root


def _gap(entry: Any, where: str) -> KnownGap:
    if not isinstance(entry, dict):
        raise GapFileError(f"{where}: a gap is a mapping with {', '.join(REQUIRED_KEYS)}")
    unknown = sorted(set(entry) - GAP_KEYS)
    if unknown:
        raise GapFileError(f"{where}: unknown key {unknown[0]!r}; a gap has {', '.join(sorted(GAP_KEYS))}")
    missing = [key for key in REQUIRED_KEYS if not entry.get(key)]
    if missing:
        raise GapFileError(f"{where}: missing {missing[0]!r}")
    platforms = entry["platforms"]
    if not isinstance(platforms, list) or not all(isinstance(p, str) for p in platforms):
        raise GapFileError(f"{where}: platforms is a list of platform ids (cpu, xpu_emulated, ...)")
    match = str(entry.get("match") or "")
    try:
        re.compile(match)
    except re.error as error:
        raise GapFileError(f"{where}: match {match!r} is not a regular expression: {error}") from None
    sizes = entry.get("world_sizes") or []
    if not isinstance(sizes, list) or not all(isinstance(size, int) for size in sizes):
        raise GapFileError(f"{where}: world_sizes is a list of integers")
    return KnownGap(
        test=str(entry["test"]),
        platforms=tuple(platforms),
        reason=str(entry["reason"]).strip(),
        match=match,
        world_sizes=tuple(sizes),
        defect=str(entry["defect"]),
        source=str(entry.get("source") or ""),
        origin=where,
    )
