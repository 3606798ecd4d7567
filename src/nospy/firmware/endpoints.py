"""Remote hosts and addresses compiled into the image: URLs, host names and IPv4 literals.

Noise removed before anything is reported: documentation files, certificate stores, names reserved
for examples (RFC 2606, RFC 6761: ``example.*``, ``.test``, ``.invalid``, ``.localhost``), addresses
that are not global (private, loopback, link-local, multicast, RFC 5737 documentation ranges),
dotted version strings, and the project and standards hosts that every binary names in its help
text (`NOISE_HOSTS`). IP literals are geolocated with the given `CountryLookup`; host names are not
resolved (no network), so ``data.residency`` rests on addresses only.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from functools import partial

from nospy.agreement.schema import Endpoint as Declared
from nospy.findings import Finding
from nospy.firmware.context import Context, Detector, Evidence, finding, is_doc

__all__ = ["ENDPOINTS", "NOISE_HOSTS", "Endpoint", "find_endpoints"]

_TLDS = (
    "com|net|org|info|biz|io|co|cn|ru|de|uk|jp|kr|tw|hk|us|eu|fr|it|nl|se|no|fi|pl|cz|br|au|ca|ch|at|be|es|pt|"
    "ir|kp|sy|vn|th|my|sg|id|ph|tr|ua|by|kz|il|sa|ae|eg|za|mx|ar|cl|nz|gov|edu|mil|int|cloud|tech|xyz|top|me|tv|cc"
)
_URL = re.compile(
    r"\b(?:https?|ftps?|tftp|mqtts?|wss?|coaps?|rtsp|telnet|ssh|ntp)://(?:[^@/\s\"'<>]{1,128}@)?"
    r"(\[[0-9A-Fa-f:]+\]|[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?)(?::(\d{1,5}))?([/?][^\s\"'<>]*)?"
)
# Links a program prints for people (bug trackers, manuals, licences), not hosts it talks to.
_DOC_HOST = re.compile(r"^(?:bugs?|wiki|lists?|docs?|forums?|man|manpages|help)\.")
_DOC_PATH = re.compile(r"(?i)/(?:doc|docs|wiki|bugs?|issues|licen[cs]es?|manual|faq|man|help|rfc)(?:[/.#?]|$)")
_HOST = re.compile(
    rf"(?<![\w.@/-])((?:[a-z0-9](?:[a-z0-9-]{{0,61}}[a-z0-9])?\.)+(?:{_TLDS}))(?![\w-]|\.[a-z0-9])", re.I
)
_IPV4 = re.compile(
    r"(?<![\w.:/-])((?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(?:\.(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3})(?![\w.-]|:[A-Za-z])"
)
# Bare names (no scheme) are only taken with three or more labels under these TLDs: two-label names in
# programs and configs are mostly project mentions ("yaml.org") and identifiers ("log.info").
_BARE_TLDS = frozenset({"com", "net", "org", "cn", "ru", "de", "uk", "jp", "kr", "tw", "hk", "eu", "fr", "it", "nl",
                        "io", "us", "gov", "edu", "mil", "int"})  # fmt: skip
# Addresses printed as examples in help texts and sources.
_EXAMPLE_IPS = frozenset({"1.2.3.4", "4.3.2.1", "123.45.67.89", "12.34.56.78", "11.22.33.44", "111.111.111.111"})
_VERSIONISH = re.compile(r"(?i)\b(?:version|ver|v|release|rev|build|vermagic)[\s:=]*$")

# Hosts that programs name in help, licence and bug-report texts, and XML namespace authorities.
NOISE_HOSTS = frozenset({
    "www.w3.org", "w3.org", "schemas.xmlsoap.org", "schemas.microsoft.com", "purl.org", "xmlns.com", "ns.adobe.com",
    "www.gnu.org", "gnu.org", "www.fsf.org", "fsf.org", "busybox.net", "www.busybox.net", "bugs.busybox.net",
    "www.openssl.org", "openssl.org", "www.kernel.org", "kernel.org", "www.ietf.org", "tools.ietf.org", "ietf.org",
    "www.rfc-editor.org", "www.apache.org", "apache.org", "www.debian.org", "bugs.debian.org", "debian.org",
    "matt.ucc.asn.au", "www.openssh.com", "openssh.com", "www.openwrt.org", "dev.openwrt.org", "bugs.openwrt.org",
    "www.iana.org", "iana.org", "upnp.org", "schemas.upnp.org", "www.upnp.org", "sourceware.org", "www.sqlite.org",
    "curl.se", "curl.haxx.se", "www.zlib.net", "zlib.net", "www.mozilla.org", "www.openldap.org", "www.ntp.org",
    "wiki.openwrt.org", "www.linux.org", "github.com", "gitlab.com", "sourceforge.net", "www.python.org",
})  # fmt: skip
_RESERVED_SUFFIXES = (".example", ".test", ".invalid", ".localhost", ".local", ".lan", ".home.arpa", ".internal")
_RESERVED_NAMES = frozenset({"example.com", "example.net", "example.org", "localhost"})


@dataclass(frozen=True)
class Endpoint:
    host: str  # lower-case host name or IP literal
    kind: str  # "url", "host" or "ip"
    port: int | None
    where: tuple[Evidence, ...] = field(default_factory=tuple)
    country: str | None = None

    def summary(self) -> dict[str, object]:
        return {
            "host": self.host,
            "kind": self.kind,
            "port": self.port,
            "country": self.country,
            "seen_in": [
                f"{e.path}:{e.line}" if e.line else (f"{e.path}@{e.offset}" if e.offset else e.path) for e in self.where
            ],
        }


# Labels of placeholder names in sample configurations ("my.domain.com", "manufacturer.url.here").
_PLACEHOLDER_LABELS = frozenset({"mydomain", "yourdomain", "domain", "here", "myhost", "yourhost", "myserver",
                                 "yourserver", "example", "sample", "foo", "bar"})  # fmt: skip


def _noise_host(host: str) -> bool:
    host = host.lower().rstrip(".")
    if _PLACEHOLDER_LABELS & set(host.split(".")):
        return True
    if host in NOISE_HOSTS or host in _RESERVED_NAMES or host.endswith(_RESERVED_SUFFIXES):
        return True
    return any(host.endswith("." + n) for n in ("example.com", "example.net", "example.org"))


def _global_ip(text: str) -> bool:
    try:
        ip = ipaddress.ip_address(text)
    except ValueError:
        return False
    return ip.is_global and not ip.is_multicast


def find_endpoints(text: str) -> list[tuple[str, str, int | None, int]]:
    """(host, kind, port, offset) of every endpoint-looking string in ``text``."""
    out: list[tuple[str, str, int | None, int]] = []
    taken: list[tuple[int, int]] = []
    for m in _URL.finditer(text):
        host = m.group(1).strip("[]").lower()
        if re.search(r"xmlns(?::\w+)?=['\"]?$", text[max(0, m.start() - 16) : m.start()]):
            taken.append(m.span())
            continue  # an XML namespace name, never fetched
        port = int(m.group(2)) if m.group(2) and 0 < int(m.group(2)) < 65536 else None
        taken.append(m.span())
        if _IPV4.fullmatch(host) or ":" in host:
            if _global_ip(host):
                out.append((host, "ip", port, m.start()))
        elif "." in host and not _noise_host(host) and not host.replace(".", "").isdigit():
            if _DOC_HOST.match(host) or _DOC_PATH.search(m.group(3) or ""):
                continue
            out.append((host, "url", port, m.start()))
    for m in _IPV4.finditer(text):
        if any(a <= m.start() < b for a, b in taken):
            continue
        before = text[max(0, m.start() - 12) : m.start()]
        ip = m.group(1)
        octets = ip.split(".")
        versionish = all(len(o) == 1 for o in octets) and len(set(octets)) > 1  # 1.4.0.7; 8.8.8.8 stays
        if _VERSIONISH.search(before) or versionish or ip in _EXAMPLE_IPS or not _global_ip(ip):
            continue
        out.append((m.group(1), "ip", None, m.start()))
    for m in _HOST.finditer(text):
        if any(a <= m.start() < b for a, b in taken):
            continue
        host = m.group(1).lower()
        labels = host.split(".")
        if _noise_host(host) or len(labels) < 3 or labels[-1] not in _BARE_TLDS or text[m.end() : m.end() + 1] == "(":
            continue
        if any(ch.isupper() for ch in m.group(1)[:-4]) and not m.group(1).isupper():
            continue  # CamelCase.Words are identifiers, not host names
        out.append((host, "host", None, m.start()))
    return out


# Whole-line comments (shell, INI, C++, XML) and systemd's Documentation= links, blanked to keep line numbers.
_COMMENT_LINE = re.compile(r"(?m)^[ \t]*(?:#|;|//|/\*|\*|<!--|Documentation=)[^\n]*")


def _scannable(path: str, size: int) -> bool:
    if is_doc(path) or size == 0 or size > 32 << 20:
        return False
    return not path.startswith(
        ("/etc/ssl/", "/usr/share/ca-certificates/", "/usr/lib/ssl/", "/usr/share/", "/usr/include/", "/proc/", "/sys/")
    ) and not path.endswith((".pem", ".crt", ".cer", ".der"))


def _allowed(ep: Endpoint, declared: list[Declared]) -> bool:
    for d in declared:
        if d.port is not None and ep.port is not None and d.port != ep.port:
            continue
        if d.host is not None:
            if d.host.startswith("*.") and ep.host.endswith(d.host[1:]):
                return True
            if ep.host == d.host:
                return True
        if d.cidr is not None and ep.kind == "ip" and ipaddress.ip_address(ep.host) in ipaddress.ip_network(d.cidr):
            return True
    return False


def _in_file(ctx: Context, path: str, data: bytes) -> list[tuple[str, str, int | None, int | None, int | None]]:
    """(host, kind, port, line, offset) of the endpoints in one file's bytes (cached by content)."""
    out: list[tuple[str, str, int | None, int | None, int | None]] = []
    if data[:4] == b"\x7fELF" or b"\x00" in data[:4096]:
        for base, piece in ctx.strings(path, data):
            if "." not in piece:
                continue  # every URL, host name and address has a dot: most strings are skipped here
            out.extend((host, kind, port, None, base + off) for host, kind, port, off in find_endpoints(piece))
    else:
        text = _COMMENT_LINE.sub("", data.decode("latin-1"))  # commented-out settings configure nothing
        out.extend(
            (host, kind, port, text.count("\n", 0, off) + 1, None) for host, kind, port, off in find_endpoints(text)
        )
    return out


def _run(ctx: Context) -> list[Finding]:
    seen: dict[tuple[str, int | None], list[Evidence]] = {}
    kinds: dict[tuple[str, int | None], str] = {}
    for entry in ctx.files():
        if not _scannable(entry.path, entry.size):
            continue
        for host, kind, port, line, offset in ctx.analyse("endpoints", entry, partial(_in_file, ctx, entry.path)) or []:
            key = (host, port)
            seen.setdefault(key, []).append(ctx.evidence(entry.path, line, offset))
            kinds.setdefault(key, kind)
    endpoints = []
    for (host, port), where in sorted(seen.items(), key=lambda kv: (kv[0][0], kv[0][1] or 0)):
        country = None
        if kinds[(host, port)] == "ip" and ctx.geo is not None:
            country = ctx.geo.country(ipaddress.ip_address(host))
        endpoints.append(Endpoint(host, kinds[(host, port)], port, tuple(where[:5]), country))
    ctx.facts["endpoints"] = endpoints
    findings = []
    agreement = ctx.agreement
    for ep in endpoints:
        name = f"{ep.host}:{ep.port}" if ep.port else ep.host
        more = f" (and {len(seen[(ep.host, ep.port)]) - 1} more places)" if len(seen[(ep.host, ep.port)]) > 1 else ""
        findings.append(finding("inventory.endpoint", f"{name}{more}", ep.where[0], **ep.summary()))
        if agreement is not None and agreement.endpoints is not None and not _allowed(ep, agreement.endpoints):
            findings.append(
                finding(
                    "endpoint.undeclared",
                    f"{name} is compiled into the image and not declared{more}",
                    ep.where[0],
                    **ep.summary(),
                )
            )
        countries = agreement.data.countries if agreement is not None and agreement.data is not None else None
        if countries is not None and ctx.geo is not None and ep.country is not None and ep.country not in countries:
            findings.append(
                finding(
                    "data.residency",
                    f"{name} is in {ep.country}, outside {', '.join(countries)}",
                    ep.where[0],
                    geolocation=ctx.geo.name,
                    **ep.summary(),
                )
            )
    return findings


ENDPOINTS = Detector(
    name="endpoints",
    rules=("endpoint.undeclared", "data.residency", "inventory.endpoint"),
    rationale="Hosts compiled into firmware are where the device phones home; they must be the declared ones.",
    references=(
        "https://www.rfc-editor.org/rfc/rfc5737",
        "https://www.rfc-editor.org/rfc/rfc6761",
        "https://www.rfc-editor.org/rfc/rfc1918",
    ),
    run=_run,
)
