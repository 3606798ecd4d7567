"""Rebuild ``default_credentials.json`` from its sources (run by hand when a source changes).

    python -m nospy.firmware.data.build_default_credentials DefaultCreds_db.json [VERSION]

``DefaultCreds_db.json`` is the database inside PyPI's ``defaultcreds-cheat-sheet`` wheel (MIT). The
other two sources are short enough to live here as data: the telnet credentials of the Mirai
botnet's scanner (``mirai/bot/scanner.c`` of the source released publicly in 2016, as reproduced in
every analysis of it) and router/ONT defaults printed in vendors' manuals and on device labels.
Credential pairs are facts, recorded with the source each came from.
"""

from __future__ import annotations

import datetime
import json
import sys
from pathlib import Path

# (user, password) pairs from Mirai's scanner.c, in its order; "" is its empty password.
MIRAI = [
    ("root", "xc3511"), ("root", "vizxv"), ("root", "admin"), ("admin", "admin"), ("root", "888888"),
    ("root", "xmhdipc"), ("root", "default"), ("root", "juantech"), ("root", "123456"), ("root", "54321"),
    ("support", "support"), ("root", ""), ("admin", "password"), ("root", "root"), ("root", "12345"),
    ("user", "user"), ("admin", ""), ("root", "pass"), ("admin", "admin1234"), ("root", "1111"),
    ("admin", "smcadmin"), ("admin", "1111"), ("root", "666666"), ("root", "password"), ("root", "1234"),
    ("root", "klv123"), ("Administrator", "admin"), ("service", "service"), ("supervisor", "supervisor"),
    ("guest", "guest"), ("guest", "12345"), ("admin1", "password"), ("administrator", "1234"),
    ("666666", "666666"), ("888888", "888888"), ("ubnt", "ubnt"), ("root", "klv1234"), ("root", "Zte521"),
    ("root", "hi3518"), ("root", "jvbzd"), ("root", "anko"), ("root", "zlxx."), ("root", "7ujMko0vizxv"),
    ("root", "7ujMko0admin"), ("root", "system"), ("root", "ikwb"), ("root", "dreambox"), ("root", "user"),
    ("root", "realtek"), ("root", "00000000"), ("admin", "1111111"), ("admin", "1234"), ("admin", "12345"),
    ("admin", "54321"), ("admin", "123456"), ("admin", "7ujMko0admin"), ("admin", "pass"), ("admin", "meinsm"),
    ("tech", "tech"),
]  # fmt: skip

# (product, user, password): defaults from vendors' manuals, labels and ISP guides.
ROUTER_DEFAULTS = [
    ("alphanetworks", "Alphanetworks", "wrgac25_dlink.2013gui_dir890l"),
    ("d-link", "admin", ""),
    ("d-link", "user", ""),
    ("netgear", "admin", "password"),
    ("netgear", "admin", "1234"),
    ("linksys", "admin", "admin"),
    ("linksys", "", "admin"),
    ("tp-link", "admin", "admin"),
    ("trendnet", "admin", "admin"),
    ("asus", "admin", "admin"),
    ("belkin", "admin", ""),
    ("tenda", "admin", "admin"),
    ("tenda", "root", "Fireitup"),
    ("zyxel", "admin", "1234"),
    ("zyxel", "supervisor", "zyad1234"),
    ("zyxel", "root", "zyad5001"),
    ("zyxel", "zyfwp", "PrOw!aN_fXp"),
    ("huawei ont", "telecomadmin", "admintelecom"),
    ("huawei ont", "root", "admin"),
    ("huawei", "admin", "Admin@huawei"),
    ("huawei", "root", "Huawei12#$"),
    ("zte ont", "admin", "admin"),
    ("zte ont", "user", "user"),
    ("zte", "root", "Zte521"),
    ("zte", "root", "zte9x15"),
    ("ubiquiti", "ubnt", "ubnt"),
    ("mikrotik", "admin", ""),
    ("openwrt", "root", ""),
    ("cisco", "cisco", "cisco"),
    ("cisco", "admin", "cisco"),
    ("juniper", "root", "Juniper"),
    ("juniper", "netscreen", "netscreen"),
    ("fortinet", "admin", ""),
    ("fortinet", "maintainer", "bcpb"),
    ("hikvision", "admin", "12345"),
    ("dahua", "admin", "admin"),
    ("dahua", "888888", "888888"),
    ("xiongmai", "root", "xmhdipc"),
    ("xiongmai", "default", "OxhlwSG8"),
    ("xiongmai", "root", "xc3511"),
    ("grandstream", "admin", "admin"),
    ("arris", "admin", "password"),
    ("technicolor", "admin", "admin"),
    ("sagemcom", "admin", "admin"),
    ("realtek sdk", "root", "realtek"),
    ("broadcom sdk", "root", "brcm2"),
    ("busybox default", "root", "root"),
]


def build(defaultcreds: Path, version: str) -> dict[str, object]:
    db = json.loads(defaultcreds.read_text())["_default"]
    seen: set[tuple[str, str]] = set()
    entries: list[dict[str, str]] = []

    def add(source: str, product: str, user: str, password: str) -> None:
        key = (user, password)
        if key not in seen:
            seen.add(key)
            entries.append({"source": source, "product": product, "user": user, "password": password})

    for user, password in MIRAI:
        add("mirai", "mirai telnet list", user, password)
    for product, user, password in ROUTER_DEFAULTS:
        add("router-defaults", product, user, password)
    for row in db.values():
        user = "" if row["username"] == "<blank>" else row["username"]
        password = "" if row["password"] == "<blank>" else row["password"]  # noqa: S105 - data, not a secret
        add("defaultcreds", row["product"], user, password)
    return {
        "version": version,
        "date": datetime.date.today().isoformat(),
        "sources": [
            {
                "id": "defaultcreds",
                "name": "defaultcreds-cheat-sheet 0.5.3.0 (PyPI), DefaultCreds_db.json",
                "url": "https://pypi.org/project/defaultcreds-cheat-sheet/",
                "licence": "MIT (copyright the DefaultCreds-cheat-sheet authors)",
            },
            {
                "id": "mirai",
                "name": "Mirai botnet scanner credential table (mirai/bot/scanner.c, public source release 2016)",
                "url": "https://www.usenix.org/conference/usenixsecurity17/technical-sessions/presentation/antonakakis",
                "licence": "facts (credential pairs), no licence claimed",
            },
            {
                "id": "router-defaults",
                "name": "router, ONT and camera defaults from vendors' manuals, device labels and CVE advisories",
                "url": "https://nvd.nist.gov/vuln/detail/CVE-2020-29583",
                "licence": "facts (credential pairs), no licence claimed",
            },
        ],
        "entries": entries,
    }


def main() -> None:
    out = Path(__file__).with_name("default_credentials.json")
    version = sys.argv[2] if len(sys.argv) > 2 else datetime.date.today().strftime("%Y.%m.%d")
    data = build(Path(sys.argv[1]), version)
    out.write_text(json.dumps(data, indent=0, ensure_ascii=False) + "\n")
    entries = data["entries"]
    assert isinstance(entries, list)  # noqa: S101 - built just above
    print(f"wrote {out}: {len(entries)} entries")  # noqa: T201 - a build tool reports what it wrote


if __name__ == "__main__":
    main()
