"""What runs at boot: every command started by init, with the line that starts it.

Sources, each with its own small parser (all fuzzed):
- BusyBox/SysV ``/etc/inittab`` (``id:runlevels:action:process``; BusyBox's built-in default when
  ``/sbin/init`` is BusyBox and there is no inittab, as in its ``init/init.c``);
- shell scripts reached from inittab, plus the usual places (``/etc/init.d``, ``/etc/init0.d``,
  ``/etc/rc.d``, ``/etc/rc?.d/S*``, ``rc.local``); on OpenWrt only scripts enabled by an
  ``/etc/rc.d/S*`` link; ``procd_set_param command`` lines of procd scripts;
- inetd.conf and xinetd.d, systemd units enabled through ``*.wants`` links, crontabs.

Scripts are read line by line, the way a reader would: comments and here-documents dropped, simple
variables (``PORT=2323``, ``x=`cat /etc/file```) expanded, commands split at ``; && || | &``,
redirections removed, wrappers (``start-stop-daemon -x``, ``nohup``, ``sh -c``, ``busybox APPLET``)
unwrapped. Nothing is executed. ``echo``/``printf`` text is data, not a command.
"""

from __future__ import annotations

import fnmatch
import posixpath
import re
import shlex
from dataclasses import dataclass
from enum import StrEnum

from nospy.firmware.context import Context, Evidence, text_lines
from nospy.firmware.tree import EntryType

__all__ = [
    "Command",
    "Origin",
    "boot_commands",
    "parse_crontab",
    "parse_inetd",
    "parse_inittab",
    "parse_script",
    "parse_systemd_unit",
    "parse_xinetd",
]

SHELLS = frozenset({"sh", "ash", "bash", "hush", "msh", "dash", "zsh", "ksh", "mksh", "csh", "tcsh"})
PATH_DIRS = ("/bin", "/sbin", "/usr/bin", "/usr/sbin", "/usr/local/bin", "/usr/local/sbin")
MAX_DEPTH = 8  # scripts calling scripts; deeper chains are cut (and loops are cut by `seen`)


class Origin(StrEnum):
    INITTAB = "inittab"
    SCRIPT = "init-script"
    PROCD = "procd"
    INETD = "inetd"
    XINETD = "xinetd"
    SYSTEMD = "systemd"
    CRON = "cron"


@dataclass(frozen=True, slots=True)
class Command:
    argv: tuple[str, ...]
    origin: Origin
    where: Evidence
    tty: str | None = None  # inittab: the terminal the process runs on ("" = the console)
    action: str | None = None  # inittab action (respawn, askfirst ...)
    port: int | None = None  # inetd/xinetd/systemd socket: the port the super-server listens on
    protocol: str | None = None


# ---- parsers of one file's text (pure: no tree access; fuzz targets) ------------------------------


@dataclass(frozen=True, slots=True)
class InittabLine:
    id: str
    runlevels: str
    action: str
    process: str
    line: int


def parse_inittab(text: str) -> list[InittabLine]:
    out = []
    for n, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.split(":", 3)
        if len(parts) == 4 and parts[2]:
            out.append(InittabLine(parts[0], parts[1], parts[2], parts[3].strip(), n))
    return out


_ASSIGN = re.compile(r"^\s*(?:export\s+|local\s+|readonly\s+)?([A-Za-z_][A-Za-z0-9_]*)=(.*)$")
_CAT_SUBST = re.compile(r"""^["']?(?:`\s*cat\s+([^`\s]+)\s*`|\$\(\s*cat\s+([^)\s]+)\s*\))["']?\s*$""")
_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}|\$([A-Za-z_][A-Za-z0-9_]*)")
_HEREDOC = re.compile(r"<<-?\s*['\"]?([A-Za-z_][A-Za-z0-9_]*)['\"]?")
_OPERATORS = frozenset({";", "&&", "||", "|", "&", ";;", "(", ")", "|&", "{", "}"})
_REDIRECTS = frozenset({">", ">>", "<", ">&", "<&", "&>", "<<", "<>", ">|"})
_KEYWORDS = frozenset({"if", "then", "else", "elif", "do", "while", "until", "!", "exec", "nohup", "time", "command"})
_WRAPPERS = frozenset({"nice", "ionice", "setsid", "taskset", "chrt", "timeout", "env", "chroot"})
_DATA_COMMANDS = frozenset({"echo", "printf", "logger", "[", "test", "[[", "fi", "done", "esac", "case", "for"})


@dataclass(frozen=True, slots=True)
class ScriptCommand:
    argv: tuple[str, ...]
    line: int
    procd: bool = False  # from procd_set_param command


def _tokens(text: str) -> list[str]:
    lex = shlex.shlex(text, posix=True, punctuation_chars=";&|<>()")
    lex.whitespace_split = True
    lex.commenters = ""
    try:
        return list(lex)
    except ValueError:  # unbalanced quotes: fall back to words, as a reader would
        return text.split()


def _strip_comment(line: str) -> str:
    """The line without a trailing ``# comment`` (``#`` starting a word, outside quotes)."""
    quote = None
    for i, ch in enumerate(line):
        if quote:
            if ch == quote:
                quote = None
        elif ch in "'\"":
            quote = ch
        elif ch == "#" and (i == 0 or line[i - 1] in " \t;&|("):
            return line[:i]
    return line


def _simple_commands(tokens: list[str]) -> list[list[str]]:
    out: list[list[str]] = []
    cur: list[str] = []
    skip_next = False
    for tok in tokens:
        if skip_next:
            skip_next = False
            continue
        if tok in _REDIRECTS:
            if cur and cur[-1].isdigit():
                cur.pop()  # 2>/dev/null: the fd number belongs to the redirection
            skip_next = True
            continue
        if tok in _OPERATORS:
            if tok == ")" and cur and "(" not in tokens:
                cur = []  # "telnetd)": a case pattern, not a command
                continue
            if cur:
                out.append(cur)
            cur = []
            continue
        cur.append(tok)
    if cur:
        out.append(cur)
    return out


def unwrap(argv: list[str]) -> list[str]:
    """The program a command line really starts (keywords, assignments and wrappers removed)."""
    argv = list(argv)
    while argv:
        head = posixpath.basename(argv[0])
        if argv[0] in _KEYWORDS or re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*=.*", argv[0]):
            argv.pop(0)
        elif head in _WRAPPERS:
            argv.pop(0)
            while argv and (argv[0].startswith("-") or re.fullmatch(r"[0-9.]+[smhd]?|[A-Za-z_]\w*=.*", argv[0])):
                argv.pop(0)
            if head == "chroot" and argv:
                argv.pop(0)
        elif head == "start-stop-daemon":
            prog, rest, i = None, [], 1
            while i < len(argv):
                a = argv[i]
                if a in ("-x", "--exec", "-a", "--startas") and i + 1 < len(argv):
                    prog = prog if a in ("-a", "--startas") and prog else argv[i + 1]
                    i += 2
                    continue
                if a.startswith(("--exec=", "--startas=")):
                    prog = a.split("=", 1)[1]
                if a == "--":
                    rest = argv[i + 1 :]
                    break
                i += 1
            return [prog, *rest] if prog else []
        else:
            return argv
    return argv


def parse_script(text: str, variables: dict[str, str] | None = None) -> tuple[list[ScriptCommand], dict[str, str]]:
    """Commands of a shell script, and variables assigned with a literal or ``cat FILE``.

    Values that come from files are returned as ``@file:PATH`` for the caller to read from the tree.
    """
    variables = dict(variables or {})
    out: list[ScriptCommand] = []
    lines = text.splitlines()
    heredoc: str | None = None
    pending = ""
    start = 0
    for n, raw in enumerate(lines, 1):
        if heredoc is not None:
            if raw.strip() == heredoc:
                heredoc = None
            continue
        if not pending:
            start = n
        if raw.endswith("\\"):
            pending += raw[:-1] + " "
            continue
        line = _strip_comment(pending + raw).strip()
        pending = ""
        if not line:
            continue
        m = _HEREDOC.search(line)
        if m:
            heredoc = m.group(1)
            line = line[: m.start()]
        assign = _ASSIGN.match(line)
        if assign:
            name, value = assign.group(1), assign.group(2).strip()
            cat = _CAT_SUBST.match(value)
            if cat:
                variables[name] = "@file:" + (cat.group(1) or cat.group(2))
                continue
            words = _tokens(value)
            if len(words) <= 1 and "`" not in value and "$(" not in value:
                variables[name] = _expand(words[0] if words else "", variables)
                continue
        expanded = _expand(line, variables)
        for argv in _simple_commands(_tokens(expanded)):
            if argv[:2] == ["procd_set_param", "command"]:
                out.append(ScriptCommand(tuple(argv[2:]), start, procd=True))
                continue
            if argv[:2] == ["procd_append_param", "command"] and out and out[-1].procd:
                out[-1] = ScriptCommand((*out[-1].argv, *argv[2:]), out[-1].line, procd=True)
                continue
            real = unwrap(argv)
            if not real or posixpath.basename(real[0]) in _DATA_COMMANDS:
                continue
            if posixpath.basename(real[0]) in SHELLS and len(real) >= 3 and real[1] == "-c":
                inner, _ = parse_script(real[2], variables)
                out.extend(ScriptCommand(c.argv, start) for c in inner)
                continue
            out.append(ScriptCommand(tuple(real), start))
    return out, variables


def _expand(text: str, variables: dict[str, str]) -> str:
    def sub(m: re.Match[str]) -> str:
        name = m.group(1) or m.group(2)
        value = variables.get(name)
        if value is None or value.startswith("@file:"):
            return m.group(0)
        return value

    return _VAR.sub(sub, text)


@dataclass(frozen=True, slots=True)
class InetdLine:
    service: str
    socktype: str
    protocol: str
    argv: tuple[str, ...]  # server program and its argv (argv[0] repeated by inetd.conf)
    line: int


def parse_inetd(text: str) -> list[InetdLine]:
    out = []
    for n, raw in enumerate(text.splitlines(), 1):
        fields = raw.split()
        if len(fields) < 6 or raw.lstrip().startswith("#"):
            continue
        service, socktype, proto, _wait, _user, server, *args = fields
        if server == "internal":
            continue
        argv = (server, *args[1:]) if args else (server,)
        out.append(InetdLine(service, socktype, proto, argv, n))
    return out


@dataclass(frozen=True, slots=True)
class XinetdService:
    name: str
    attrs: dict[str, str]
    line: int


def parse_xinetd(text: str) -> list[XinetdService]:
    out: list[XinetdService] = []
    name: str | None = None
    attrs: dict[str, str] = {}
    start = 0
    for n, raw in enumerate(text.splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if line.startswith("service ") and name is None:
            name, attrs, start = line.split(None, 1)[1].strip(), {}, n
        elif line == "}" and name is not None:
            out.append(XinetdService(name, attrs, start))
            name = None
        elif name is not None and "=" in line:
            key, _, value = line.partition("=")
            attrs[key.strip().rstrip("+-").strip()] = value.strip()
    return out


def parse_systemd_unit(text: str) -> list[tuple[str, str, str, int]]:
    """(section, key, value, line) of a unit file."""
    out = []
    section = ""
    for n, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        if line.startswith("[") and line.endswith("]"):
            section = line[1:-1]
        elif "=" in line:
            key, _, value = line.partition("=")
            out.append((section, key.strip(), value.strip(), n))
    return out


def parse_crontab(text: str, with_user: bool) -> list[tuple[tuple[str, ...], int]]:
    """Commands of a crontab: (argv, line). System crontabs have a user field, per-user ones do not."""
    out: list[tuple[tuple[str, ...], int]] = []
    for n, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#") or (_ASSIGN.match(line) and not line.startswith("@")):
            continue
        fields = line.split()
        skip = (1 if fields[0].startswith("@") else 5) + (1 if with_user else 0)
        if len(fields) <= skip:
            continue
        commands, _ = parse_script(" ".join(fields[skip:]))
        out.extend((c.argv, n) for c in commands)
    return out


# ---- the tree walk ---------------------------------------------------------------------------------

# BusyBox init's built-in table when there is no /etc/inittab (init/init.c, parse_inittab()).
BUSYBOX_DEFAULT_INITTAB = """::sysinit:/etc/init.d/rcS
::askfirst:/bin/sh
::ctrlaltdel:/sbin/reboot
::shutdown:/sbin/swapoff -a
::shutdown:/bin/umount -a -r
::restart:/sbin/init
tty2::askfirst:/bin/sh
tty3::askfirst:/bin/sh
tty4::askfirst:/bin/sh
"""

_SCRIPT_PLACES = ("/etc/init.d/", "/etc/init0.d/", "/etc/rc.d/", "/etc/rcS.d/", "/etc/rc2.d/", "/etc/rc3.d/")
_LINK_DIRS = ("/etc/rc.d/S", "/etc/rcS.d/S", "/etc/rc2.d/S", "/etc/rc3.d/S", "/etc/rc5.d/S")
_SCRIPT_FILES = ("/etc/rc.local", "/etc/rc.d/rc.local", "/etc/rcS", "/etc/rc.sysinit", "/etc/init.d/rcS")


def is_busybox(ctx: Context, path: str) -> bool:
    real = ctx.tree.resolve(path)
    if real is None:
        return False
    if posixpath.basename(real).startswith("busybox"):
        return True
    entry = ctx.tree.get(real)
    if entry is None or entry.size > 8 << 20:
        return False
    data = ctx.read(real)
    return data is not None and data[:4] == b"\x7fELF" and b"BusyBox v" in data


def which(ctx: Context, program: str) -> str | None:
    """The path of ``program`` in the image: itself if absolute, else the first hit on PATH."""
    if program.startswith("/"):
        return program if ctx.tree.resolve(program) is not None else None
    for d in PATH_DIRS:
        candidate = f"{d}/{program}"
        if ctx.tree.resolve(candidate) is not None:
            return candidate
    return None


class _Walker:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.out: list[Command] = []
        self.seen: set[str] = set()
        self._paths: list[str] | None = None
        self.openwrt = ctx.tree.get("/etc/rc.common") is not None or ctx.tree.get("/lib/functions/procd.sh") is not None

    def script(self, path: str, depth: int, origin: Origin = Origin.SCRIPT) -> None:
        real = self.ctx.tree.resolve(path)
        if real is None or real in self.seen or depth > MAX_DEPTH or not self.ctx.exists(real):
            return
        self.seen.add(real)
        head = self.ctx.head(real, 4096)
        if head is None or b"\x00" in head:  # a program, not a script
            return
        data = self.ctx.read(real)
        if data is None:
            return
        commands, variables = parse_script(data.decode("latin-1"))
        for c in commands:
            argv = tuple(self._file_vars(a, variables) for a in c.argv)
            self.out.append(Command(argv, Origin.PROCD if c.procd else origin, self.ctx.evidence(real, c.line)))
            self.follow(argv, depth)

    def _file_vars(self, arg: str, variables: dict[str, str]) -> str:
        """``$x`` where ``x=`cat FILE``` becomes FILE's first line, read from the image."""

        def sub(m: re.Match[str]) -> str:
            value = variables.get(m.group(1) or m.group(2), "")
            if value.startswith("@file:") and self.ctx.exists(value[6:]):
                content = (self.ctx.read(value[6:]) or b"").decode("latin-1").strip().splitlines()
                return content[0] if content else ""
            return m.group(0)

        return _VAR.sub(sub, arg)

    def follow(self, argv: tuple[str, ...], depth: int) -> None:
        """Scripts a command runs: ``/etc/init.d/x start``, ``sh FILE``, ``. FILE``, globs in loops."""
        if not argv:
            return
        head = posixpath.basename(argv[0])
        targets: list[str] = []
        if head in SHELLS or argv[0] in (".", "source"):
            targets = [a for a in argv[1:2] if a.startswith("/")]
        elif head == "run-parts" and len(argv) > 1:
            targets = [e.path for e in self.ctx.files() if posixpath.dirname(e.path) == argv[-1].rstrip("/")]
        elif argv[0].startswith("/"):
            targets = [argv[0]]
        for a in argv:
            if a.startswith("/") and any(ch in a for ch in "*?["):
                targets.extend(sorted(p for p in self._all_paths() if fnmatch.fnmatchcase(p, a)))
        for t in targets:
            self.script(t, depth + 1)

    def _all_paths(self) -> list[str]:
        if self._paths is None:
            self._paths = [e.path for e in self.ctx.tree.entries()]
        return self._paths

    def inittab(self) -> None:
        path = "/etc/inittab"
        if self.ctx.exists(path):
            text = (self.ctx.read(path) or b"").decode("latin-1")
            where_path = path
        elif is_busybox(self.ctx, "/sbin/init"):
            text, where_path = BUSYBOX_DEFAULT_INITTAB, "/sbin/init"
        else:
            return
        for it in parse_inittab(text):
            if it.action in ("initdefault", "ctrlaltdel", "shutdown", "restart", "powerfail", "powerwait"):
                continue
            process = it.process.lstrip("-")  # "-" asks BusyBox for a login shell: still no login
            commands, _ = parse_script(process)
            # the built-in table has no lines of its own: the evidence is /sbin/init itself
            ev = self.ctx.evidence(where_path, it.line if where_path == path else None)
            for c in commands:
                self.out.append(Command(c.argv, Origin.INITTAB, ev, tty=it.id, action=it.action))
                self.follow(c.argv, 0)

    def places(self) -> None:
        enabled: set[str] | None = None
        sysv_links = any(
            (d := self.ctx.tree.get(p)) is not None and d.type is EntryType.DIR
            for p in ("/etc/rcS.d", "/etc/rc2.d", "/etc/rc3.d", "/etc/rc5.d")
        )
        if self.openwrt or sysv_links:  # init.d holds every script; only the linked ones start
            enabled = set()
            for e in self.ctx.tree.entries():
                if e.path.startswith(_LINK_DIRS) and (real := self.ctx.tree.resolve(e.path)):
                    enabled.add(real)
        for e in self.ctx.files():
            p = e.path
            if p in _SCRIPT_FILES or (p.startswith(_SCRIPT_PLACES) and posixpath.dirname(p).count("/") == 2):
                if enabled is not None and p.startswith("/etc/init.d/") and p not in enabled and p not in _SCRIPT_FILES:
                    continue
                if p.startswith(("/etc/rc2.d/", "/etc/rc3.d/", "/etc/rcS.d/")) and not posixpath.basename(p).startswith(
                    "S"
                ):
                    continue
                self.script(p, 0)
        for e in self.ctx.tree.entries():  # rc?.d links to /etc/init.d scripts
            if e.path.startswith(_LINK_DIRS):
                self.script(e.path, 0)

    def inetd(self) -> None:
        if self.ctx.exists("/etc/inetd.conf") and (which(self.ctx, "inetd") or is_busybox(self.ctx, "/bin/busybox")):
            for it in parse_inetd((self.ctx.read("/etc/inetd.conf") or b"").decode("latin-1")):
                proto = "udp" if it.protocol.startswith("udp") else "tcp"
                port = int(it.service) if it.service.isdigit() else _service_port(self.ctx, it.service, proto)
                ev = self.ctx.evidence("/etc/inetd.conf", it.line)
                self.out.append(Command(it.argv, Origin.INETD, ev, port=port, protocol=proto))
        files = [
            e.path for e in self.ctx.files() if e.path == "/etc/xinetd.conf" or e.path.startswith("/etc/xinetd.d/")
        ]
        for path in files:
            for svc in parse_xinetd((self.ctx.read(path) or b"").decode("latin-1")):
                if svc.attrs.get("disable", "no").lower() == "yes" or "server" not in svc.attrs:
                    continue
                proto = svc.attrs.get("protocol", "udp" if svc.attrs.get("socket_type") == "dgram" else "tcp")
                port_text = svc.attrs.get("port", "")
                port = int(port_text) if port_text.isdigit() else _service_port(self.ctx, svc.name, proto)
                argv = (svc.attrs["server"], *svc.attrs.get("server_args", "").split())
                ev = self.ctx.evidence(path, svc.line)
                self.out.append(Command(argv, Origin.XINETD, ev, port=port, protocol=proto))

    def systemd(self) -> None:
        units: set[str] = set()
        for e in self.ctx.tree.entries():
            parent = posixpath.basename(posixpath.dirname(e.path))
            if parent.endswith((".wants", ".requires")) and "/systemd/" in e.path:
                real = self.ctx.tree.resolve(e.path)
                if real is None:  # a link into /lib/systemd/system written relative to the running system
                    name = posixpath.basename(e.path)
                    real = next(
                        (
                            c
                            for d in ("/etc/systemd/system", "/lib/systemd/system", "/usr/lib/systemd/system")
                            if self.ctx.exists(c := f"{d}/{name}")
                        ),
                        None,
                    )
                if real is not None:
                    units.add(real)
            elif parent.startswith(
                ("getty@", "serial-getty@", "console-getty", "container-getty@")
            ) and e.path.endswith(".conf"):
                units.add(e.path)  # drop-ins of the gettys systemd starts on every console (autologin overrides)
        for unit in sorted(units):
            data = self.ctx.read(unit)
            if data is None:
                continue
            for section, key, value, n in parse_systemd_unit(data.decode("latin-1")):
                ev = self.ctx.evidence(unit, n)
                if section == "Service" and key == "ExecStart" and value:
                    commands, _ = parse_script(value.lstrip("-@+!:"))
                    self.out.extend(Command(c.argv, Origin.SYSTEMD, ev) for c in commands)
                elif section == "Socket" and key in ("ListenStream", "ListenDatagram"):
                    port_text = value.rsplit(":", 1)[-1]
                    if port_text.isdigit():
                        proto = "tcp" if key == "ListenStream" else "udp"
                        prog = posixpath.basename(unit).rsplit(".", 1)[0]
                        self.out.append(Command((prog,), Origin.SYSTEMD, ev, port=int(port_text), protocol=proto))

    def cron(self) -> None:
        for e in self.ctx.files():
            p = e.path
            system = p == "/etc/crontab" or p.startswith("/etc/cron.d/")
            user = p.startswith(("/etc/crontabs/", "/var/spool/cron/crontabs/", "/etc/cron/crontabs/"))
            if not (system or user):
                continue
            for argv, n in parse_crontab((self.ctx.read(p) or b"").decode("latin-1"), with_user=system):
                self.out.append(Command(argv, Origin.CRON, self.ctx.evidence(p, n)))
                self.follow(argv, 0)


_WELL_KNOWN = {
    ("telnet", "tcp"): 23, ("ftp", "tcp"): 21, ("tftp", "udp"): 69, ("ssh", "tcp"): 22, ("http", "tcp"): 80,
    ("login", "tcp"): 513, ("shell", "tcp"): 514, ("exec", "tcp"): 512, ("https", "tcp"): 443,
    ("snmp", "udp"): 161, ("www", "tcp"): 80, ("rsh", "tcp"): 514, ("rlogin", "tcp"): 513,
}  # fmt: skip


def _service_port(ctx: Context, name: str, proto: str) -> int | None:
    """Port of a service name, from the image's /etc/services, else the IANA registry's few we need."""
    if ctx.exists("/etc/services"):
        for raw in text_lines(ctx.read("/etc/services") or b""):
            fields = raw.split("#", 1)[0].split()
            if len(fields) >= 2 and "/" in fields[1]:
                port, _, p = fields[1].partition("/")
                if p == proto and port.isdigit() and (fields[0] == name or name in fields[2:]):
                    return int(port)
    return _WELL_KNOWN.get((name, proto))


def boot_commands(ctx: Context) -> list[Command]:
    """Every command started at boot, each once per place that starts it."""
    w = _Walker(ctx)
    w.inittab()
    w.places()
    w.inetd()
    w.systemd()
    w.cron()
    return w.out
