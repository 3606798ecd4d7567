"""Known backdoors: YARA-X rules, one file per publicly documented case (``backdoors/*.yar``).

Each rule's metadata names the case: ``description``, ``vendor``, ``cve`` and ``reference`` (the
advisory). Users add their own rule files with ``--rules DIR``; each file is compiled in its own
namespace, so rule names may repeat across files. The signatures are the distinctive strings the
advisories print; a match says the documented mechanism is present, its evidence is the offset.
"""

from __future__ import annotations

from functools import cache, partial
from importlib import resources
from pathlib import Path

import yara_x

from nospy.errors import InputError
from nospy.findings import Finding
from nospy.firmware.context import Context, Detector, finding

__all__ = ["BACKDOORS", "builtin_rule_files", "compile_rules"]

REQUIRED_META = ("description", "reference", "cve")
MAX_SCAN = 64 << 20  # bytes of one file given to the scanner


def builtin_rule_files() -> dict[str, str]:
    """Name -> source of the bundled rules."""
    folder = resources.files("nospy.firmware").joinpath("backdoors")
    return {
        f.name.removesuffix(".yar"): f.read_text()
        for f in sorted(folder.iterdir(), key=lambda f: f.name)
        if f.name.endswith(".yar")
    }


def compile_rules(user_dirs: tuple[Path, ...] = ()) -> yara_x.Rules:
    """The bundled rules plus every ``*.yar``/``*.yara`` file in ``user_dirs``."""
    compiler = yara_x.Compiler()
    sources: list[tuple[str, str, str]] = [
        (name, src, f"backdoors/{name}.yar") for name, src in builtin_rule_files().items()
    ]
    for d in user_dirs:
        if not d.is_dir():
            raise InputError(f"{d}: not a folder of YARA rules")
        files = sorted([*d.glob("*.yar"), *d.glob("*.yara")])
        if not files:
            raise InputError(f"{d}: no .yar or .yara files")
        for f in files:
            try:
                sources.append((f"user.{f.stem}", f.read_text(), str(f)))
            except (OSError, UnicodeDecodeError) as exc:
                raise InputError(f"{f}: {exc}") from None
    for namespace, src, origin in sources:
        compiler.new_namespace(namespace)
        try:
            compiler.add_source(src, origin=origin)
        except yara_x.CompileError as exc:
            raise InputError(f"{origin}: {exc}") from None
    return compiler.build()


@cache
def _builtin() -> yara_x.Rules:
    return compile_rules()


def _matches(scanner: yara_x.Scanner, data: bytes) -> dict[str, object]:
    """The rules matching one file's bytes, with the first match's offset and line (cached by content)."""
    try:
        result = scanner.scan(data[:MAX_SCAN])
    except yara_x.ScanError as exc:
        return {"error": f"YARA-X: {exc}"}
    out = []
    for m in result.matching_rules:
        offsets = [x.offset for p in m.patterns for x in p.matches]
        offset = min(offsets) if offsets else None
        line = data.count(b"\n", 0, offset) + 1 if offset is not None and b"\x00" not in data[:4096] else None
        meta = dict(m.metadata)
        out.append({"namespace": m.namespace, "identifier": m.identifier, "meta": meta, "offset": offset, "line": line})
    return {"matches": out}


def _run(ctx: Context) -> list[Finding]:
    rules = compile_rules(tuple(ctx.rules_dirs)) if ctx.rules_dirs else _builtin()
    scanner = yara_x.Scanner(rules)
    analyser = "backdoors" if not ctx.rules_dirs else "backdoors+user"
    findings: list[Finding] = []
    for entry in ctx.files():
        if entry.size == 0:
            continue
        result = ctx.analyse(analyser, entry, partial(_matches, scanner))
        if result is None:
            continue
        if "error" in result:
            ctx.error(entry.path, result["error"])
            continue
        for m in result["matches"]:
            meta = m["meta"]
            ev = ctx.evidence(entry.path, m["line"], m["offset"])
            cve = meta.get("cve")
            label = f"{m['identifier']}" + (f" ({cve})" if cve and cve != "none assigned" else "")
            findings.append(
                finding(
                    "backdoor.known",
                    f"{label}: {meta.get('description', 'user rule matched')}",
                    ev,
                    rule=f"{m['namespace']}:{m['identifier']}",
                    cve=cve,
                    reference=meta.get("reference"),
                    vendor=meta.get("vendor"),
                )
            )
    return findings


BACKDOORS = Detector(
    name="backdoors",
    rules=("backdoor.known",),
    rationale="Publicly documented backdoors recur across vendors sharing ODM code; their strings are known.",
    references=("https://virustotal.github.io/yara-x/",),
    run=_run,
)
