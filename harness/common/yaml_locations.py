"""YAML parsing that remembers where every key and value was written, for file:line error messages."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import yaml

from harness.common.errors import ConfigurationError

KeyPath = Sequence[str | int]


def parse_yaml_with_nodes(text: str, path: Path) -> tuple[Any, yaml.Node | None]:
    """Parse `text` into (data, node tree); a syntax error is a ConfigurationError naming file:line:column."""
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
        problem = error.problem or error.context or "invalid YAML"
        raise ConfigurationError(
            f"{where}: YAML syntax error: {problem}\nFix the YAML syntax at that position and run again."
        ) from None
    except yaml.YAMLError as error:
        raise ConfigurationError(f"{path}: YAML error: {error}") from None
    return data, node


def format_key_path(key_path: KeyPath) -> str:
    """Render ['devices', 'cpu', 'world_sizes', 1] as 'devices.cpu.world_sizes[1]'."""
    text = ""
    for part in key_path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "(top level)"


def node_at(root: yaml.Node | None, key_path: KeyPath, *, key: bool = False) -> yaml.Node | None:
    """The node at `key_path` (the key's own node when `key`), or the deepest ancestor that exists."""
    node = root
    for depth, part in enumerate(key_path):
        child = None
        if isinstance(node, yaml.MappingNode):
            for key_node, value_node in node.value:
                if key_node.value == str(part):
                    last = depth == len(key_path) - 1
                    child = key_node if key and last else value_node
                    break
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            child = node.value[part]
        if child is None:
            return node
        node = child
    return node


def line_of(root: yaml.Node | None, key_path: KeyPath, *, key: bool = False) -> int:
    """1-based line of the node at `key_path` (0 when the file is empty)."""
    node = node_at(root, key_path, key=key)
    return node.start_mark.line + 1 if node is not None else 0


def duplicate_keys(root: yaml.Node | None) -> Iterator[tuple[list[str | int], int, int]]:
    """Yield (key path, line, first line) for every mapping key written twice (YAML keeps only the last)."""
    stack: list[tuple[yaml.Node | None, list[str | int]]] = [(root, [])]
    while stack:
        node, path = stack.pop()
        if isinstance(node, yaml.MappingNode):
            first_line: dict[str, int] = {}
            for key_node, value_node in node.value:
                name = str(key_node.value)
                line = key_node.start_mark.line + 1
                if name in first_line:
                    yield [*path, name], line, first_line[name]
                else:
                    first_line[name] = line
                stack.append((value_node, [*path, name]))
        elif isinstance(node, yaml.SequenceNode):
            stack.extend((item, [*path, index]) for index, item in enumerate(node.value))
