"""Accounts: who can log in, and with what password (passwd(5), shadow(5), group(5), htpasswd).

Sources read, in order:
- ``/etc/passwd``, ``/etc/shadow`` and ``/etc/group`` (symlinks followed inside the image);
- when they are missing or point into a run-time folder (``/var``, ``/tmp``: written at boot),
  default copies (``/etc/passwd.default``, ``/etc_ro/passwd`` ...) and passwd lines written by
  init scripts (``echo "root:...:0:0:..." > /var/passwd``);
- web and daemon password files: ``htpasswd`` files, BusyBox httpd.conf ``/path:user:pass`` lines,
  lighttpd ``*.user`` files;
- device accounts in default configuration databases (Alpha Networks' ``/etc/defnodes/*.xml``:
  ``<account><entry><name>admin</name><password></password>``), which the web UI and login use
  until someone changes them.

An account is login-capable when its shell is not a nologin shell and it has a usable password
(empty, a hash, plain text) or an ``authorized_keys`` file in its home.
"""

from __future__ import annotations

import posixpath
import re
from dataclasses import dataclass, field, replace
from functools import partial

from nospy.errors import InputError
from nospy.findings import Finding
from nospy.firmware.cache import digest
from nospy.firmware.context import Context, Detector, Evidence, finding, is_doc, text_lines
from nospy.firmware.crack import (
    Cracked,
    CredentialEntry,
    DefaultCredentials,
    HashKind,
    crack,
    default_credentials,
    hash_kind,
)

__all__ = ["DETECTOR", "Account", "parse_htpasswd", "parse_passwd", "parse_shadow"]

NOLOGIN_SHELLS = frozenset({"nologin", "false", "true", "sync", "shutdown", "halt", "null"})
_RUNTIME = ("/var/", "/tmp/", "/run/", "/mnt/", "/dev/")  # noqa: S108 - device paths, never opened here
_DEFAULT_COPIES = (
    "/etc/passwd.default",
    "/etc/default/passwd",
    "/etc_ro/passwd",
    "/etc/defaults/passwd",
    "/usr/etc/passwd",
    "/etc/config/passwd",
)
_SCRIPT_PASSWD = re.compile(
    r"""(?:echo|printf)\s+(?:-[ne]+\s+)?["']?([A-Za-z0-9_.-]+):([^:"'\s]*):(\d+):(\d+):([^:"']*):([^:"']*):([^:"'\s\\]*)"""
)


@dataclass(frozen=True, slots=True)
class PasswdLine:
    name: str
    password: str
    uid: int
    gid: int
    home: str
    shell: str
    line: int


def parse_passwd(text: str) -> list[PasswdLine]:
    """passwd(5) lines; malformed lines are skipped (a device's login(1) skips them too)."""
    out = []
    for n, raw in enumerate(text.splitlines(), 1):
        if not raw or raw.startswith("#"):
            continue
        parts = raw.split(":")
        if len(parts) != 7 or not parts[0] or not parts[2].isdigit() or not parts[3].isdigit():
            continue
        out.append(PasswdLine(parts[0], parts[1], int(parts[2]), int(parts[3]), parts[5], parts[6], n))
    return out


def parse_shadow(text: str) -> dict[str, tuple[str, int]]:
    """shadow(5): name -> (password field, line)."""
    out: dict[str, tuple[str, int]] = {}
    for n, raw in enumerate(text.splitlines(), 1):
        parts = raw.split(":")
        if len(parts) >= 2 and parts[0] and not raw.startswith("#"):
            out.setdefault(parts[0], (parts[1], n))
    return out


def parse_htpasswd(text: str) -> list[tuple[str, str, int]]:
    """``user:password-or-hash`` lines: (user, field, line)."""
    out = []
    for n, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#") or ":" not in line:
            continue
        user, _, secret = line.partition(":")
        if user and re.fullmatch(r"[A-Za-z0-9_.@-]{1,64}", user):
            out.append((user, secret.split(":", 1)[0], n))
    return out


@dataclass(frozen=True)
class Account:
    name: str
    service: str  # "system" (login, ssh, telnet, console) or "web"
    uid: int | None
    shell: str | None
    password: str  # the stored field
    kind: str  # a HashKind value, "empty", "locked" or "plain"
    where: Evidence  # the line naming the account
    secret_where: Evidence  # the line holding its password
    authorized_keys: str | None = None
    groups: tuple[str, ...] = field(default_factory=tuple)

    @property
    def shell_ok(self) -> bool:
        if self.service in ("web", "device"):
            return True
        shell = self.shell or "/bin/sh"  # an empty shell field means /bin/sh
        return posixpath.basename(shell) not in NOLOGIN_SHELLS

    @property
    def login_capable(self) -> bool:
        usable = self.kind not in ("locked",)
        return self.shell_ok and (usable or self.authorized_keys is not None)

    def summary(self) -> dict[str, object]:
        return {
            "name": self.name,
            "service": self.service,
            "uid": self.uid,
            "shell": self.shell,
            "password": self.kind,
            "authorized_keys": self.authorized_keys,
            "groups": list(self.groups),
            "path": self.where.path,
            "line": self.where.line,
        }


def _kind(field_: str, plain_allowed: bool) -> str:
    if field_ == "":
        return "empty"
    kind = hash_kind(field_)
    if kind is not None:
        return kind.value
    if plain_allowed:
        return "plain"
    return "locked"  # "x" without shadow, "*", "!...", "!!", "*LK*" and anything login(1) cannot match


def _passwd_sources(ctx: Context) -> list[tuple[str, str]]:
    """(passwd path, shadow path) pairs to read: the live files, or what fills them at boot."""
    pairs = []
    live = ctx.tree.resolve("/etc/passwd")
    if live is not None and ctx.exists("/etc/passwd") and not live.startswith(_RUNTIME):
        pairs.append(("/etc/passwd", "/etc/shadow"))
    else:
        for path in _DEFAULT_COPIES:
            if ctx.exists(path):
                pairs.append((path, posixpath.join(posixpath.dirname(path), "shadow")))
    return pairs


def _from_passwd(ctx: Context, path: str, shadow_path: str) -> list[Account]:
    data = ctx.read(path)
    if data is None:
        return []
    shadow_data = ctx.read(shadow_path) if ctx.exists(shadow_path) else None
    shadow = parse_shadow(shadow_data.decode("latin-1")) if shadow_data is not None else {}
    out = []
    for p in parse_passwd(data.decode("latin-1")):
        where = ctx.evidence(path, p.line)
        secret, secret_where = p.password, where
        if p.password == "x" and p.name in shadow:  # noqa: S105 - "x": the hash is in shadow(5)
            secret, line = shadow[p.name]
            secret_where = ctx.evidence(shadow_path, line)
        out.append(Account(p.name, "system", p.uid, p.shell, secret, _kind(secret, False), where, secret_where))
    return out


def _script_passwd_lines(any_text: bool, data: bytes) -> list[tuple[int, str, str, int, str]]:
    """(line, name, secret, uid, shell) of the passwd lines a script writes (cached by content).

    A file counts as a script when it starts with ``#!``, or whatever it starts with if ``any_text``
    (the boot scripts under /etc/init* and /etc/rc*).
    """
    if b":" not in data or (data[:2] != b"#!" and not any_text):
        return []
    out = []
    for n, line in enumerate(text_lines(data), 1):
        if line.lstrip().startswith("#"):
            continue
        for m in _SCRIPT_PASSWD.finditer(line):
            name, secret, uid, _gid, _gecos, _home, shell = m.groups()
            out.append((n, name, secret, int(uid), shell))
    return out


def _from_scripts(ctx: Context) -> list[Account]:
    """passwd lines that boot scripts write (the image's passwd lives in /var and is made at boot)."""
    out = []
    for entry in ctx.files():
        if not entry.path.startswith(("/etc/", "/sbin/", "/usr/sbin/")) or entry.size >= 1 << 20:
            continue
        boot = entry.path.startswith(("/etc/init", "/etc/rc"))
        lines = ctx.analyse("scripts.rc" if boot else "scripts", entry, partial(_script_passwd_lines, boot))
        for n, name, secret, uid, shell in lines or []:
            ev = ctx.evidence(entry.path, n)
            out.append(Account(name, "system", uid, shell, secret, _kind(secret, False), ev, ev))
    return out


def _from_web(ctx: Context) -> list[Account]:
    out = []
    for entry, data in ctx.texts(_is_web_password_file):
        base = posixpath.basename(entry.path)
        text = data.decode("latin-1")
        if base == "httpd.conf":
            rows = [(m.group(2), m.group(3), text.count("\n", 0, m.start()) + 1) for m in _BB_HTTPD.finditer(text)]
        else:
            rows = parse_htpasswd(text)
        for user, secret, n in rows:
            ev = ctx.evidence(entry.path, n)
            out.append(Account(user, "web", None, None, secret, _kind(secret, True), ev, ev))
    return out


# BusyBox httpd.conf basic-auth lines: /path:user:password (plain, or "$1$..." md5crypt)
_BB_HTTPD = re.compile(r"^(/[^:\s]*):([^:\s]+):(\S*)$", re.M)


def _is_web_password_file(entry: object) -> bool:
    path = getattr(entry, "path", "")
    base = posixpath.basename(path)
    if is_doc(path) or getattr(entry, "size", 0) > 1 << 20:
        return False
    return (
        "htpasswd" in base
        or base == ".passwd"
        or (base.endswith(".user") and "lighttpd" in path)
        or (base == "httpd.conf" and path.startswith("/etc"))
    )


def _with_keys_and_groups(ctx: Context, accounts: list[Account]) -> list[Account]:
    members: dict[str, list[str]] = {}
    gids: dict[int, str] = {}
    if ctx.exists("/etc/group"):
        data = ctx.read("/etc/group")
        for raw in text_lines(data or b""):
            parts = raw.split(":")
            if len(parts) == 4 and parts[2].isdigit():
                gids[int(parts[2])] = parts[0]
                for user in filter(None, parts[3].split(",")):
                    members.setdefault(user, []).append(parts[0])
    homes: dict[str, str] = {}
    for path, _ in _passwd_sources(ctx):
        for p in parse_passwd((ctx.read(path) or b"").decode("latin-1")):
            homes[p.name] = p.home
    out = []
    for a in accounts:
        keys = None
        home = homes.get(a.name)
        if a.service == "system" and home:
            for name in ("authorized_keys", "authorized_keys2"):
                candidate = posixpath.join(home, ".ssh", name)
                if ctx.exists(candidate):
                    keys = candidate
        out.append(replace(a, authorized_keys=keys, groups=tuple(members.get(a.name, []))))
    return out


_XML_ACCOUNT = re.compile(rb"<account>(.*?)</account>", re.S)
_XML_ENTRY = re.compile(rb"<entry>(.*?)</entry>", re.S)
_XML_NAME = re.compile(rb"<(?:name|username|user)>([^<]{1,64})</(?:name|username|user)>")
_XML_PASSWORD = re.compile(rb"<(?:password|passwd)>([^<]{0,128})</(?:password|passwd)>")


def _from_default_config(ctx: Context) -> list[Account]:
    out = []
    for entry, data in ctx.texts(
        lambda e: e.path.startswith("/etc/") and e.path.endswith(".xml") and e.size < 4 << 20 and not is_doc(e.path)
    ):
        for block in _XML_ACCOUNT.finditer(data):
            for item in _XML_ENTRY.finditer(data, block.start(1), block.end(1)):
                name = _XML_NAME.search(item.group(1))
                password = _XML_PASSWORD.search(item.group(1))
                if name is None or password is None:
                    continue
                secret = password.group(1).decode("latin-1")
                ev = ctx.evidence(entry.path, data.count(b"\n", 0, item.start() + password.start()) + 1)
                kind = _kind(secret, True)
                out.append(Account(name.group(1).decode("latin-1"), "device", None, None, secret, kind, ev, ev))
    return out


def extract(ctx: Context) -> list[Account]:
    accounts: list[Account] = []
    for passwd, shadow in _passwd_sources(ctx):
        accounts.extend(_from_passwd(ctx, passwd, shadow))
    accounts.extend(_from_scripts(ctx))
    accounts.extend(_from_web(ctx))
    accounts.extend(_from_default_config(ctx))
    return _with_keys_and_groups(ctx, accounts)


def _crack(ctx: Context, kind: HashKind, stored: str, user: str, creds: DefaultCredentials) -> Cracked | None:
    """`crack`, cached by the hash, the user (whose defaults are tried first) and the list's version."""

    def compute() -> dict[str, object] | None:
        hit = crack(kind, stored, user, creds)
        if hit is None:
            return None
        return {"password": hit.password, "entry": hit.entry.model_dump(), "tried": hit.tried, "limit": hit.limited_to}

    cached = ctx.memo.get(digest(kind.value, stored, user, creds.version), "crack", compute)
    if cached is None:
        return None
    return Cracked(cached["password"], CredentialEntry(**cached["entry"]), cached["tried"], cached["limit"])


def _run(ctx: Context) -> list[Finding]:
    accounts = extract(ctx)
    ctx.facts["accounts"] = accounts
    findings: list[Finding] = []
    declared = None
    if ctx.agreement is not None and ctx.agreement.accounts is not None:
        declared = {a.name for a in ctx.agreement.accounts}
    try:
        creds = default_credentials()
    except InputError as exc:
        ctx.error(None, str(exc))
        creds = None
    cracked_cache: dict[tuple[str, str], Cracked | None] = {}
    for a in accounts:
        if not a.login_capable:
            continue
        what = f"{a.service} account {a.name!r}" + (
            f" (uid {a.uid}, shell {a.shell or '/bin/sh'})" if a.uid is not None else ""
        )
        findings.append(finding("inventory.account", f"login-capable {what}", a.where, **a.summary()))
        if declared is not None and a.name not in declared:
            findings.append(
                finding("account.undeclared", f"{what} can log in and is not declared", a.where, **a.summary())
            )
        if a.kind == "empty":
            findings.append(
                finding(
                    "account.empty-password", f"{what} logs in with an empty password", a.secret_where, account=a.name
                )
            )
            continue
        kind = HashKind(a.kind) if a.kind in set(HashKind) else None
        if kind is None or creds is None:
            continue
        key = (a.password, a.name)
        if key not in cracked_cache:
            cracked_cache[key] = _crack(ctx, kind, a.password, a.name, creds)
        hit = cracked_cache[key]
        if hit is not None:
            findings.append(
                finding(
                    "account.default-password",
                    f"{what} has the default password {hit.password!r} ({kind.value})",
                    a.secret_where,
                    account=a.name,
                    hash=kind.value,
                    password=hit.password,
                    matched={"source": hit.entry.source, "product": hit.entry.product, "user": hit.entry.user},
                    list_version=creds.version,
                    candidates_tried=hit.tried,
                )
            )
    return findings


DETECTOR = Detector(
    name="accounts",
    rules=("account.empty-password", "account.default-password", "account.undeclared", "inventory.account"),
    rationale="Accounts with empty or well-known passwords are the commonest backdoor in network equipment.",
    references=(
        "https://man7.org/linux/man-pages/man5/passwd.5.html",
        "https://man7.org/linux/man-pages/man5/shadow.5.html",
        "https://httpd.apache.org/docs/2.4/misc/password_encryptions.html",
    ),
    run=_run,
)
