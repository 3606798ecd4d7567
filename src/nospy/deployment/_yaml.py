"""YAML for the operator's own files (inventories, zones files), with line numbers and no aliases.

YAML 1.2 through ruamel's pure-Python round-trip loader, so every mapping and sequence knows its
line. Anchors and aliases are refused: these files have no need of them and they allow exponential
documents ("billion laughs").
"""

from __future__ import annotations

import io
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import MarkedYAMLError, YAMLError
from ruamel.yaml.events import AliasEvent

from nospy.deployment.interface import DeploymentError

__all__ = ["item_line", "key_line", "load"]


def load(text: str, source: str) -> Any:
    """The document in ``text`` (round-trip containers); `DeploymentError` naming ``source`` and line."""
    yaml = YAML(typ="rt", pure=True)
    yaml.allow_duplicate_keys = False
    try:
        for event in yaml.parse(io.StringIO(text)):
            if isinstance(event, AliasEvent):
                line = event.start_mark.line + 1 if event.start_mark else 0
                raise DeploymentError(f"{source}:{line}: YAML anchors and aliases are not allowed here")
        return yaml.load(io.StringIO(text))
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else 0
        raise DeploymentError(f"{source}:{line}: {exc.problem or exc.context or 'invalid YAML'}") from None
    except YAMLError as exc:
        raise DeploymentError(f"{source}: invalid YAML: {exc}") from None
    except (ValueError, TypeError, RecursionError) as exc:  # ruamel raises these on some malformed scalars
        raise DeploymentError(f"{source}: invalid YAML: {exc}") from None


def item_line(seq: Any, index: int) -> int | None:
    """The 1-based line of item ``index`` of a round-trip sequence."""
    if isinstance(seq, CommentedSeq):
        try:
            return int(seq.lc.item(index)[0]) + 1
        except (KeyError, IndexError, TypeError):
            return None
    return None


def key_line(mapping: Any, key: str) -> int | None:
    """The 1-based line of ``key`` in a round-trip mapping."""
    if isinstance(mapping, CommentedMap):
        try:
            return int(mapping.lc.key(key)[0]) + 1
        except (KeyError, IndexError, TypeError):
            return None
    return None
