"""The traffic rules in `nospy check` and the `nospy traffic` command, on the real samples."""

from __future__ import annotations

import ipaddress
import json
from pathlib import Path

import pytest

from nospy.agreement import Agreement
from nospy.cli import run
from nospy.findings import Target
from nospy.traffic.geo import TorGeolocator
from nospy.traffic.rules import TrafficSource, host_matches
from nospy.verify import check
from serverlib import EXAMPLE_AGREEMENT, new_token, running, submit, wait_finished
from traffic_tools import v5_datagram, write_mmdb

BASE = {"nospy": 1, "id": "t", "title": "t", "vendor": "v", "customer": "c"}


def agreement(**sections: object) -> Agreement:
    return Agreement.model_validate({**BASE, **sections})


@pytest.fixture(scope="module")
def geo() -> TorGeolocator:
    return TorGeolocator()


def test_residency_and_endpoints_on_the_pcapng_sample(shared: Path, geo: TorGeolocator) -> None:
    capture = shared / "traffic" / "zeek_redis_django-cloud.pcapng"
    src = TrafficSource(capture, lambda: geo)
    a = agreement(data={"countries": ["IN"]}, endpoints=[{"host": "update.acme.example", "port": 443}])
    report = check(a, [src], Target(path="a.yaml"))
    verdicts = {v.clause.value: v.status.value for v in report.verdicts}
    assert verdicts == {"backdoors": "not-checked", "endpoints": "fail", "data": "fail"}
    rules = sorted(f.rule for f in report.findings)
    # the reply to the private client is inbound, not egress: one destination, one finding per rule
    assert rules == ["data.residency", "traffic.undeclared-endpoint"]
    residency = next(f for f in report.findings if f.rule == "data.residency")
    ev = residency.evidence
    assert (ev["address"], ev["country"], ev["packets"], ev["bytes"]) == ("18.234.186.95", "US", 316, 34538)
    assert ev["geolocation"]["name"] == "IPFire Location (Debian tor-geoipdb)"
    assert ev["geolocation"]["date"] == geo.describe().date
    assert ev["flows"][0]["dport"] == 10625
    assert report.sources[0].kind == "traffic" and report.sources[0].sha256
    assert report.inventory[src.label]["excluded"]["inbound"] == 1


def test_declared_cidr_and_country_pass(shared: Path, geo: TorGeolocator) -> None:
    capture = shared / "traffic" / "zeek_redis_django-cloud.pcapng"
    a = agreement(data={"countries": ["US"]}, endpoints=[{"cidr": "18.232.0.0/14", "protocol": "tcp"}])
    report = check(a, [TrafficSource(capture, lambda: geo)], Target(path="a.yaml"))
    assert {v.clause.value: v.status.value for v in report.verdicts} == {
        "backdoors": "not-checked",
        "endpoints": "pass",
        "data": "pass",
    }


def test_declared_host_matches_through_dns_answers(shared: Path, geo: TorGeolocator) -> None:
    capture = shared / "traffic" / "zeek_wikipedia.pcap"
    a = agreement(endpoints=[{"host": "*.wikimedia.org", "port": 80}])
    report = check(a, [TrafficSource(capture, lambda: geo, [ipaddress.ip_network("141.142.0.0/16")])], Target(path="a"))
    undeclared = {f.evidence["address"] for f in report.findings}
    # the Wikimedia servers were named by DNS answers in the capture; what is left is not web traffic to them
    assert not undeclared & {"208.80.152.2", "208.80.152.3"}
    a2 = agreement(endpoints=[{"host": "*.example.org"}])
    report2 = check(a2, [TrafficSource(capture, lambda: geo)], Target(path="a"))
    assert "208.80.152.3" in {f.evidence["address"] for f in report2.findings}
    hit = next(f for f in report2.findings if f.evidence["address"] == "208.80.152.3")
    assert "upload.wikimedia.org" in hit.evidence["names"]


def test_host_patterns() -> None:
    assert host_matches("*.acme.example", "eu.update.acme.example")
    assert not host_matches("*.acme.example", "acme.example")
    assert host_matches("update.acme.example", "UPDATE.acme.example.")
    assert not host_matches("update.acme.example", "evilupdate.acme.example")


def test_private_destination_outside_local_fails_closed(tmp_path: Path, geo: TorGeolocator) -> None:
    """A private destination reached from a private source could be a tunnel to anywhere."""
    log = tmp_path / "conn.log"
    log.write_text(
        "#separator \\x09\n#fields\tts\tid.orig_h\tid.orig_p\tid.resp_h\tid.resp_p\tproto\torig_pkts\torig_ip_bytes\n"
        "1700000000.0\t10.0.0.2\t4000\t10.9.9.9\t443\ttcp\t5\t900\n"
        "1700000001.0\t10.0.0.2\t4001\t13.232.1.1\t443\ttcp\t5\t700\n"
    )
    a = agreement(data={"countries": ["IN"]})
    report = check(a, [TrafficSource(log, lambda: geo)], Target(path="a"))
    assert [(f.evidence["address"], f.evidence["geolocation_status"]) for f in report.findings] == [
        ("10.9.9.9", "private")
    ]
    local = TrafficSource(log, lambda: geo, [ipaddress.ip_network("10.0.0.0/8")])
    report2 = check(a, [local], Target(path="a"))
    assert report2.findings == []
    assert report2.verdicts[1].status.value == "pass"


def test_cli_traffic_json_and_check(shared: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    capture = str(shared / "traffic" / "zeek_redis_django-cloud.pcapng")
    assert run(["traffic", capture, "--format", "json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["summary"]["by_country"][0]["country"] == "US"
    assert out["summary"]["by_destination"][0]["address"] == "18.234.186.95"
    assert out["summary"]["geolocation"]["licence"] == "CC BY-SA 4.0"
    (tmp_path / "a.yaml").write_text("nospy: 1\nid: t\ntitle: t\nvendor: v\ncustomer: c\ndata: {countries: [IN]}\n")
    assert run(["traffic", capture, "--agreement", str(tmp_path / "a.yaml")]) == 1
    assert "data.residency" in capsys.readouterr().out
    code = run(["check", str(tmp_path / "a.yaml"), "--traffic", capture, "--format", "json"])
    report = json.loads(capsys.readouterr().out)
    assert code == 1
    assert report["findings"][0]["rule"] == "data.residency"
    assert report["verdicts"][1] == {
        "clause": "data",
        "status": "fail",
        "findings": [0],
        "checked_by": [f"traffic:{capture}"],
    }
    assert run(["traffic", str(tmp_path / "a.yaml")]) == 2  # not a capture
    capsys.readouterr()


def test_dns_from_one_capture_names_flows_in_another(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Suricata's DNS answers name the address that the NetFlow records only know by number."""
    eve = tmp_path / "eve.json"
    eve.write_text(
        json.dumps(
            {
                "event_type": "dns",
                "dns": {"answers": [{"rrname": "update.acme.example", "rrtype": "A", "rdata": "13.232.1.1"}]},
            }
        )
        + "\n"
    )
    nf = tmp_path / "flows.v5"
    nf.write_bytes(v5_datagram([("10.0.0.1", "13.232.1.1", 40000, 443, 6, 10, 5000)]))
    (tmp_path / "a.yaml").write_text(
        "nospy: 1\nid: t\ntitle: t\nvendor: v\ncustomer: c\ndata: {countries: [IN]}\n"
        "endpoints: [{host: update.acme.example, port: 443, protocol: tcp}]\n"
    )
    args = ["check", str(tmp_path / "a.yaml"), "--traffic", str(nf), "--traffic", str(eve), "--format", "json"]
    assert run(args) == 0
    report = json.loads(capsys.readouterr().out)
    assert [(v["clause"], v["status"]) for v in report["verdicts"]] == [
        ("backdoors", "not-checked"),
        ("endpoints", "pass"),
        ("data", "pass"),
    ]
    assert run(["check", str(tmp_path / "a.yaml"), "--traffic", str(nf), "--format", "json"]) == 1
    assert json.loads(capsys.readouterr().out)["findings"][0]["rule"] == "traffic.undeclared-endpoint"


def test_cli_geoip_mmdb(shared: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "c.mmdb"
    write_mmdb(db, [("18.232.0.0/14", {"country": {"iso_code": "IN"}})])
    capture = str(shared / "traffic" / "zeek_redis_django-cloud.pcapng")
    assert run(["traffic", capture, "--geoip", str(db), "--format", "json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["summary"]["geolocation"]["name"].startswith("nospy-test-country")
    assert out["summary"]["by_country"][0]["country"] == "IN"
    assert run(["traffic", capture, "--geoip", str(tmp_path / "missing.mmdb")]) == 2
    capsys.readouterr()


def test_served_check_with_a_capture(shared: Path, tmp_path: Path) -> None:
    """`nospy serve` takes a capture as traffic evidence, through the same evidence sources as `check`."""
    pcapng = (shared / "traffic" / "zeek_redis_django-cloud.pcapng").read_bytes()
    with running(tmp_path / "serve") as server:
        token = new_token(server.data, "traffic-tests")
        files = [
            ("agreement", ("agreement.yaml", EXAMPLE_AGREEMENT.read_bytes())),
            ("traffic", ("django.pcapng", pcapng)),
        ]
        r = submit(server.url, token, files)
        assert r.status_code == 202, r.text
        done = wait_finished(server.url, r.json()["id"], token)
    assert done["state"] == "done", done
    verdicts = {v["clause"]: v["status"] for v in done["verdicts"]}
    assert verdicts["data"] == "fail" and verdicts["endpoints"] == "fail"
