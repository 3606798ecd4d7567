"""``nospy monitor`` and ``nospy history``: follow a vendor's transparency log, check every new release
of the agreement's products, diff it against the previous one, and alert when a clause starts failing.

Public surface:

- `Monitor(sessions, log=..., log_key=..., agreement=..., images=...)`: ``run_round()`` -> `RoundResult`.
- `check_release(agreement, image, log=..., log_key=..., target=...)`: the one function that checks a release.
- `history.releases(session, product)`, `history.products(session)`: what was checked, per release.

State lives in the service's database (`nospy.server.db`, migration ``0003_monitor``).
"""

from __future__ import annotations

from nospy.monitor.evaluate import check_release, compare
from nospy.monitor.run import Monitor, RoundResult

__all__ = ["Monitor", "RoundResult", "check_release", "compare"]
