"""nfdump's CSV output (``nfdump -r FILE -o csv``, nfdump 1.6/1.7): columns by the header line's names.

Rows use ``ts``/``te`` (start and end, ``YYYY-MM-DD hh:mm:ss[.mmm]`` in the time zone nfdump ran in;
read as UTC, so run nfdump with ``TZ=UTC``), ``sa``/``da``, ``sp``/``dp``, ``pr`` (a name such as
``TCP`` or a number), ``ipkt``/``ibyt`` and, for bidirectional records, ``opkt``/``obyt`` (the reverse
direction becomes a second flow). The trailing ``Summary`` block and "No matching flows" are skipped.
"""

from __future__ import annotations

import csv
import io

from nospy.traffic._text import PROTOCOLS, FlowRows, parse_time
from nospy.traffic.interface import Buffer, Capture, Reader, TrafficError

__all__ = ["NfdumpCsvReader"]

_NEEDED = ("ts", "te", "sa", "da", "sp", "dp", "pr", "ipkt", "ibyt")


def _count(text: str) -> int:
    text = text.strip()
    if not text:
        return 0
    # nfdump may scale big counters ("1.2 M") in some output modes; CSV mode writes plain integers
    return int(float(text))


class NfdumpCsvReader(Reader):
    NAME = "nfdump-csv"
    DOC = "nfdump CSV output (nfdump -o csv)"

    @classmethod
    def sniff(cls, head: bytes) -> bool:
        return head.startswith(b"ts,te,td,sa,da,sp,dp,pr")

    def read(self, data: Buffer) -> Capture:
        lines = data.tobytes().decode("utf-8", "replace").splitlines()
        if not lines or not lines[0].startswith("ts,"):
            raise TrafficError("not nfdump CSV: no ts,te,... header")
        header = lines[0].split(",")
        if any(n not in header for n in _NEEDED):
            raise TrafficError(f"nfdump CSV header lacks {[n for n in _NEEDED if n not in header]}")
        col = {n: header.index(n) for n in header}
        rows = FlowRows()
        for lineno, values in enumerate(csv.reader(io.StringIO("\n".join(lines[1:]))), 2):
            if not values or values[0] in ("Summary", "No matching flows") or values[0].startswith("flows"):
                if values and values[0] == "Summary":
                    break
                continue
            if len(values) < len(header):
                rows.bad(f"line {lineno}", f"{len(values)} columns where the header names {len(header)}")
                continue
            try:
                pr = values[col["pr"]].strip()
                proto = int(pr) if pr.isdigit() else PROTOCOLS.get(pr.lower(), 0)
                start, end = parse_time(values[col["ts"]]), parse_time(values[col["te"]])
                sa, da = values[col["sa"]], values[col["da"]]
                sp, dp = _count(values[col["sp"]]), _count(values[col["dp"]])
                rows.add(sa, da, sp, dp, proto, _count(values[col["ibyt"]]), _count(values[col["ipkt"]]), start, end)
                if "opkt" in col and _count(values[col["opkt"]]):
                    rows.add(da, sa, dp, sp, proto, _count(values[col["obyt"]]), _count(values[col["opkt"]]),
                             start, end)  # fmt: skip
            except ValueError as exc:
                rows.bad(f"line {lineno}", str(exc)[:200])
        flows = rows.flows()
        return Capture(self.NAME, flows, errors=rows.notes(), records=len(flows))
