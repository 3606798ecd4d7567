"""Private keys, authorized_keys, credentials, endpoints and known-backdoor rules on real samples."""

from __future__ import annotations

import subprocess
from pathlib import Path

import yara_x

from nospy.firmware.backdoors import REQUIRED_META, builtin_rule_files, compile_rules
from nospy.firmware.credentials import find_credentials
from nospy.firmware.endpoints import find_endpoints
from nospy.firmware.keys import find_private_keys, parse_authorized_keys


def test_certificates_and_ca_bundle_are_not_private_keys(tmp_path: Path) -> None:
    bundle = Path("/etc/ssl/certs/ca-certificates.crt").read_bytes()
    assert find_private_keys(bundle, "ca-certificates.crt") == []
    req = ["openssl", "req", "-x509", "-newkey", "rsa:1024", "-nodes", "-subj", "/CN=t"]
    subprocess.run(
        [*req, "-keyout", str(tmp_path / "k"), "-out", str(tmp_path / "c.pem")], check=True, capture_output=True
    )
    assert find_private_keys((tmp_path / "c.pem").read_bytes(), "c.pem") == []
    subprocess.run(["openssl", "pkey", "-in", str(tmp_path / "k"), "-pubout", "-out", str(tmp_path / "p")], check=True)
    assert find_private_keys((tmp_path / "p").read_bytes(), "p") == []
    found = find_private_keys((tmp_path / "k").read_bytes(), "k")
    assert [(k.format, k.algorithm, k.bits) for k in found] == [("pem (PRIVATE KEY)", "rsa", 1024)]


def test_encrypted_and_openssh_keys(tmp_path: Path) -> None:
    key = tmp_path / "id"
    subprocess.run(["ssh-keygen", "-q", "-t", "rsa", "-b", "2048", "-N", "secret", "-f", str(key)], check=True)
    [found] = find_private_keys(key.read_bytes(), "id")
    assert (found.format, found.encrypted) == ("openssh", True)
    subprocess.run(["ssh-keygen", "-q", "-t", "ecdsa", "-N", "", "-m", "PEM", "-f", str(tmp_path / "ec")], check=True)
    [ec] = find_private_keys((tmp_path / "ec").read_bytes(), "ec")
    assert (ec.format, ec.algorithm, ec.encrypted) == ("pem (EC PRIVATE KEY)", "ecdsa-secp256r1", False)
    assert ec.fingerprint is not None and ec.fingerprint.startswith("SHA256:")


def test_dropbear_rsa_key_size(tmp_path: Path) -> None:
    subprocess.run(
        ["dropbearkey", "-t", "rsa", "-s", "1024", "-f", str(tmp_path / "k")], check=True, capture_output=True
    )
    [k] = find_private_keys((tmp_path / "k").read_bytes(), "k")
    assert (k.format, k.algorithm, k.bits) == ("dropbear", "ssh-rsa", 1024)


def test_key_strings_in_a_program_are_not_keys() -> None:
    """ssh-keygen carries the PEM armour lines as strings; no key body follows them."""
    assert find_private_keys(Path("/usr/bin/ssh-keygen").read_bytes(), "ssh-keygen") == []


def test_authorized_keys(tmp_path: Path) -> None:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "me@x", "-f", str(tmp_path / "k")], check=True)
    text = '# comment\nfrom="10.0.0.1",no-pty ' + (tmp_path / "k.pub").read_text() + "garbage\n"
    [(line, kind, fp, comment)] = parse_authorized_keys(text)
    expected = subprocess.run(
        ["ssh-keygen", "-lf", str(tmp_path / "k.pub")], capture_output=True, text=True, check=True
    )
    assert fp in expected.stdout
    assert (line, kind, comment) == (2, "ssh-ed25519", "me@x")


def test_credentials_few_false_positives() -> None:
    traps = (
        "# echo root:admin | chpasswd\n"
        'echo "$1:$2" | chpasswd\n'
        "password=$1\n"
        "PasswordAuthentication yes\n"
        "password_min_length = 10\n"
        "curl -u user:password https://x\n"
        'option password ""\n'
    )
    assert find_credentials(traps, binary=False) == []
    real = find_credentials("curl -u backup:Z9x!kq https://nas.vendor.com/\n", binary=False)
    assert [(c.pattern, c.user, c.secret, c.line) for c in real] == [("user-colon-pass", "backup", "Z9x!kq", 1)]


def test_endpoint_noise_removed() -> None:
    text = (
        "see http://www.gnu.org/licenses/ and https://www.example.com/x, server 192.0.2.1, 10.1.2.3\n"
        "BusyBox v1.35.0 release 2.6.36.4 Linux version 5.10.0 OID 1.2.3.4:int:5\n"
        "<a xmlns='http://etherx.jabber.org/streams'>\n"
        "update: https://fw.vendor-cloud.cn:8443/check and 8.8.8.8 pool.ntp.org libc.so.6 value.ir\n"
        "log.info(x) self.options.cloud yaml.org 1.4.0.7 123.45.67.89\n"
        "report bugs to https://bugs.vendor.com/ or see https://www.vendor.com/doc/manual.html\n"
        "vermagic=2.6.33.2 mod_unload; http://manufacturer.url.here my.domain.com\n"
    )
    got = {(h, k, p) for h, k, p, _ in find_endpoints(text)}
    assert got == {("fw.vendor-cloud.cn", "url", 8443), ("8.8.8.8", "ip", None), ("pool.ntp.org", "host", None)}


SAMPLES = {
    "dlink_roodkcab": b"GET / HTTP/1.1\r\nUser-Agent: xmlset_roodkcableoj28840ybtide\r\n",
    "sercomm_tcp32764": b"\x7fELF" + b"\x00" * 60 + b"ScMM\x00/bin/sh\x00",
    "tenda_w302r_mfg": b"w302r_mfg\x00",
    "netis_igdmptd": b"igdmptd\x00netcore\x00",
    "juniper_screenos_auth": b"<<< %s(un='%s') = %u",
    "fortinet_fortimanager_access": b"Fortimanager_Access\x00FGTAbc11*xy+Qqz27\x00",
    "zyxel_zyfwp": b"zyfwp\x00PrOw!aN_fXp\x00",
    "zyxel_zyad5001": b"su: zyad5001\n",
    "hikvision_auth_bypass": b"?auth=YWRtaW46MTEK",
    "xiongmai_opentelnet": b"OpenTelnet:OpenOnce\x00",
    "zte_airocon": b"%s airocon\x00",
    "netgear_telnetenable": b"AMBIT_TELNET_ENABLE+\x00",
    "tenda_fireitup": b"root:Fireitup\n",
    "fortinet_config_key": b"Mary had a littl",
    "alphanetworks_telnetd": b"telnetd -l /usr/sbin/login -u Alphanetworks:$image_sign -i br0 &",
    "cisco_iosxe_implant": b"location /webui/logoutconfirm.html?logon_hash=1 {",
}


def test_every_bundled_backdoor_rule_has_references_and_a_sample() -> None:
    files = builtin_rule_files()
    assert len(files) >= 15
    assert set(files) == set(SAMPLES)
    scanner = yara_x.Scanner(compile_rules())
    for name, sample in SAMPLES.items():
        assert {m.namespace for m in scanner.scan(sample).matching_rules} == {name}, name
        for key in REQUIRED_META:
            assert f"{key} = " in files[name], (name, key)


def test_clean_programs_match_no_backdoor_rule() -> None:
    scanner = yara_x.Scanner(compile_rules())
    for program in ("/bin/busybox", "/usr/sbin/dropbear", "/usr/bin/openssl", "/usr/bin/ssh-keygen"):
        assert scanner.scan(Path(program).read_bytes()).matching_rules == (), program
