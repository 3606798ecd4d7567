"""Programs that listen on the network and can run commands, read from their ELF imports.

A dynamically linked executable that imports ``bind``, ``listen`` and ``accept`` and also one of
``execve``/``system``/``popen`` (and friends) can serve a remote shell; when no declared service
accounts for it, that is a `binary.listener` finding. Statically linked programs have no imports
to read: they are listed as not analysed rather than guessed at. ELF is read with pyelftools
(System V ABI, ELF gABI: ``.dynsym`` undefined symbols).
"""

from __future__ import annotations

import io
import posixpath
import re
import struct
from dataclasses import dataclass
from functools import partial

from elftools.common.exceptions import ELFError
from elftools.elf.elffile import ELFFile
from elftools.elf.sections import SymbolTableSection

from nospy.errors import InputError
from nospy.findings import Finding
from nospy.firmware.context import MAX_READ, Context, Detector, finding
from nospy.firmware.tree import Entry

__all__ = ["LISTENERS", "ElfInfo", "read_elf"]

NET = frozenset({"bind", "listen"})
ACCEPT = frozenset({"accept", "accept4"})
_LIBRARY = re.compile(r"^(?:lib|ld-).*\.so(?:\.[\d.]+)?$")
MAX_ELF = 512 << 20  # larger "programs" are not read whole (a browser engine, a firmware blob)
EXEC = frozenset(
    {
        "execve",
        "execl",
        "execlp",
        "execle",
        "execv",
        "execvp",
        "execvpe",
        "system",
        "popen",
        "posix_spawn",
        "posix_spawnp",
    }
)


@dataclass(frozen=True, slots=True)
class ElfInfo:
    machine: str
    executable: bool  # an executable (has an interpreter or is ET_EXEC), not a shared library
    static: bool
    imports: frozenset[str]
    needed: tuple[str, ...]


def read_elf(data: bytes, name: str = "ELF", symbols: bool = True) -> ElfInfo:
    """Imports and kind of one ELF file; `InputError` if it is not a readable ELF."""
    try:
        elf = ELFFile(io.BytesIO(data))
        interp = any(seg["p_type"] == "PT_INTERP" for seg in elf.iter_segments())
        dynamic = elf.get_section_by_name(".dynamic")
        executable = interp or elf["e_type"] == "ET_EXEC"
        if not executable or not symbols:  # libraries export these names; only programs are read
            return ElfInfo(str(elf["e_machine"]), executable, dynamic is None, frozenset(), ())
        dynsym = elf.get_section_by_name(".dynsym")
        imports = _undefined(elf, dynsym) if isinstance(dynsym, SymbolTableSection) else set()
        needed: list[str] = []
        if dynamic is not None and hasattr(dynamic, "iter_tags"):
            needed = [t.needed for t in dynamic.iter_tags() if t.entry.d_tag == "DT_NEEDED"]
        return ElfInfo(
            str(elf["e_machine"]),
            executable,
            dynamic is None,
            frozenset(imports),
            tuple(needed),
        )
    except (
        ELFError,
        ValueError,
        KeyError,
        IndexError,
        AttributeError,
        TypeError,
        OverflowError,
        AssertionError,
        struct.error,
    ) as exc:
        raise InputError(f"{name}: unreadable ELF ({type(exc).__name__}: {exc})") from None


def _undefined(elf: ELFFile, dynsym: SymbolTableSection) -> set[str]:
    """Names of the undefined (imported) symbols of ``.dynsym``, version suffixes dropped.

    pyelftools finds the sections; the symbol entries (gABI ``Elf32_Sym``/``Elf64_Sym``) are unpacked
    here with `struct`, because its ``iter_symbols`` builds a parsed container per symbol: ten times
    slower on a program importing a few thousand symbols, and the scan reads every program.
    """
    entry = struct.Struct(("<" if elf.little_endian else ">") + ("IBBHQQ" if elf.elfclass == 64 else "IIIBBH"))
    shndx = 3 if elf.elfclass == 64 else 5
    step: int = dynsym["sh_entsize"]
    if step < entry.size:
        raise ValueError(f".dynsym entry size {step}")
    table: bytes = dynsym.data()
    names: bytes = elf.get_section(dynsym["sh_link"]).data()
    out: set[str] = set()
    for off in range(0, len(table) - entry.size + 1, step):
        fields = entry.unpack_from(table, off)
        start = fields[0]
        if fields[shndx] == 0 and start < len(names):  # SHN_UNDEF
            end = names.find(b"\0", start)
            name = names[start : end if end >= 0 else len(names)]
            if name:
                out.add(name.decode("utf-8", "replace").split("@", 1)[0])
    return out


@dataclass(frozen=True)
class Listener:
    path: str
    network: tuple[str, ...]
    runs: tuple[str, ...]

    def summary(self) -> dict[str, object]:
        return {"path": self.path, "network": list(self.network), "runs": list(self.runs)}


def _elf_facts(data: bytes) -> dict[str, object]:
    """What the listener check needs of one ELF file (cached by content): kind and imports, or the error."""
    try:
        info = read_elf(data, "ELF")
    except InputError as exc:
        return {"error": str(exc).removeprefix("ELF: ")}
    return {"executable": info.executable, "static": info.static, "imports": sorted(info.imports)}


def _may_listen(data: bytes) -> bool:
    """An ELF file that names listen and bind (else they are not even in its string table)."""
    return data[:4] == b"\x7fELF" and b"\x00listen\x00" in data and b"\x00bind\x00" in data


def _listening_elf_facts(data: bytes) -> dict[str, object] | None:
    """`_elf_facts` of an ELF file that may listen; ``None`` for any other content (not parsed)."""
    return _elf_facts(data) if _may_listen(data) else None


def _large_elf_facts(ctx: Context, entry: Entry) -> dict[str, object] | None:
    """`_listening_elf_facts` of a file larger than the context reads: its section tables sit at the end."""
    data = ctx.read(entry.path)
    if data is None or not _may_listen(data):
        return None
    if len(data) < entry.size <= MAX_ELF:
        try:
            data = ctx.tree.read(entry.path)
        except InputError as exc:
            ctx.error(entry.path, str(exc))
            return None
    facts: dict[str, object] = ctx.cached("listeners", entry.path, data, partial(_elf_facts, data))
    return facts


def _run(ctx: Context) -> list[Finding]:
    listeners: list[Listener] = []
    static = 0
    for entry in ctx.files():
        if entry.size < 64:
            continue
        if _LIBRARY.search(posixpath.basename(entry.path)):
            continue  # libc.so.6 has an interpreter too (it prints its version), but it is a library
        if entry.size <= MAX_READ:
            facts = ctx.analyse("listeners", entry, _listening_elf_facts)
        else:
            facts = _large_elf_facts(ctx, entry)
        if facts is None:
            continue
        if "error" in facts:
            ctx.error(entry.path, f"{entry.path}: {facts['error']}")
            continue
        if not facts["executable"]:
            continue
        if facts["static"]:
            static += 1
            continue
        imports = frozenset(facts["imports"])
        if imports >= NET and imports & ACCEPT and imports & EXEC:
            net = tuple(sorted(imports & (NET | ACCEPT)))
            listeners.append(Listener(entry.path, net, tuple(sorted(imports & EXEC))))
    ctx.facts["listeners"] = listeners
    ctx.facts["static_binaries"] = [static]
    if ctx.agreement is None or ctx.agreement.services is None:
        return []
    declared = {posixpath.basename(s.program) for s in ctx.agreement.services if s.program}
    findings = []
    for lst in listeners:
        if posixpath.basename(lst.path) in declared:
            continue
        findings.append(
            finding(
                "binary.listener",
                f"{lst.path} can listen ({', '.join(lst.network)}) and run commands ({', '.join(lst.runs)}); "
                "no declared service accounts for it",
                ctx.evidence(lst.path),
                **lst.summary(),
            )
        )
    return findings


LISTENERS = Detector(
    name="listeners",
    rules=("binary.listener",),
    rationale="A program that accepts connections and starts processes is a remote shell waiting for a trigger.",
    references=(
        "https://refspecs.linuxfoundation.org/elf/gabi4+/ch5.dynamic.html",
        "https://github.com/eliben/pyelftools",
    ),
    run=_run,
)
