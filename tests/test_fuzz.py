"""Every fuzz target in fuzz/targets.py, under hypothesis: only NospyError may escape."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nospy.agreement import template
from nospy.errors import NospyError

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "fuzz"))
import contextlib
import gzip

import targets

from traffic_tools import ipfix_message, v5_datagram, v9_packet
from traffic_tools import template as flow_template

_TRAFFIC = Path(__file__).resolve().parents[2] / "shared" / "traffic"


def _sample(name: str, size: int) -> bytes:
    path = _TRAFFIC / name
    return path.read_bytes()[:size] if path.exists() else b""


_T5 = flow_template(256, [(8, 4), (12, 4), (7, 2), (11, 2), (4, 1), (1, 4), (2, 4), (22, 4), (21, 4)])
_R5 = bytes(range(25))

_EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
_DEPLOYMENT = Path(__file__).resolve().parent / "data" / "deployment"
# a checkpoint of a 2-entry log ("d", "e") signed with the signed-note vector key above
_CHECKPOINT = "PeterNeumann\n2\noC0T2p7jrhuFplnk3f2HWD47MBbx2LewPQf6gaa5qEc=\n\n\u2014 PeterNeumann x08go1PXJAkKd/de4PCXNyZQIejNGLM1/9K5i6vPiL1YTLMJ5iU/Wr8vK7AYgU32sAFbhSqLsqX7Osxbkax0QMVQuQA=\n"
_FIRMWARE_KEY = (
    b"-----BEGIN EC PRIVATE KEY-----\nMHcCAQEEIGm3rWb0xC0Y9zFJrZVgfgMBl2zNNcLqSu4cX6Kc3aZ+oAoGCCqGSM49\n"
    b"AwEHoUQDQgAE3N5y0Ue4GcYKNCvY7FS3RrkE6WjNq6u4pUXG9y9pcVXb3f0fYwRb\nPQ6QkGm2kUf9ib6Nm0RxxwDuE8b3CGDAjA==\n"
    b"-----END EC PRIVATE KEY-----\nssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl x\n"
)

SEEDS = {
    "traffic_dns_response": bytes.fromhex("abcd81800001000200000000")
    + b"\x03www\x07example\x00\x00\x01\x00\x01"
    + b"\xc0\x0c\x00\x05\x00\x01\x00\x00\x00\x3c\x00\x06\x03cdn\xc0\x10"
    + b"\xc0\x29\x00\x01\x00\x01\x00\x00\x00\x3c\x00\x04\x0d\xe8\x00\x01",
    "traffic_any": gzip.compress(b"\n".join(_sample("zat_conn.log", 4000).split(b"\n")[:12])),
    "traffic_pcap": _sample("zeek_wikipedia.pcap", 3000),
    "traffic_pcapng": _sample("zeek_redis_django-cloud.pcapng", 3000),
    "traffic_netflow_v5": v5_datagram([("10.0.0.1", "13.232.0.1", 1000, 443, 6, 7, 700)] * 2),
    "traffic_netflow_v9": v9_packet([(0, _T5), (256, _R5 * 2)]),
    "traffic_ipfix": ipfix_message([(2, flow_template(256, [(8, 4), (12, 4), (96, 0xFFFF), (1, 4)]))])
    + ipfix_message([(256, b"\x0a\0\0\x01\x0d\xe8\0\x01\x02hi\0\0\0\x05" * 2)]),
    "traffic_zeek_conn": b"\n".join(_sample("zat_conn.log", 4000).split(b"\n")[:12]),
    "traffic_zeek_conn_json": b'{"ts":1.5,"id.orig_h":"10.0.0.1","id.orig_p":1,"id.resp_h":"13.232.0.1","id.resp_p":443,'
    b'"proto":"tcp","orig_pkts":2,"orig_ip_bytes":100,"resp_pkts":1,"resp_ip_bytes":60}\n',
    "traffic_suricata_eve": b'{"event_type":"flow","src_ip":"10.0.0.2","dest_ip":"13.232.1.1","src_port":1,"dest_port":443,'
    b'"proto":"TCP","flow":{"pkts_toserver":1,"bytes_toserver":60,"start":"2024-01-01T00:00:00+0000"}}\n'
    b'{"event_type":"dns","dns":{"answers":[{"rrname":"a.example","rrtype":"A","rdata":"13.232.1.1"}]}}\n',
    "traffic_nfdump_csv": b"ts,te,td,sa,da,sp,dp,pr,flg,fwd,stos,ipkt,ibyt,opkt,obyt\n"
    b"2024-01-01 00:00:00,2024-01-01 00:00:01,1.0,10.0.0.1,13.232.0.1,1,443,TCP,......,0,0,2,100,0,0\nSummary\n",
    "agreement_yaml": template().encode(),
    "agreement_payload": b'{"nospy":1,"id":"a","title":"t","vendor":"v","customer":"c","services":[{"name":"s","port":22}]}',
    "dsse_envelope": b'{"payload":"e30=","payloadType":"t","signatures":[{"keyid":"k","sig":"AAAA"}]}',
    "verifier_key": b"PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
    "signing_key": b"PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz",
    "inventory_csv": (_EXAMPLES / "devices.csv").read_bytes(),
    "inventory_json": (_DEPLOYMENT / "netbox-devices.json").read_bytes(),
    "inventory_yaml": b"devices:\n  - {name: r1, manufacturer: ACME, role: core, site: s1, tags: [a]}\n",
    "zones_yaml": (_EXAMPLES / "zones.yaml").read_bytes(),
    "terraform_plan": (_EXAMPLES / "plan.json").read_bytes(),
    "terraform_state": (_DEPLOYMENT / "terraform.tfstate").read_bytes(),
    "fleet_list": b"# RX200 releases\nrx200-1.0.bin\n\n  ./rx200-1.0.bin\n",
    "upload_filename": b"../../etc/passwd\\..\\x\x00\x1b[31m.yaml",
    "firmware_accounts": b"root:x:0:0:root:/root:/bin/sh\nroot:$1$ab$cdefghijklmnopqrstuvw.:19000:0:99999:7:::\nadmin:$apr1$x$y\n",
    "firmware_inittab": b"::sysinit:/etc/init.d/rcS\nttyS0::askfirst:-/bin/sh\n::respawn:/sbin/getty -L ttyS0 115200\n",
    "firmware_init_script": (
        b"#!/bin/sh\nPORT=23\nx=`cat /etc/f`\ncase $1 in start) telnetd -l /bin/sh -p $PORT & ;; esac\n"
        b"cat <<EOF\nhello\nEOF\nstart-stop-daemon -S -x /sbin/d -- -p 1 2>/dev/null | nc -l -p 9 -e sh\n"
    ),
    "firmware_service_configs": (
        b"telnet stream tcp nowait root /usr/sbin/telnetd telnetd -l /bin/sh\nservice tftp\n{\n server = /sbin/tftpd\n}\n"
        b"[Service]\nExecStart=/usr/sbin/dropbear -F\n@reboot root nc -l -p 1 -e /bin/sh\n"
    ),
    "firmware_keys": _FIRMWARE_KEY,
    "firmware_elf": Path("/usr/bin/dropbearkey").read_bytes()[:4096],
    "firmware_strings": (
        b"echo \"root:pw1234\" | chpasswd\ncurl -u a:b https://x.example.cn/\noption password 's3cr3t!'\n"
        b"http://u:p@8.8.8.8:80/ pool.ntp.org 203.0.113.9 version 1.2.3.4\n"
    ),
    "signed_note": "text\n\n\u2014 PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n".encode(),
    "log_checkpoint": _CHECKPOINT.encode(),
    "cosigner_key": b"PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
    "tile_path": b"tile/entries/x001/x234/067.p/8",
    "entry_bundle": b"\x00\x3e" + bytes(62),  # one 62-byte entry, and also two 32-byte hashes
    "tlog_proof": (
        "c2sp.org/tlog-proof@v1\nextra ZQ==\nindex 1\n0HDcW42prqfcD1rUwp2JllIABZyaDOyjq9XaJJLctx0=\n\n" + _CHECKPOINT
    ).encode(),
    "release_manifest": (  # nospy release of a 2-byte image, signed with the vector key
        b'{"payload":"eyJfdHlwZSI6Imh0dHBzOi8vaW4tdG90by5pby9TdGF0ZW1lbnQvdjEiLCJwcmVkaWNhdGUiOnsicHJvZHVjdCI6ImFjbWUt'
        b"cngyMDAiLCJ2ZXJzaW9uIjoiMS4wIn0sInByZWRpY2F0ZVR5cGUiOiJodHRwczovL25vc3B5LmRldi9yZWxlYXNlL3YxIiwic3ViamVjdCI6"
        b"W3siZGlnZXN0Ijp7InNoYTI1NiI6IjA3ZjdhYjQ3NmJjM2E4M2ZhZDYzOWQzNGEwMTJjYjRhNWY4NTk0NDFmMGQyNGMxMTYyN2NhOTY2OTY4"
        b'MzkwMTIifSwibmFtZSI6ImZ3LmJpbiJ9XX0=","payloadType":"application/vnd.in-toto+json","signatures":[{"keyid":'
        b'"PeterNeumann+c74f20a3","sig":"ZZMOo6Lk8FEdCmdZ1trlqb91OzwxNGLTrqpK44kYnoFXiILQ/6OePt8gheo6SiMqEhtoz3vXTlGasEbBt'
        b'vAnAw=="}]}'
    ),
    # a level-0 tile of the 2-entry log's leaves, then a bundle of one entry: read as either
    "monitor_log_step": b"\x02" + b"\x00\x01d" * 3,
    "monitor_image_name": b"../../etc/passwd/rx200\x00.bin",
    "witness_add_checkpoint": ("old 1\nKCSnzNosqnIMhcn7oei1tzXuz9sDh45Pjf5sNiUDC8Q=\n\n" + _CHECKPOINT).encode(),
}
# the unpacker's handlers: one tiny image per format, built by tests/data/fuzz/make.sh
_UNPACK_SEEDS = Path(__file__).parent / "data" / "fuzz"
SEEDS |= {f"unpack_{p.stem}": p.read_bytes() for p in _UNPACK_SEEDS.glob("*.bin") if not p.stem.endswith("-be")}
# handlers of both byte orders: one seed of each, one after the other
SEEDS["unpack_cramfs"] = (_UNPACK_SEEDS / "cramfs.bin").read_bytes() + (_UNPACK_SEEDS / "cramfs-be.bin").read_bytes()
SEEDS["unpack_squashfs3"] += (_UNPACK_SEEDS / "squashfs2-be.bin").read_bytes()  # 3.x LZMA, then 2.x big-endian
SEEDS["unpack_image"] = (_UNPACK_SEEDS / "tplink.bin").read_bytes() + (_UNPACK_SEEDS / "jffs2-be.bin").read_bytes()


def _mutations(seed: bytes) -> st.SearchStrategy[bytes]:
    """Random bytes, and the seed with bytes flipped, cut or spliced: most of the format survives."""

    def mutate(data: tuple[list[tuple[int, int]], int]) -> bytes:
        flips, cut = data
        out = bytearray(seed)
        for pos, val in flips:
            if out:
                out[pos % len(out)] = val
        return bytes(out[: max(0, len(out) - cut)])

    flips = st.lists(st.tuples(st.integers(0, 1 << 16), st.integers(0, 255)), max_size=8)
    return st.one_of(st.binary(max_size=4096), st.tuples(flips, st.integers(0, len(seed))).map(mutate))


@pytest.mark.parametrize("name", sorted(targets.TARGETS))
def test_fuzz_target(name: str) -> None:
    assert name in SEEDS, f"fuzz target {name} has no seed"
    target: Callable[[bytes], None] = targets.TARGETS[name]

    @settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(_mutations(SEEDS[name]))
    def check(data: bytes) -> None:
        with contextlib.suppress(NospyError):
            target(data)

    check()
