"""Boot-time commands and how services and consoles are read from them."""

from __future__ import annotations

from pathlib import Path

import pytest

from nospy.firmware.boot import parse_crontab, parse_inetd, parse_inittab, parse_script, parse_xinetd, unwrap
from nospy.firmware.context import Context
from nospy.firmware.services import _getopt, _nc, _socat, _telnetd
from nospy.firmware.tree import DirectoryTree


def test_script_commands_skip_comments_echo_and_heredocs() -> None:
    text = (
        "#!/bin/sh\n"
        "# telnetd -l /bin/sh\n"
        'echo "telnetd -l /bin/sh" > /tmp/howto\n'
        "cat <<EOF > /tmp/help\n"
        "telnetd -p 23\n"
        "EOF\n"
        "PORT=2323\n"
        "utelnetd -p $PORT -l /bin/sh 2>/dev/null &  # really\n"
        "[ -x /bin/x ] && nohup /usr/sbin/dropbear -p 22 || exit 1\n"
        'case "$1" in telnetd) killall telnetd ;; esac\n'
        "start-stop-daemon -S -b -x /usr/sbin/httpd -- -p 8080\n"
        "sh -c 'nc -l -p 9 -e /bin/sh'\n"
    )
    commands, variables = parse_script(text)
    argvs = [c.argv for c in commands]
    assert ("utelnetd", "-p", "2323", "-l", "/bin/sh") in argvs
    assert ("/usr/sbin/dropbear", "-p", "22") in argvs
    assert ("/usr/sbin/httpd", "-p", "8080") in argvs
    assert ("nc", "-l", "-p", "9", "-e", "/bin/sh") in argvs
    assert not any(a[0] in ("telnetd", "echo", "cat") and "-l" in a for a in argvs)
    assert not any(a == ("telnetd",) for a in argvs)  # the case label
    assert variables["PORT"] == "2323"
    assert next(c.line for c in commands if c.argv[0] == "utelnetd") == 8


def test_cat_substitution_is_recorded() -> None:
    _, variables = parse_script("image_sign=`cat /etc/config/image_sign`\nx=$(cat /etc/y)\n")
    assert variables == {"image_sign": "@file:/etc/config/image_sign", "x": "@file:/etc/y"}


def test_unwrap() -> None:
    assert unwrap(["nice", "-n", "10", "env", "A=1", "telnetd", "-F"]) == ["telnetd", "-F"]
    assert unwrap(["start-stop-daemon", "--start", "--exec", "/sbin/x", "--", "-a"]) == ["/sbin/x", "-a"]


def test_inittab_inetd_xinetd_crontab() -> None:
    it = parse_inittab("# c\n::sysinit:/etc/init.d/rcS\nttyS0::askfirst:-/bin/sh\nbad\n")
    assert [(i.id, i.action, i.process, i.line) for i in it] == [
        ("", "sysinit", "/etc/init.d/rcS", 2),
        ("ttyS0", "askfirst", "-/bin/sh", 3),
    ]
    inetd = parse_inetd(
        "#telnet stream tcp nowait root /usr/sbin/telnetd telnetd\nftp stream tcp nowait root /usr/sbin/ftpd ftpd -w\necho stream tcp nowait root internal\n"
    )
    assert [(i.service, i.argv) for i in inetd] == [("ftp", ("/usr/sbin/ftpd", "-w"))]
    x = parse_xinetd("service telnet\n{\n disable = yes\n server = /usr/sbin/in.telnetd\n}\n")
    assert x[0].name == "telnet" and x[0].attrs["disable"] == "yes"
    cron = parse_crontab("*/5 * * * * /usr/bin/check\n@reboot root nc -l -p 1 -e /bin/sh\n", with_user=True)
    assert cron == [(("nc", "-l", "-p", "1", "-e", "/bin/sh"), 2)]


@pytest.mark.parametrize(
    ("args", "port", "shell"),
    [
        (("-l", "/bin/sh", "-p", "2323"), 2323, "/bin/sh"),
        (("-F", "-l", "/bin/login"), None, None),
        (("-p2323", "-l/bin/ash"), 2323, "/bin/ash"),
        (
            (
                "-b",
                "0.0.0.0:24",
            ),
            24,
            None,
        ),
    ],
)
def test_telnetd_arguments(args: tuple[str, ...], port: int | None, shell: str | None) -> None:
    parsed = _telnetd(args)
    assert (parsed.port, parsed.shell) == (port, shell)


def test_netcat_and_socat() -> None:
    assert _nc(("-lp", "4444", "-e", "/bin/sh")).shell == "/bin/sh"
    assert _nc(("-lvnp", "4444")).port == 4444
    assert not _nc(("example.org", "80")).listening
    s = _socat(("TCP4-LISTEN:5555,fork", "EXEC:/bin/bash,pty"))
    assert (s.port, s.shell) == (5555, "/bin/bash")
    assert not _socat(("-", "TCP:example.org:80")).listening
    opts, rest = _getopt(("-abc", "-p", "1", "x"), "p")
    assert opts["a"] == [""] and opts["p"] == ["1"] and rest == ["x"]


def test_busybox_without_inittab_has_a_console_shell(tmp_path: Path) -> None:
    """BusyBox init's built-in table runs askfirst /bin/sh when /etc/inittab is missing."""
    from nospy.firmware.services import CONSOLES

    root = tmp_path / "r"
    (root / "sbin").mkdir(parents=True)
    (root / "bin").mkdir()
    (root / "bin/busybox").write_bytes(Path("/bin/busybox").read_bytes())
    (root / "sbin/init").symlink_to("../bin/busybox")
    findings = CONSOLES.run(Context(DirectoryTree(root), None))
    assert {(f.rule, f.path) for f in findings} == {("console.unauthenticated", "/sbin/init")}


def test_sysv_rc_links_decide_which_init_scripts_start(tmp_path: Path) -> None:
    from nospy.firmware.services import SERVICES

    root = tmp_path / "r"
    for d in ("etc/init.d", "etc/rc2.d", "usr/sbin", "bin"):
        (root / d).mkdir(parents=True)
    (root / "bin/busybox").write_bytes(Path("/bin/busybox").read_bytes())
    (root / "etc/init.d/telnetd").write_text("#!/bin/sh\ntelnetd -l /bin/login\n")
    (root / "etc/init.d/dropbear").write_text("#!/bin/sh\n/usr/sbin/dropbear -p 22\n")
    (root / "etc/rc2.d/S01dropbear").symlink_to("../init.d/dropbear")
    ctx = Context(DirectoryTree(root), None)
    findings = SERVICES.run(ctx)
    assert [(f.rule, f.path, f.evidence["program"]) for f in findings] == [
        ("inventory.service", "/etc/init.d/dropbear", "dropbear")
    ]
