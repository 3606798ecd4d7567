"""Hard-coded credentials in scripts, configuration files and binaries.

Declared patterns (`PATTERNS`), each with where it applies: credentials piped into ``chpasswd`` or
``passwd``, ``-u user:pass`` given to daemons and clients (``telnetd -u`` is how the Alpha Networks
telnet backdoor is armed), credentials inside URLs, and ``password=`` settings in configuration
files. A value taken from a file with ``$(cat FILE)`` is read from the image. Placeholders
(``$1``, ``%s``, ``<password>``, ``****``) and documentation are not credentials: few false positives
matter more than a long list.
"""

from __future__ import annotations

import bisect
import posixpath
import re
from dataclasses import dataclass
from functools import partial

from nospy.findings import Finding
from nospy.firmware.context import Context, Detector, finding, is_doc, text_lines

__all__ = ["CREDENTIALS", "PATTERNS", "CredentialPattern", "find_credentials"]

_Q = r"""["']?"""


@dataclass(frozen=True)
class CredentialPattern:
    id: str
    regex: re.Pattern[str]
    in_binaries: bool
    rationale: str


PATTERNS: tuple[CredentialPattern, ...] = (
    CredentialPattern(
        "chpasswd-pipe",
        re.compile(
            rf"echo[ \t]+(?:-\w+[ \t]+)?{_Q}([A-Za-z0-9_.-]+):([^\s\"'|]+){_Q}[ \t]*\|[ \t]*(?:/usr/sbin/)?chpasswd"
        ),
        True,
        "sets an account's password to a fixed value at run time",
    ),
    CredentialPattern(
        "passwd-pipe",
        re.compile(
            rf"echo[ \t]+-e[ \t]+{_Q}([^\s\"'\\]+)\\n\1(?:\\n)?{_Q}"
            r"[ \t]*\|[ \t]*(?:/usr/bin/|/bin/)?passwd[ \t]+([A-Za-z0-9_.-]+)"
        ),
        True,
        "sets an account's password to a fixed value at run time",
    ),
    CredentialPattern(
        "user-colon-pass",
        re.compile(
            r"\b(?:telnetd|utelnetd|curl|wget|ftpget|ftpput|sshpass)\b[^\n|;]*?"
            rf"[ \t]-u[ \t]*{_Q}([^:\s\"']+):([^\s\"']+)"
        ),
        True,
        "a fixed user:password given on a command line",
    ),
    CredentialPattern(
        "url-userinfo",
        re.compile(
            r"\b(?:https?|ftps?|rtsp|mqtts?|smb|telnet|tftp)://([A-Za-z0-9_.%-]{1,64}):([^@/\s\"'<>]{1,128})@[A-Za-z0-9.-]+"
        ),
        True,
        "a URL with a user and password in it",
    ),
    CredentialPattern(
        "password-setting",
        re.compile(
            r"""^[ \t]*(?:option[ \t]+|export[ \t]+|set[ \t]+)?"""
            r"""["']?([A-Za-z_]*?(?:password|passwd|passphrase|pwd))["']?"""
            r"""[ \t]*[=: \t][ \t]*["']([^"'\s]{3,128})["'][ \t]*[;,]?[ \t]*$"""
            r"""|^[ \t]*(?:export[ \t]+)?([A-Za-z_]*?(?:password|passwd|pwd))=([^"'\s$`;]{3,128})[ \t]*$""",
            re.I | re.M,
        ),
        False,
        "a password written into a configuration file or script",
    ),
)

_PLACEHOLDER = re.compile(
    r"""^(?:[$%<{@(\[*]|x+$|\*+$|\.+$|-+$|your|my_?pass|<|none$|null$|nil$|empty$|undefined$|true$|false$|yes$|no$|on$|off$)""",
    re.I,
)
_PLACEHOLDER_PAIRS = frozenset(
    {("user", "pass"), ("user", "password"), ("username", "password"), ("login", "password"), ("usr", "pwd")}
)
_CAT = re.compile(r"""^\s*([A-Za-z_]\w*)=["']?(?:`\s*cat\s+([^`\s]+)\s*`|\$\(\s*cat\s+([^)\s]+)\s*\))""")
_SKIP_EXTS = (".js", ".html", ".htm", ".css", ".asp", ".php", ".lua", ".py", ".pl", ".pem", ".crt", ".h", ".c")


@dataclass(frozen=True, slots=True)
class FoundCredential:
    pattern: str
    user: str | None
    secret: str
    line: int | None
    offset: int | None
    resolved_from: str | None = None  # file the secret was read from ($(cat FILE))


def find_credentials(text: str, binary: bool) -> list[FoundCredential]:
    """Credentials in one file's text (for binaries: its printable strings joined by newlines)."""
    out: list[FoundCredential] = []
    line_starts: list[int] | None = None
    for p in PATTERNS:
        if binary and not p.in_binaries:
            continue
        for m in p.regex.finditer(text):
            if line_starts is None:
                line_starts = [0] + [i + 1 for i, ch in enumerate(text) if ch == "\n"]
            n = bisect.bisect_right(line_starts, m.start())
            line = text[line_starts[n - 1] : m.start()].lstrip()
            if not binary and line.startswith(("#", "//", ";")):
                continue  # commented out
            groups = [g for g in m.groups() if g is not None]
            if p.id == "passwd-pipe":
                user, secret = groups[1], groups[0]
            elif p.id == "password-setting":
                user, secret = None, groups[1]
            else:
                user, secret = groups[0], groups[1]
            placeholder = _PLACEHOLDER.match(secret) or (user or "", secret) in _PLACEHOLDER_PAIRS
            if placeholder and not (p.id == "user-colon-pass" and secret.startswith("$")):
                continue
            out.append(FoundCredential(p.id, user, secret, None if binary else n, m.start()))
    return out


def _scannable(path: str, size: int) -> bool:
    if is_doc(path) or size > 16 << 20 or size == 0:
        return False
    return not path.startswith(("/usr/share/", "/usr/include/", "/proc/", "/sys/", "/etc/ssl/", "/usr/lib/ssl/"))


def _in_file(ctx: Context, path: str, data: bytes) -> dict[str, object] | None:
    """The credentials in one file's bytes and its ``$(cat FILE)`` variables (cached by content)."""
    is_elf = data[:4] == b"\x7fELF"
    if is_elf:
        text = "\n".join(piece for _, piece in ctx.strings(path, data))
        if "://" not in text and "-u" not in text and "chpasswd" not in text and "passwd" not in text:
            return None
    else:
        text = data.decode("latin-1")
    found = find_credentials(text, is_elf)
    if not found:
        return None
    return {
        "found": [[c.pattern, c.user, c.secret, c.line, c.offset, c.resolved_from] for c in found],
        "variables": {} if is_elf else _cat_variables(text),
    }


def _in_program_or_text(ctx: Context, path: str, programs_only: bool, data: bytes) -> dict[str, object] | None:
    """`_in_file` for ELF programs and text; other binary data (compressed, images) has none."""
    is_elf = data[:4] == b"\x7fELF"
    if not is_elf and (programs_only or b"\x00" in data[:8192]):
        return None
    return _in_file(ctx, path, data)


def _run(ctx: Context) -> list[Finding]:
    findings: list[Finding] = []
    for entry in ctx.files():
        if not _scannable(entry.path, entry.size):
            continue
        # web pages, sources and certificates: only a program of that name is read for credentials
        programs_only = posixpath.basename(entry.path).lower().endswith(_SKIP_EXTS)
        analyser = "credentials.elf" if programs_only else "credentials"
        result = ctx.analyse(analyser, entry, partial(_in_program_or_text, ctx, entry.path, programs_only))
        if not result:
            continue
        found = [FoundCredential(*c) for c in result["found"]]
        variables: dict[str, str] = result["variables"]
        for c in found:
            secret, source = c.secret, None
            var = re.fullmatch(r"\$\{?([A-Za-z_]\w*)\}?", secret)
            if var:
                source = variables.get(var.group(1))
                if source is None:
                    continue  # a variable we cannot read is not a fixed credential
                value = text_lines(ctx.read(source) or b"") if ctx.exists(source) else []
                secret = value[0].strip() if value else f"(contents of {source})"
            ev = ctx.evidence(entry.path, c.line, None if c.line else c.offset)
            who = f"user {c.user!r} " if c.user else ""
            findings.append(
                finding(
                    "credential.hardcoded",
                    f"{who}password {secret!r} hard-coded ({c.pattern})",
                    ev,
                    pattern=c.pattern,
                    user=c.user,
                    secret=secret,
                    secret_from=source,
                )
            )
    return findings


def _cat_variables(text: str) -> dict[str, str]:
    out = {}
    for line in text.splitlines():
        m = _CAT.match(line)
        if m:
            out[m.group(1)] = m.group(2) or m.group(3)
    return out


CREDENTIALS = Detector(
    name="credentials",
    rules=("credential.hardcoded",),
    rationale="A password fixed in the firmware is the same on every unit: whoever reads one image can log in to all.",
    references=(
        "https://cwe.mitre.org/data/definitions/798.html",
        "http://www.devttys0.com/2015/04/hacking-the-d-link-dir-890l/",
    ),
    run=_run,
)
