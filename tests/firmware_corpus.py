"""The firmware accuracy corpus: real root filesystems with one planted backdoor each, and clean ones.

Every image is the clean base of `nospy.firmware.rootfs` (Debian's BusyBox, Dropbear, OpenSSH and
OpenSSL with their libraries) plus the files of one case. Keys are made by the real tools
(ssh-keygen, dropbearkey, openssl, puttygen, htpasswd), hashes by libxcrypt. Each case names the
findings it must produce: (rule, device path). The test suite and benchmarks/firmware_accuracy.py
both use it.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from nospy.firmware.crack import crypt_hash, md5crypt
from nospy.firmware.rootfs import clone, plant

AGREEMENT = """nospy: 1
id: corpus
title: Corpus agreement
vendor: V
customer: C
accounts:
  - {name: root, access: [ssh, console], auth: [password]}
  - {name: admin, access: [web], auth: [password]}
services:
  - {name: ssh, protocol: tcp, port: 22, program: dropbear}
  - {name: web, protocol: tcp, port: 80, program: httpd}
endpoints:
  - {host: update.acme.example, port: 443}
data:
  countries: [IN]
keys:
  private: []
  authorized: []
"""

# A user's own address plan for data.residency: two networks with their countries.
GEO_CSV = "45.83.0.0/16,RU\n103.21.244.0/22,IN\n"


def _run(*argv: str, cwd: Path | None = None) -> None:
    subprocess.run(argv, check=True, capture_output=True, cwd=cwd, timeout=60)


def _elf_with(root: Path, path: str, text: bytes, src: str = "/usr/bin/dropbearkey") -> None:
    """A real ELF program with ``text`` among its bytes (as a string compiled into it would be)."""
    plant(root, path, (root / src.lstrip("/")).read_bytes() + b"\x00" + text + b"\x00", 0o755)


def _copy(root: Path, src: str, dest: str) -> None:
    plant(root, dest, (root / src.lstrip("/")).read_bytes(), 0o755)


def _rcs_init0(root: Path) -> None:
    plant(root, "/etc/init.d/rcS", "#!/bin/sh\nfor i in /etc/init0.d/S??* ; do\n\t[ -x $i ] && $i start\ndone\n", 0o755)


def _trendnet(root: Path) -> None:
    _rcs_init0(root)
    plant(
        root,
        "/etc/init0.d/S80telnetd.sh",
        '#!/bin/sh\necho [$0]: $1 ... > /dev/console\nif [ "$1" = "start" ] && [ -f "/usr/sbin/login" ]; then\n'
        "\timage_sign=`cat /etc/config/image_sign`\n\ttelnetd -l /usr/sbin/login -u Alphanetworks:$image_sign -i br0 &\n"
        "else\n\tkillall telnetd\nfi\n",
        0o755,
    )
    plant(root, "/etc/config/image_sign", "wrgn49_dlob_dir600b\n")
    plant(root, "/usr/sbin/login", b"#!/bin/sh\nexec /bin/login\n", 0o755)


def _passwd_with(root: Path, line: str, shadow_line: str | None = None) -> None:
    passwd = (root / "etc/passwd").read_text() + line + "\n"
    plant(root, "/etc/passwd", passwd)
    if shadow_line is not None:
        plant(root, "/etc/shadow", (root / "etc/shadow").read_text() + shadow_line + "\n", 0o600)


def _shadow_root(root: Path, field_: str) -> None:
    lines = (root / "etc/shadow").read_text().splitlines()
    lines[0] = f"root:{field_}:19000:0:99999:7:::"
    plant(root, "/etc/shadow", "\n".join(lines) + "\n", 0o600)


def _keygen_openssh(root: Path) -> None:
    target = root / "root/.ssh/id_ed25519"
    target.parent.mkdir(parents=True, exist_ok=True)
    _run("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "vendor-support", "-f", str(target))


def _keygen_pem(root: Path) -> None:
    target = root / "etc/ssl/private/server.key"
    target.parent.mkdir(parents=True, exist_ok=True)
    _run("openssl", "genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:1024", "-out", str(target))


def _keygen_dropbear(root: Path) -> None:
    target = root / "etc/dropbear/dropbear_ecdsa_host_key"
    _run("dropbearkey", "-t", "ecdsa", "-s", "256", "-f", str(target))


def _keygen_putty(root: Path) -> None:
    target = root / "etc/vendor/support.ppk"
    target.parent.mkdir(parents=True, exist_ok=True)
    _run("puttygen", "-t", "ed25519", "-o", str(target), "--new-passphrase", "/dev/null", "-q")


def _keygen_pkcs12(root: Path) -> None:
    d = root / "etc/cert"
    d.mkdir(parents=True, exist_ok=True)
    _run("openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-subj", "/CN=rx200",
         "-days", "30", "-keyout", str(d / "k.pem"), "-out", str(d / "device.crt"))  # fmt: skip
    _run("openssl", "pkcs12", "-export", "-inkey", str(d / "k.pem"), "-in", str(d / "device.crt"), "-passout", "pass:",
         "-out", str(d / "device.p12"))  # fmt: skip
    (d / "k.pem").unlink()


def _keygen_der(root: Path) -> None:
    d = root / "etc/keys"
    d.mkdir(parents=True, exist_ok=True)
    _run("openssl", "genpkey", "-algorithm", "ED25519", "-outform", "DER", "-out", str(d / "device.der"))


def _authorized(root: Path) -> None:
    d = root / "root/.ssh"
    d.mkdir(parents=True, exist_ok=True)
    _run("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "support@vendor", "-f", str(root / "tmp/k"))
    plant(root, "/root/.ssh/authorized_keys", (root / "tmp/k.pub").read_text())
    (root / "tmp/k").unlink()
    (root / "tmp/k.pub").unlink()


def _htpasswd(root: Path) -> None:
    (root / "www").mkdir(exist_ok=True)
    _run("htpasswd", "-c", "-b", "-m", str(root / "www/.htpasswd"), "admin", "admin")


def _openwrt_telnet(root: Path) -> None:
    plant(root, "/etc/rc.common", "#!/bin/sh\n# OpenWrt rc.common\n", 0o755)
    plant(
        root,
        "/etc/init.d/telnet",
        "#!/bin/sh /etc/rc.common\nSTART=50\nUSE_PROCD=1\nstart_service() {\n\tprocd_open_instance\n"
        "\tprocd_set_param command /usr/sbin/telnetd -F -l /bin/login.sh\n\tprocd_close_instance\n}\n",
        0o755,
    )
    (root / "etc/rc.d").mkdir(exist_ok=True)
    (root / "etc/rc.d/S50telnet").symlink_to("../init.d/telnet")
    for name in ("S50dropbear", "S60httpd"):
        (root / "etc/rc.d" / name).symlink_to(f"../init.d/{name}")


def _systemd_diag(root: Path) -> None:
    plant(
        root,
        "/lib/systemd/system/diag.service",
        "[Unit]\nDescription=Diagnostics\n\n[Service]\nExecStart=/usr/sbin/httpd -f -p 8080 -h /diag\n\n[Install]\nWantedBy=multi-user.target\n",
    )
    d = root / "etc/systemd/system/multi-user.target.wants"
    d.mkdir(parents=True, exist_ok=True)
    (d / "diag.service").symlink_to("/lib/systemd/system/diag.service")


def _passwd_in_var(root: Path) -> None:
    (root / "etc/passwd").unlink()
    (root / "etc/passwd").symlink_to("/var/passwd")
    plant(
        root,
        "/etc/init.d/S10accounts",
        '#!/bin/sh\necho "root::0:0:root:/root:/bin/sh" > /var/passwd\necho "nobody:*:65534:65534::/:/bin/false" >> /var/passwd\n',
        0o755,
    )


@dataclass(frozen=True)
class Case:
    name: str
    build: Callable[[Path], None]
    expect: tuple[tuple[str, str], ...]  # (rule, path) that must be found
    agreement: bool = False
    geo: bool = False
    files: dict[str, str] = field(default_factory=dict)


def _files(files: dict[str, str], mode: int = 0o755) -> Callable[[Path], None]:
    def build(root: Path) -> None:
        for path, text in files.items():
            plant(root, path, text, mode)

    return build


CASES: tuple[Case, ...] = (
    Case("inittab-telnetd-shell", _files({"/etc/inittab": "::sysinit:/etc/init.d/rcS\n::respawn:/usr/sbin/telnetd -F -l /bin/sh -p 2323\n"}),
         (("service.shell-bind", "/etc/inittab"), ("service.insecure", "/etc/inittab"))),
    Case("trendnet-alphanetworks-telnetd", _trendnet,
         (("backdoor.known", "/etc/init0.d/S80telnetd.sh"), ("credential.hardcoded", "/etc/init0.d/S80telnetd.sh"),
          ("service.insecure", "/etc/init0.d/S80telnetd.sh"))),
    Case("rclocal-nc-bind-shell", _files({"/etc/rc.local": "#!/bin/sh\nnc -l -p 4444 -e /bin/sh &\nexit 0\n"}),
         (("service.shell-bind", "/etc/rc.local"),)),
    Case("cron-socat-shell", _files({"/etc/crontabs/root": "@reboot socat TCP-LISTEN:5555,reuseaddr,fork EXEC:/bin/sh,pty,stderr\n"}, 0o600),
         (("service.shell-bind", "/etc/crontabs/root"),)),
    Case("inetd-shell", _files({"/etc/inetd.conf": "9999 stream tcp nowait root /bin/sh sh -i\n"}, 0o644),
         (("service.shell-bind", "/etc/inetd.conf"),)),
    Case("tcpsvd-ftpd", _files({"/etc/init.d/S70ftp": "#!/bin/sh\ntcpsvd -vE 0.0.0.0 21 ftpd -w /\n"}),
         (("service.insecure", "/etc/init.d/S70ftp"),)),
    Case("console-askfirst-shell", _files({"/etc/inittab": "::sysinit:/etc/init.d/rcS\nttyS0::askfirst:-/bin/sh\n"}, 0o644),
         (("console.unauthenticated", "/etc/inittab"),)),
    Case("console-getty-shell", _files({"/etc/inittab": "::sysinit:/etc/init.d/rcS\nttyS0::respawn:/sbin/getty -n -l /bin/sh -L ttyS0 115200\n"}, 0o644),
         (("console.unauthenticated", "/etc/inittab"),)),
    Case("systemd-getty-autologin", _files({"/etc/systemd/system/serial-getty@ttyS0.service.d/autologin.conf": "[Service]\nExecStart=\nExecStart=-/sbin/agetty --autologin root --noclear %I 115200 linux\n"}, 0o644),
         (("console.unauthenticated", "/etc/systemd/system/serial-getty@ttyS0.service.d/autologin.conf"),)),
    Case("shadow-empty-root", lambda r: _shadow_root(r, ""), (("account.empty-password", "/etc/shadow"),)),
    Case("passwd-in-var-written-by-script", _passwd_in_var, (("account.empty-password", "/etc/init.d/S10accounts"),)),
    Case("default-config-empty-admin", _files({"/etc/defnodes/defaultvalue.xml": "<?xml version=\"1.0\"?>\r\n<postxml>\r\n\t<device>\r\n\t\t<account>\r\n\t\t\t<count>1</count>\r\n\t\t\t<entry>\r\n\t\t\t\t<name>admin</name>\r\n\t\t\t\t<password></password>\r\n\t\t\t\t<group>0</group>\r\n\t\t\t</entry>\r\n\t\t</account>\r\n\t</device>\r\n</postxml>\r\n"}, 0o644),
         (("account.empty-password", "/etc/defnodes/defaultvalue.xml"),)),
    Case("passwd-only-md5crypt", lambda r: _passwd_with(r, f"admin:{md5crypt(b'admin', b'8Xq1')}:0:0:admin:/root:/bin/sh"),
         (("account.default-password", "/etc/passwd"),)),
    Case("shadow-sha512-mirai", lambda r: _shadow_root(r, crypt_hash("xc3511", "$6$rounds=5000$abcdefgh$")),
         (("account.default-password", "/etc/shadow"),)),
    Case("passwd-des-support", lambda r: _passwd_with(r, f"support:{crypt_hash('support', 'Zx')}:0:0::/:/bin/sh"),
         (("account.default-password", "/etc/passwd"),)),
    Case("shadow-bcrypt-admin", lambda r: _passwd_with(r, "admin:x:0:0::/:/bin/sh", f"admin:{crypt_hash('admin', '$2b$05$abcdefghijklmnopqrstuu')}:19000::::::"),
         (("account.default-password", "/etc/shadow"),)),
    Case("htpasswd-apr1-admin", _htpasswd, (("account.default-password", "/www/.htpasswd"),)),
    Case("busybox-httpd-conf-plain", _files({"/etc/httpd.conf": "A:*\n/cgi-bin:admin:admin\n"}, 0o644),
         (("account.default-password", "/etc/httpd.conf"),)),
    Case("undeclared-account", lambda r: _passwd_with(r, "service:x:0:0::/root:/bin/sh", f"service:{crypt_hash('Kq8!vY2#pLm9', '$6$rounds=1000$qwertyui$')}:19000::::::"),
         (("account.undeclared", "/etc/passwd"),), agreement=True),
    Case("chpasswd-credential", _files({"/etc/init.d/S20setpw": '#!/bin/sh\necho "root:Sup3rS3cret!" | chpasswd\n'}),
         (("credential.hardcoded", "/etc/init.d/S20setpw"),)),
    Case("uci-password-credential", _files({"/etc/config/cloud": "config cloud 'main'\n\toption server 'mqtt.vendor-cloud.com'\n\toption password 'k8sHx!92la'\n"}, 0o644),
         (("credential.hardcoded", "/etc/config/cloud"),)),
    Case("url-credential-in-binary", lambda r: _elf_with(r, "/usr/bin/fwupload", b"ftp://fwupdate:Xq7pL2mz@upload.vendor-cloud.com/incoming/%s"),
         (("credential.hardcoded", "/usr/bin/fwupload"),)),
    Case("pem-rsa-private-key", _keygen_pem, (("key.private", "/etc/ssl/private/server.key"),)),
    Case("openssh-private-key", _keygen_openssh, (("key.private", "/root/.ssh/id_ed25519"),)),
    Case("dropbear-host-key", _keygen_dropbear, (("key.private", "/etc/dropbear/dropbear_ecdsa_host_key"),)),
    Case("putty-private-key", _keygen_putty, (("key.private", "/etc/vendor/support.ppk"),)),
    Case("pkcs12-bundle", _keygen_pkcs12, (("key.private", "/etc/cert/device.p12"),)),
    Case("pkcs8-der-key", _keygen_der, (("key.private", "/etc/keys/device.der"),)),
    Case("authorized-keys", _authorized, (("key.authorized", "/root/.ssh/authorized_keys"),)),
    Case("dropbear-blank-passwords", _files({"/etc/init.d/S50dropbear": "#!/bin/sh\n/usr/sbin/dropbear -B -R -p 22\n"}),
         (("service.insecure", "/etc/init.d/S50dropbear"),)),
    Case("systemd-undeclared-httpd", _systemd_diag, (("service.undeclared", "/lib/systemd/system/diag.service"),), agreement=True),
    Case("openwrt-procd-telnet", _openwrt_telnet, (("service.insecure", "/etc/init.d/telnet"),)),
    Case("xinetd-tftp", _files({"/etc/xinetd.d/tftp": "service tftp\n{\n\tsocket_type = dgram\n\tprotocol = udp\n\twait = yes\n\tuser = root\n\tserver = /usr/sbin/in.tftpd\n\tserver_args = -s /srv\n\tdisable = no\n}\n"}, 0o644),
         (("service.insecure", "/etc/xinetd.d/tftp"),)),
    Case("dlink-roodkcab", lambda r: _elf_with(r, "/usr/sbin/alphapd", b"xmlset_roodkcableoj28840ybtide"),
         (("backdoor.known", "/usr/sbin/alphapd"),)),
    Case("tenda-w302r-mfg", lambda r: _elf_with(r, "/bin/mfgd", b"w302r_mfg"), (("backdoor.known", "/bin/mfgd"),)),
    Case("sercomm-scmm", lambda r: _elf_with(r, "/usr/sbin/scfgmgr", b"ScMM\x00/bin/sh\x00"), (("backdoor.known", "/usr/sbin/scfgmgr"),)),
    Case("zyxel-zyfwp", _files({"/etc/zyxel/ftp/conf/system-default.conf": "username zyfwp password PrOw!aN_fXp user-type admin\n"}, 0o644),
         (("backdoor.known", "/etc/zyxel/ftp/conf/system-default.conf"),)),
    Case("undeclared-listener", lambda r: _copy(r, "/usr/sbin/dropbear", "/usr/sbin/diagd"),
         (("binary.listener", "/usr/sbin/diagd"),), agreement=True),
    Case("undeclared-endpoint", _files({"/etc/config/telemetry": "config telemetry\n\toption url 'https://telemetry.vendor-cloud.cn/v1/upload'\n"}, 0o644),
         (("endpoint.undeclared", "/etc/config/telemetry"),), agreement=True),
    Case("endpoint-outside-countries", _files({"/etc/ntp.conf": "server 45.83.12.9 iburst\n"}, 0o644),
         (("data.residency", "/etc/ntp.conf"),), agreement=True, geo=True),
)  # fmt: skip


def _clean_openwrt(root: Path) -> None:
    """OpenWrt style: procd dropbear enabled, telnet script present but not enabled, uhttpd config."""
    plant(root, "/etc/rc.common", "#!/bin/sh\n", 0o755)
    plant(
        root,
        "/etc/init.d/dropbear",
        "#!/bin/sh /etc/rc.common\nUSE_PROCD=1\nstart_service() {\n\tprocd_open_instance\n"
        "\tprocd_set_param command /usr/sbin/dropbear -F -P /var/run/dropbear.pid\n\tprocd_close_instance\n}\n",
        0o755,
    )
    plant(root, "/etc/init.d/telnet", "#!/bin/sh /etc/rc.common\nstart() {\n\ttelnetd -l /bin/login.sh\n}\n", 0o755)
    plant(root, "/etc/config/dropbear", "config dropbear\n\toption PasswordAuth 'on'\n\toption Port '22'\n")
    (root / "etc/rc.d").mkdir(exist_ok=True)
    (root / "etc/rc.d/S19dropbear").symlink_to("../init.d/dropbear")
    (root / "etc/rc.d/S60httpd").symlink_to("../init.d/S60httpd")
    plant(
        root,
        "/usr/share/doc/telnet.txt",
        "Enable telnet with: echo 'telnetd -l /bin/sh' >> /etc/rc.local (never do this)\n",
    )


def _clean_systemd(root: Path) -> None:
    """systemd style, certificates and public keys, a commented password, help files."""
    plant(
        root,
        "/lib/systemd/system/dropbear.service",
        "[Service]\nExecStart=/usr/sbin/dropbear -F -R -p 22\n# ExecStart=/usr/sbin/telnetd -F -l /bin/sh\n",
    )
    d = root / "etc/systemd/system/multi-user.target.wants"
    d.mkdir(parents=True, exist_ok=True)
    (d / "dropbear.service").symlink_to("/lib/systemd/system/dropbear.service")
    _run("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(root / "tmp/k"))
    plant(root, "/etc/dropbear/vendor_ca.pub", (root / "tmp/k.pub").read_text())
    (root / "tmp/k").unlink()
    (root / "tmp/k.pub").unlink()
    plant(
        root,
        "/etc/vendor/settings.conf",
        "# password = set on first boot by the user\nlanguage = en\npassword_min_length = 10\n",
    )
    plant(root, "/etc/wpa.conf", 'ctrl_interface=/var/run/wpa\n# psk="your passphrase here"\n')
    plant(
        root,
        "/usr/share/www/help.html",
        "<p>The default password is printed on the label; change password=admin at once.</p>\n",
    )
    plant(root, "/etc/scripts/setpw.sh", '#!/bin/sh\necho "$1:$2" | chpasswd\npassword=$1\n', 0o755)


CLEAN: tuple[tuple[str, Callable[[Path], None]], ...] = (
    ("clean-busybox-sysv", lambda r: None),
    ("clean-openwrt-procd", _clean_openwrt),
    ("clean-systemd-keys-docs", _clean_systemd),
)


# Firmware containers a corpus image is packed into, each by the Debian tool that makes it (all in
# debian-packages.txt): (name, shell command making {out} from the folder {root}).
CONTAINERS: tuple[tuple[str, str], ...] = (
    ("squashfs-xz", "mksquashfs {root} {out} -comp xz -all-root -noappend -quiet"),
    ("ext4", "mke2fs -q -t ext4 -d {root} {out} 64M"),
    ("cpio-gzip", "cd {root} && find . | cpio -o -H newc --quiet | gzip -9 > {out}"),
    ("tar-xz", "tar -C {root} -cJf {out} ."),
    ("jffs2", "mkfs.jffs2 -q -l -r {root} -o {out} -e 128KiB"),
    ("cramfs", "mkfs.cramfs -N little {root} {out} >/dev/null"),
    ("uimage-squashfs", "mksquashfs {root} {out}.sq -comp gzip -all-root -noappend -quiet && "
     "mkimage -A mips -O linux -T filesystem -C none -n rootfs -d {out}.sq {out} >/dev/null && rm {out}.sq"),
    ("ubi-ubifs", "mkfs.ubifs -r {root} -m 2048 -e 126976 -c 2048 -o {out}.ubifs && "
     "printf '[rootfs]\\nmode=ubi\\nimage={out}.ubifs\\nvol_id=0\\nvol_type=dynamic\\nvol_name=rootfs\\n' > {out}.ini && "
     "ubinize -o {out} -m 2048 -p 128KiB {out}.ini && rm {out}.ubifs {out}.ini"),
    ("jffs2-be", "mkfs.jffs2 -q -b -r {root} -o {out} -e 128KiB"),
    ("cramfs-be", "mkfs.cramfs -N big {root} {out} >/dev/null"),
)  # fmt: skip


def pack(root: Path, container: str) -> Path:
    """The folder ``root`` packed into the firmware container named ``container`` (see `CONTAINERS`)."""
    command = dict(CONTAINERS)[container]
    out = root.with_name(f"{root.name}.{container}")
    subprocess.run(["sh", "-c", command.format(root=root, out=out)], check=True, capture_output=True, timeout=300)
    return out


def build_case(base: Path, root: Path, build: Callable[[Path], None]) -> Path:
    clone(base, root)
    build(root)
    return root
