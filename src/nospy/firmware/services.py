"""Network services started at boot, and consoles that give a shell without a login.

Each boot command (`nospy.firmware.boot`) is matched against a declared table of network daemons
(`DAEMONS`): the program is resolved through symlinks and BusyBox applets, and the port, the login
program and risky flags are read from its arguments the way the daemon itself reads them
(BusyBox ``telnetd -p PORT -l LOGIN``, ``nc -l -p PORT -e PROG``, ``tcpsvd IP PORT PROG``, dropbear
``-p [ADDR:]PORT``, ``-B``; socat ``TCP-LISTEN:PORT ... EXEC:PROG``). Only commands a boot path
really runs count: a help text inside a binary or a commented-out line starts nothing.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Callable
from dataclasses import dataclass, field

from nospy.findings import Finding
from nospy.firmware.boot import SHELLS, Command, Origin, boot_commands, is_busybox, which
from nospy.firmware.context import Context, Detector, Evidence, finding, text_lines

__all__ = ["CONSOLES", "DAEMONS", "SERVICES", "Daemon", "Service", "interpret"]


@dataclass(frozen=True, slots=True)
class Parsed:
    port: int | None = None
    shell: str | None = None  # a program handed to network clients without authentication
    flags: tuple[str, ...] = ()
    listening: bool = True
    inner: tuple[str, ...] = ()  # super-servers (tcpsvd): the program they run per connection


def _is_shell(program: str) -> bool:
    words = program.split()
    if not words:
        return False
    head = posixpath.basename(words[0])
    if head == "busybox" and len(words) > 1:
        head = words[1]
    return head in SHELLS


def _port(text: str) -> int | None:
    text = text.rsplit(":", 1)[-1]
    return int(text) if text.isdigit() and 0 < int(text) < 65536 else None


def _getopt(args: tuple[str, ...], with_value: str) -> tuple[dict[str, list[str]], list[str]]:
    """POSIX getopt: short options, combined (``-lp 23``), values attached or next (``-p23``)."""
    opts: dict[str, list[str]] = {}
    rest: list[str] = []
    i = 0
    while i < len(args):
        a = args[i]
        if a == "--":
            rest.extend(args[i + 1 :])
            break
        if a.startswith("--") and "=" in a:
            key, _, value = a[2:].partition("=")
            opts.setdefault(key, []).append(value)
        elif a.startswith("-") and len(a) > 1 and not a.startswith("--"):
            j = 1
            while j < len(a):
                ch = a[j]
                if ch in with_value:
                    value = a[j + 1 :] or (args[i + 1] if i + 1 < len(args) else "")
                    if not a[j + 1 :]:
                        i += 1
                    opts.setdefault(ch, []).append(value)
                    break
                opts.setdefault(ch, []).append("")
                j += 1
        else:
            rest.append(a)
        i += 1
    return opts, rest


def _telnetd(args: tuple[str, ...]) -> Parsed:
    opts, _ = _getopt(args, "plbfu")
    port = next((p for v in opts.get("p", []) if (p := _port(v))), None)
    port = port or next((p for v in opts.get("b", []) if (p := _port(v))), None)
    login = (opts.get("l") or ["/bin/login"])[-1]
    flags = ("fixed-credential",) if opts.get("u") else ()
    return Parsed(port=port, shell=login if _is_shell(login) else None, flags=flags)


def _dropbear(args: tuple[str, ...]) -> Parsed:
    opts, _ = _getopt(args, "prPbcWKIGTjkdhaA")
    ports = [p for v in opts.get("p", []) if (p := _port(v))]
    flags = ("blank-passwords",) if "B" in opts else ()
    return Parsed(port=ports[0] if ports else None, flags=flags)


def _sshd(args: tuple[str, ...]) -> Parsed:
    opts, _ = _getopt(args, "pfhoEcCgkb")
    ports = [p for v in opts.get("p", []) if (p := _port(v))]
    return Parsed(port=ports[0] if ports else None)


def _nc(args: tuple[str, ...]) -> Parsed:
    opts, rest = _getopt(args, "pecswiqWTIOPXxV")
    if "l" not in opts:
        return Parsed(listening=False)
    port = next((p for v in opts.get("p", []) if (p := _port(v))), None)
    port = port or next((p for v in reversed(rest) if (p := _port(v))), None)
    prog = (opts.get("e") or opts.get("c") or [""])[-1]
    return Parsed(port=port, shell=prog if prog and _is_shell(prog) else None, flags=("exec",) if prog else ())


def _socat(args: tuple[str, ...]) -> Parsed:
    words = [a for a in args if not a.startswith("-")]
    listen = next((w for w in words if re.match(r"(?i)(tcp|udp|sctp)[46]?-listen:", w)), None)
    if listen is None:
        return Parsed(listening=False)
    port = _port(listen.split(":", 1)[1].split(",", 1)[0])
    target = next((w for w in words if re.match(r"(?i)(exec|system):", w)), "")
    prog = target.split(":", 1)[1].split(",", 1)[0] if target else ""
    return Parsed(port=port, shell=prog if prog and _is_shell(prog) else None, flags=("exec",) if prog else ())


def _svd(args: tuple[str, ...]) -> Parsed:
    _, rest = _getopt(args, "cCbuln")
    if len(rest) < 3:
        return Parsed(listening=False)
    prog = rest[2]
    return Parsed(port=_port(rest[1]), shell=prog if _is_shell(prog) else None, inner=tuple(rest[2:]))


def _http(args: tuple[str, ...]) -> Parsed:
    opts, _ = _getopt(args, "pshchrRaeimnuIxtTPkKC")
    ports = [p for key in ("p", "s") for v in opts.get(key, []) if (p := _port(v))]
    return Parsed(port=ports[0] if ports else None)


def _plain(args: tuple[str, ...]) -> Parsed:
    opts, _ = _getopt(args, "p")
    ports = [p for v in opts.get("p", []) if (p := _port(v))]
    return Parsed(port=ports[0] if ports else None)


@dataclass(frozen=True)
class Daemon:
    """A network daemon nospy recognises: default port, what makes it insecure, how to read its args."""

    kind: str
    names: tuple[str, ...]
    protocol: str
    port: int | None
    parse: Callable[[tuple[str, ...]], Parsed]
    insecure: str | None = None  # why the protocol itself is insecure (clear text, no auth)


DAEMONS: tuple[Daemon, ...] = (
    Daemon("telnet", ("telnetd", "utelnetd", "in.telnetd"), "tcp", 23, _telnetd, "telnet sends passwords in clear"),
    Daemon("ssh", ("dropbear", "dropbearmulti"), "tcp", 22, _dropbear),
    Daemon("ssh", ("sshd",), "tcp", 22, _sshd),
    Daemon("netcat", ("nc", "netcat", "ncat"), "tcp", None, _nc),
    Daemon("socat", ("socat",), "tcp", None, _socat),
    Daemon("tcpsvd", ("tcpsvd",), "tcp", None, _svd),
    Daemon("udpsvd", ("udpsvd",), "udp", None, _svd),
    Daemon("http", ("httpd", "uhttpd", "lighttpd", "boa", "goahead", "webs", "mini_httpd", "thttpd", "nginx", "jhttpd"),
           "tcp", 80, _http),
    Daemon("ftp", ("ftpd", "vsftpd", "proftpd", "pure-ftpd", "bftpd", "stupid-ftpd", "in.ftpd"), "tcp", 21, _plain,
           "ftp sends passwords in clear"),
    Daemon("tftp", ("tftpd", "in.tftpd", "atftpd", "opentftpd"), "udp", 69, _plain, "tftp has no authentication"),
    Daemon("rlogin", ("rlogind", "in.rlogind"), "tcp", 513, _plain, "rlogin trusts host names"),
    Daemon("rsh", ("rshd", "in.rshd"), "tcp", 514, _plain, "rsh trusts host names"),
    Daemon("rexec", ("rexecd", "in.rexecd"), "tcp", 512, _plain, "rexec sends passwords in clear"),
    Daemon("snmp", ("snmpd", "mini_snmpd"), "udp", 161, _plain),
    Daemon("upnp", ("miniupnpd",), "udp", 1900, _plain),
    Daemon("dns", ("dnsmasq",), "udp", 53, _plain),
    Daemon("smb", ("smbd",), "tcp", 445, _plain),
    Daemon("mqtt", ("mosquitto",), "tcp", 1883, _plain),
)  # fmt: skip
_BY_NAME = {name: d for d in DAEMONS for name in d.names}


@dataclass(frozen=True)
class Service:
    kind: str
    program: str  # the daemon's name (applet or binary)
    binary: str | None  # its file in the image (a BusyBox applet: the busybox binary)
    argv: tuple[str, ...]
    protocol: str
    port: int | None
    origin: str
    where: Evidence
    shell: str | None = None
    flags: tuple[str, ...] = field(default_factory=tuple)
    insecure: str | None = None

    def summary(self) -> dict[str, object]:
        return {
            "service": self.kind,
            "program": self.program,
            "binary": self.binary,
            "argv": list(self.argv),
            "protocol": self.protocol,
            "port": self.port,
            "started_by": self.origin,
            "shell": self.shell,
            "flags": list(self.flags),
        }


def _daemon_of(ctx: Context, argv: tuple[str, ...]) -> tuple[Daemon, str, str | None, tuple[str, ...]] | None:
    """The daemon a command starts: (daemon, its name, its binary, its arguments)."""
    if not argv:
        return None
    prog, args = argv[0], argv[1:]
    if posixpath.basename(prog) == "busybox" and args:
        prog, args = args[0], args[1:]
    name = posixpath.basename(prog)
    path = which(ctx, prog)
    real = ctx.tree.resolve(path) if path else None
    daemon = _BY_NAME.get(name)
    if daemon is None and real is not None and not is_busybox(ctx, real):
        daemon = _BY_NAME.get(posixpath.basename(real))  # /usr/sbin/telnetd -> utelnetd
    if daemon is None:
        return None
    if real is None and not prog.startswith("/") and is_busybox(ctx, "/bin/busybox"):
        real = ctx.tree.resolve("/bin/busybox")  # applet links made at run time (busybox --install)
    return daemon, name, real, args


def interpret(ctx: Context, cmd: Command) -> Service | None:
    """The network service a boot command starts, or ``None``."""
    found = _daemon_of(ctx, cmd.argv)
    if found is None:
        if cmd.port is None:
            return None
        # inetd/xinetd/systemd sockets: the super-server listens, whatever the program
        binary = which(ctx, cmd.argv[0]) if cmd.argv else None
        shell = cmd.argv[0] if cmd.argv and _is_shell(" ".join(cmd.argv)) else None
        return Service(
            posixpath.basename(cmd.argv[0]) if cmd.argv else "?",
            posixpath.basename(cmd.argv[0]) if cmd.argv else "?",
            binary,
            cmd.argv,
            cmd.protocol or "tcp",
            cmd.port,
            cmd.origin.value,
            cmd.where,
            shell=shell,
        )
    daemon, name, binary, args = found
    parsed = daemon.parse(args)
    if not parsed.listening and cmd.port is None:
        return None
    kind, insecure, shell = daemon.kind, daemon.insecure, parsed.shell
    if parsed.inner:  # tcpsvd 0 21 ftpd: the service is what it runs
        inner = _daemon_of(ctx, parsed.inner)
        if inner is not None:
            kind, insecure = inner[0].kind, inner[0].insecure
            shell = shell or inner[0].parse(inner[3]).shell
    if "blank-passwords" in parsed.flags:
        insecure = "dropbear -B lets accounts with an empty password log in"
    if daemon.kind == "ssh" and name == "sshd" and _sshd_empty_passwords(ctx):
        insecure = "sshd_config: PermitEmptyPasswords yes"
    port = cmd.port or parsed.port or daemon.port
    if cmd.origin is Origin.PROCD and daemon.kind == "ssh" and parsed.port is None:
        port = _uci_port(ctx, "dropbear", "Port") or port
    return Service(
        kind,
        name,
        binary,
        cmd.argv,
        cmd.protocol or daemon.protocol,
        port,
        cmd.origin.value,
        cmd.where,
        shell=shell,
        flags=parsed.flags,
        insecure=insecure,
    )


def _sshd_empty_passwords(ctx: Context) -> bool:
    data = ctx.read("/etc/ssh/sshd_config") if ctx.exists("/etc/ssh/sshd_config") else None
    return any(re.fullmatch(r"\s*PermitEmptyPasswords\s+yes\s*", line, re.I) for line in text_lines(data or b""))


def _uci_port(ctx: Context, config: str, option: str) -> int | None:
    """An option of an OpenWrt UCI file (/etc/config/NAME: ``option Port '22'``)."""
    path = f"/etc/config/{config}"
    if not ctx.exists(path):
        return None
    for line in text_lines(ctx.read(path) or b""):
        m = re.match(rf"\s*option\s+{option}\s+['\"]?(\d+)['\"]?", line)
        if m:
            return _port(m.group(1))
    return None


def _declared(ctx: Context, svc: Service) -> bool:
    assert ctx.agreement is not None and ctx.agreement.services is not None  # noqa: S101 - caller checks
    for d in ctx.agreement.services:
        program_ok = d.program is None or posixpath.basename(d.program) in (svc.program, svc.kind)
        if svc.port is None:
            if program_ok and d.program is not None:
                return True
        elif d.port == svc.port and d.protocol.value == svc.protocol and program_ok:
            return True
    return False


def _run_services(ctx: Context) -> list[Finding]:
    commands = boot_commands(ctx)
    ctx.facts["boot_commands"] = commands
    services: list[Service] = []
    for cmd in commands:
        svc = interpret(ctx, cmd)
        if svc is not None:
            services.append(svc)
    ctx.facts["services"] = services
    findings = []
    check = ctx.agreement is not None and ctx.agreement.services is not None
    for s in services:
        port = f"{s.protocol}/{s.port}" if s.port else s.protocol
        what = f"{s.program} ({s.kind}, {port}) started by {s.origin}"
        findings.append(finding("inventory.service", what, s.where, **s.summary()))
        if s.shell:
            findings.append(
                finding(
                    "service.shell-bind", f"{what} hands out {s.shell} without authentication", s.where, **s.summary()
                )
            )
        if s.insecure:
            findings.append(finding("service.insecure", f"{what}: {s.insecure}", s.where, **s.summary()))
        if check and not _declared(ctx, s):
            findings.append(finding("service.undeclared", f"{what} is not declared", s.where, **s.summary()))
    return findings


# ---- consoles ---------------------------------------------------------------------------------------

_GETTYS = frozenset({"getty", "agetty", "mingetty", "mgetty", "fbgetty"})


def _console_shell(ctx: Context, cmd: Command) -> str | None:
    """Why a boot command gives a console shell without login, or ``None``."""
    argv = cmd.argv
    if not argv:
        return None
    head = posixpath.basename(argv[0])
    args = argv[1:]
    if head == "busybox" and args:
        head, args = args[0], args[1:]
    if cmd.origin is Origin.INITTAB and head in SHELLS:
        scripts = [a for a in args if not a.startswith("-")]
        if not scripts:  # "sh /etc/init.d/rcS" runs a script; a bare shell waits for a person
            where = (
                "" if cmd.where.path == "/etc/inittab" else " (BusyBox's built-in inittab: there is no /etc/inittab)"
            )
            return f"inittab {cmd.action} runs {' '.join(argv)} on {cmd.tty or 'the console'}{where}"
    if head in _GETTYS:
        opts, _ = _getopt(args, "lafIHtfo")
        login = (opts.get("l") or [""])[-1]
        auto = (opts.get("a") or opts.get("autologin") or [""])[-1]
        if "autologin" in args or "--autologin" in args:
            i = args.index("--autologin")
            auto = args[i + 1] if i + 1 < len(args) else "?"
        if login and _is_shell(login):
            return f"{head} -l {login}: the shell is started instead of login"
        if auto:
            return f"{head} logs {auto} in automatically"
    if head == "login" and "-f" in args:
        return "login -f: no password asked"
    return None


def _run_consoles(ctx: Context) -> list[Finding]:
    commands: list[Command] = ctx.facts.get("boot_commands") or boot_commands(ctx)
    findings = []
    for cmd in commands:
        if cmd.port is not None:
            continue
        why = _console_shell(ctx, cmd)
        if why:
            findings.append(
                finding("console.unauthenticated", why, cmd.where, argv=list(cmd.argv), tty=cmd.tty, action=cmd.action)
            )
    return findings


SERVICES = Detector(
    name="services",
    rules=("service.shell-bind", "service.insecure", "service.undeclared", "inventory.service"),
    rationale="A listener started at boot is how a device is reached; undeclared or unauthenticated ones are doors.",
    references=(
        "https://git.busybox.net/busybox/tree/networking/telnetd.c",
        "https://git.busybox.net/busybox/tree/init/init.c",
        "https://man7.org/linux/man-pages/man5/systemd.service.5.html",
        "https://openwrt.org/docs/guide-developer/procd-init-scripts",
    ),
    run=_run_services,
)

CONSOLES = Detector(
    name="consoles",
    rules=("console.unauthenticated",),
    rationale="A shell on a serial console without login hands the device to anyone with a cable.",
    references=(
        "https://git.busybox.net/busybox/tree/examples/inittab",
        "https://man7.org/linux/man-pages/man8/agetty.8.html",
    ),
    run=_run_consoles,
)
