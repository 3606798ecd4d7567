"""Read agreements from YAML with errors that name the file, line and field.

``agreement.yaml:14: services[1].port: must be 1-65535`` is the shape of every message. YAML anchors
and aliases are refused: an agreement has no need of them and they allow exponential documents.
"""

from __future__ import annotations

import difflib
import io
from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel, ValidationError
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import MarkedYAMLError, YAMLError
from ruamel.yaml.events import AliasEvent

from nospy.agreement.schema import Agreement
from nospy.errors import InputError

MAX_AGREEMENT_BYTES = 1 << 20


def _yaml() -> YAML:
    yaml = YAML(typ="rt", pure=True)
    yaml.allow_duplicate_keys = False
    return yaml


def format_loc(loc: Sequence[int | str]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + part
    return out or "(document)"


def _line_of(doc: Any, loc: Sequence[int | str]) -> int | None:
    """The 1-based line of the node at ``loc``, or of its nearest ancestor present in the document."""
    node, line = doc, 1 if doc is not None else None
    for part in loc:
        if isinstance(node, CommentedMap) and isinstance(part, str) and part in node:
            line = (
                node.lc.value(part)[0] + 1
                if not isinstance(node[part], (CommentedMap, CommentedSeq))
                else node.lc.key(part)[0] + 1
            )
            node = node[part]
        elif isinstance(node, CommentedSeq) and isinstance(part, int) and 0 <= part < len(node):
            line = node.lc.item(part)[0] + 1
            node = node[part]
        else:
            break
    return line


def _plain_loc(loc: Sequence[int | str]) -> list[int | str]:
    # pydantic inserts the name of a tagged union member or function validator into loc; keep only
    # the parts that are in the document
    return [p for p in loc if isinstance(p, int) or not p.startswith("function-")]


def _message(err: Any) -> str:
    kind, msg, loc = err["type"], err["msg"], _plain_loc(err["loc"])
    if kind == "extra_forbidden":
        key = str(loc[-1])
        fields = _known_fields(loc[:-1])
        hint = difflib.get_close_matches(key, fields, n=1)
        msg = f"unknown key {key!r}" + (f" (did you mean {hint[0]!r}?)" if hint else "")
        if fields:
            msg += f"; allowed here: {', '.join(fields)}"
    elif kind == "missing":
        msg = "required field is missing"
    elif kind == "value_error":
        msg = msg.removeprefix("Value error, ")
    elif kind == "literal_error" and loc == ["nospy"]:
        msg = "unsupported format version (this nospy reads version 1)"
    return f"{format_loc(loc)}: {msg}"


def _known_fields(loc: Sequence[int | str]) -> list[str]:
    """The field names allowed at ``loc`` (a path of field names and list indexes)."""
    model: Any = Agreement
    for part in loc:
        if isinstance(part, int):
            continue
        field = model.model_fields.get(part)
        if field is None:
            return []
        model = _model_in(field.annotation)
        if model is None:
            return []
    return list(model.model_fields)


def _model_in(annotation: Any) -> Any:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()):
        found = _model_in(arg)
        if found is not None:
            return found
    return None


def parse_yaml(text: str, source: str = "agreement.yaml") -> Agreement:
    """Parse and validate an agreement written in YAML; raise `InputError` with file:line: field."""
    if len(text.encode("utf-8", "surrogatepass")) > MAX_AGREEMENT_BYTES:
        raise InputError(f"{source}: larger than {MAX_AGREEMENT_BYTES} bytes")
    yaml = _yaml()
    try:
        for event in yaml.parse(io.StringIO(text)):
            if isinstance(event, AliasEvent):
                line = event.start_mark.line + 1 if event.start_mark else 0
                raise InputError(f"{source}:{line}: YAML anchors and aliases are not allowed in agreements")
        doc = yaml.load(io.StringIO(text))
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else 0
        problem = exc.problem or exc.context or "invalid YAML"
        raise InputError(f"{source}:{line}: {problem}") from None
    except YAMLError as exc:
        raise InputError(f"{source}: invalid YAML: {exc}") from None
    except (ValueError, RecursionError) as exc:  # ruamel raises these on some malformed scalars
        raise InputError(f"{source}: invalid YAML: {exc}") from None
    if not isinstance(doc, CommentedMap):
        raise InputError(f"{source}:1: an agreement is a mapping of sections (nospy: 1, id: ..., ...)")
    return validate(_plain(doc), source, doc)


def _plain(node: Any) -> Any:
    """ruamel's round-trip containers and scalar subclasses as plain Python values."""
    if isinstance(node, dict):
        return {str(k) if not isinstance(k, str) else k: _plain(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_plain(v) for v in node]
    if isinstance(node, bool) or node is None:
        return node
    if isinstance(node, int):
        return int(node)
    if isinstance(node, float):
        return float(node)
    if isinstance(node, str):
        return str(node)
    return str(node)  # dates and other YAML scalars: let the schema say they are the wrong type


def validate(data: Any, source: str, doc: Any = None) -> Agreement:
    """Validate plain data as an agreement; errors name ``source`` and, with ``doc``, the line."""
    try:
        return Agreement.model_validate(data)
    except ValidationError as exc:
        found = []
        for err in exc.errors(include_url=False):
            line = _line_of(doc, _plain_loc(err["loc"])) if doc is not None else None
            where = f"{source}:{line}" if line else source
            found.append((line or 0, f"{where}: {_message(err)}"))
        # in document order, as an editor would walk them (stable for errors on one line)
        raise InputError("\n".join(text for _, text in sorted(found, key=lambda f: f[0]))) from None
