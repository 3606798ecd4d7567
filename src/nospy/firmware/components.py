"""Software components in the image (product and version) and their CycloneDX 1.6 SBOM.

Each component is declared by where its version shows (`SIGNATURES`): a banner compiled into the
binary (``BusyBox v1.35.0``, ``OpenSSH_9.2p1``, ``OpenSSL 3.0.17``), a file name
(``libuClibc-0.9.33.2.so``) or a folder (``/lib/modules/<kernel>``). Evidence is the file and
offset; the SBOM records it as CycloneDX ``evidence.occurrences``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache, partial

import yara_x
from cyclonedx.model.bom import Bom
from cyclonedx.model.component import Component as CdxComponent
from cyclonedx.model.component import ComponentType
from cyclonedx.model.component_evidence import ComponentEvidence, Occurrence
from cyclonedx.output.json import JsonV1Dot6
from packageurl import PackageURL

from nospy import __version__
from nospy.findings import Finding
from nospy.firmware.context import Context, Detector

__all__ = ["COMPONENTS", "SIGNATURES", "Component", "Signature", "cyclonedx_json"]


@dataclass(frozen=True)
class Signature:
    name: str
    kind: str  # CycloneDX component type: application, library, operating-system
    content: re.Pattern[bytes] | None = None  # version banner inside the file
    filename: re.Pattern[str] | None = None  # version in the path

    @property
    def anchor(self) -> bytes:
        """The literal start of the banner pattern (up to its first special character)."""
        if self.content is None:
            return b""
        return re.split(rb"[\\(\[.?*+{|^$]", self.content.pattern, maxsplit=1)[0]


def _b(pattern: str) -> re.Pattern[bytes]:
    return re.compile(pattern.encode())


SIGNATURES: tuple[Signature, ...] = (
    Signature("busybox", "application", _b(r"BusyBox v(\d+\.\d+(?:\.\d+)?)")),
    Signature("dropbear", "application", _b(r"dropbear_(\d{4}\.\d+)")),
    Signature("dropbear", "application", _b(r"Dropbear (?:sshd|client|multi-purpose)[^\n\x00]{0,20}v(\d{4}\.\d+)")),
    Signature("openssh", "application", _b(r"OpenSSH_(\d+\.\d+(?:p\d+)?)(?![\d.*,])")),
    Signature("openssl", "library", _b(r"OpenSSL (\d+\.\d+\.\d+[a-z]?) ")),
    Signature("glibc", "library", _b(r"GNU C Library [^\n\x00]{0,80}?version (\d+\.\d+(?:\.\d+)?)")),
    Signature("uclibc", "library", filename=re.compile(r"/libuClibc-(\d+\.\d+\.\d+(?:\.\d+)?)\.so$")),
    Signature("musl", "library", _b(r"musl libc (\d+\.\d+\.\d+)")),
    Signature("linux", "operating-system", _b(r"Linux version (\d+\.\d+\.\d+)[^\s]* \(")),
    Signature("linux", "operating-system", filename=re.compile(r"^/lib/modules/(\d+\.\d+\.\d+)[^/]*/")),
    Signature("linux", "operating-system", _b(r"vermagic=(\d+\.\d+\.\d+(?:\.\d+)?)")),  # every kernel module names it
    Signature("lighttpd", "application", _b(r"lighttpd/(\d+\.\d+\.\d+)")),
    Signature("nginx", "application", _b(r"nginx/(\d+\.\d+\.\d+)")),
    Signature("boa", "application", _b(r"Boa/(\d+\.\d+\.\d+)")),
    Signature("mini_httpd", "application", _b(r"mini_httpd/(\d+\.\d+)")),
    Signature("thttpd", "application", _b(r"thttpd/(\d+\.\d+\w*)")),
    Signature("goahead", "application", _b(r"GoAhead-(?:Webs|http)/?(\d+\.\d+(?:\.\d+)?)")),
    Signature("dnsmasq", "application", _b(r"dnsmasq-(\d+\.\d+)")),
    Signature("hostapd", "application", _b(r"hostapd v(\d+\.\d+(?:\.\d+)?)")),
    Signature("wpa_supplicant", "application", _b(r"wpa_supplicant v(\d+\.\d+(?:\.\d+)?)")),
    Signature("miniupnpd", "application", _b(r"miniupnpd/(\d+\.\d+)")),
    Signature("curl", "library", _b(r"libcurl/(\d+\.\d+\.\d+)")),
    Signature("zlib", "library", _b(r"flate (\d+\.\d+\.\d+(?:\.\d+)?) Copyright")),
    Signature("openvpn", "application", _b(r"OpenVPN (\d+\.\d+\.\d+)")),
)


@dataclass(frozen=True)
class Component:
    name: str
    version: str
    kind: str
    path: str
    offset: int | None

    def summary(self) -> dict[str, object]:
        return {"name": self.name, "version": self.version, "type": self.kind, "path": self.path, "offset": self.offset}


@cache
def _anchors() -> tuple[yara_x.Rules, dict[str, Signature]]:
    """One YARA-X rule per banner anchor: every file is searched for all anchors in one pass."""
    by_rule = {f"s{i}": s for i, s in enumerate(SIGNATURES) if s.content is not None}
    source = "\n".join(
        f"rule {rid} {{ strings: $a = {{ {s.anchor.hex(' ')} }} condition: $a }}" for rid, s in by_rule.items()
    )
    return yara_x.compile(source), by_rule


def _banners(
    scanner: yara_x.Scanner, by_rule: dict[str, Signature], elf_only: bool, data: bytes
) -> list[tuple[str, str, int]]:
    """(signature rule, version, offset) of the version banners in one file's bytes (cached by content).

    With ``elf_only`` a file that is not an ELF program has none (outside /boot, banners are looked
    for in programs only).
    """
    if elf_only and data[:4] != b"\x7fELF":
        return []
    out = []
    for rule in scanner.scan(data).matching_rules:
        s = by_rule[rule.identifier]
        assert s.content is not None  # noqa: S101 - only banner signatures have rules
        # the anchor may also occur without a version after it: the first place the banner matches counts
        offsets = sorted(x.offset for p in rule.patterns for x in p.matches)
        hit = next((h for off in offsets if (h := s.content.match(data, off))), None)
        if hit:
            out.append((rule.identifier, hit.group(1).decode("ascii"), hit.start()))
    return out


def _run(ctx: Context) -> list[Finding]:
    found: dict[tuple[str, str, str], Component] = {}
    by_name = [s for s in SIGNATURES if s.filename is not None]
    for entry in ctx.tree.entries():
        for s in by_name:
            assert s.filename is not None  # noqa: S101 - filtered above
            m = s.filename.search(entry.path)
            if m:
                found.setdefault((s.name, m.group(1), ""), Component(s.name, m.group(1), s.kind, entry.path, None))
    rules, by_rule = _anchors()
    scanner = yara_x.Scanner(rules)
    for entry in ctx.files():
        if entry.size < 64:
            continue
        boot = entry.path.startswith("/boot/")
        analyser = "components.boot" if boot else "components"
        banners = ctx.analyse(analyser, entry, partial(_banners, scanner, by_rule, not boot))
        for rule_id, version, offset in banners or []:
            s = by_rule[rule_id]
            found.setdefault((s.name, version, entry.path), Component(s.name, version, s.kind, entry.path, offset))
    unique: dict[tuple[str, str], Component] = {}
    for c in found.values():
        unique.setdefault((c.name, c.version), c)
    ctx.facts["components"] = sorted(unique.values(), key=lambda c: (c.name, c.version))
    return []


_TYPES = {
    "application": ComponentType.APPLICATION,
    "library": ComponentType.LIBRARY,
    "operating-system": ComponentType.OPERATING_SYSTEM,
}


def cyclonedx_json(components: list[dict[str, object]], image: str) -> str:
    """A CycloneDX 1.6 JSON SBOM of the components found in ``image``."""
    bom = Bom()
    root = CdxComponent(name=image, type=ComponentType.FIRMWARE, bom_ref=f"image:{image}")
    bom.metadata.component = root
    bom.metadata.tools.components.add(CdxComponent(name="nospy", version=__version__, type=ComponentType.APPLICATION))
    for c in components:
        name, version = str(c["name"]), str(c["version"])
        offset = c.get("offset")
        bom.components.add(
            CdxComponent(
                name=name,
                version=version,
                type=_TYPES.get(str(c["type"]), ComponentType.LIBRARY),
                purl=PackageURL("generic", name=name, version=version),
                bom_ref=f"{name}@{version}",
                evidence=ComponentEvidence(
                    occurrences=[
                        Occurrence(location=str(c["path"]), offset=offset if isinstance(offset, int) else None)
                    ]
                ),
            )
        )
    bom.register_dependency(root, list(bom.components))  # the image contains every component
    return JsonV1Dot6(bom).output_as_string(indent=2) + "\n"


COMPONENTS = Detector(
    name="components",
    rules=(),
    rationale="Knowing which versions of which parts ship is the base of every vulnerability and licence check.",
    references=("https://cyclonedx.org/docs/1.6/json/",),
    run=_run,
)
