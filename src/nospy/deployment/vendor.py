"""Which devices are the agreement's vendor: the agreement's ``vendor`` against manufacturer names.

Inventories spell one manufacturer many ways ("Huawei Technologies Co., Ltd.", "HUAWEI", the NetBox
slug "huawei"). Names are compared after normalisation: Unicode compatibility form, accents
removed, case folded, punctuation dropped, and legal-form and generic words ("Co", "Ltd",
"Technologies", "Networks" ...) removed, so "ACME Networks" and "Acme Networks, Inc." and "ACME"
all come to ``acme``. A small table of well-known telecom vendors adds the names that share no
words (former and local names); a zones file may add the operator's own aliases. Every match says
how it matched, so a reviewer can reject a wrong one.
"""

from __future__ import annotations

import difflib
import re
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

__all__ = ["KNOWN_ALIASES", "VendorMatcher", "normalise"]

# Words that say what kind of company it is, not which: dropped before comparing. Kept short, as each
# word here is one more way two different companies could come out equal.
_GENERIC = frozenset(
    (
        *("inc", "incorporated", "corp", "corporation", "co", "company", "ltd", "limited", "llc", "plc"),
        *("gmbh", "ag", "sa", "sas", "spa", "bv", "nv", "oy", "ab", "as", "kk"),
        *("holding", "holdings", "group", "international", "intl"),
        *("technologies", "technology", "tech", "networks", "network", "systems"),
        *("communications", "communication", "telecom", "telecommunications", "electronics"),
    )
)

# Names of the same vendor that share no words after normalisation: former names, names in the
# vendor's home script, and the names of units that carry the parent's equipment (from the companies'
# public histories: Nokia took over Alcatel-Lucent in 2016 and ran its network business as Nokia
# Siemens Networks / Nokia Solutions and Networks before). Keys and values are compared normalised.
KNOWN_ALIASES: Mapping[str, tuple[str, ...]] = {
    "huawei": ("华为", "華為", "huawei technologies co ltd"),
    "zte": ("中兴", "中興", "zhongxing", "zte corporation"),
    "nokia": ("alcatel lucent", "alcatel", "nokia siemens", "nsn", "nokia solutions and networks"),
    "ericsson": ("telefonaktiebolaget lm ericsson", "lm ericsson"),
    "cisco": ("cisco systems",),
    "juniper": ("juniper networks",),
    "samsung": ("samsung electronics",),
    "fiberhome": ("烽火", "fiberhome telecommunication technologies"),
}


def _words(name: str) -> list[str]:
    text = unicodedata.normalize("NFKD", name)
    text = "".join(c for c in text if not unicodedata.combining(c)).casefold()
    return [w for w in re.split(r"[^\w]+", text) if w]


def normalise(name: str) -> str:
    """The comparable core of a company name: words without legal forms or generic words."""
    words = _words(name)
    core = [w for w in words if w not in _GENERIC]
    return " ".join(core or words)


@dataclass(frozen=True)
class Match:
    manufacturer: str
    method: str  # exact, normalised, alias
    detail: str

    def evidence(self) -> dict[str, str]:
        return {"manufacturer": self.manufacturer, "method": self.method, "detail": self.detail}


class VendorMatcher:
    """Decides whether a manufacturer name is the agreement's vendor, and says how."""

    def __init__(self, vendor: str, extra_aliases: Iterable[str] = ()) -> None:
        self.vendor = vendor
        self._core = normalise(vendor)
        aliases: dict[str, str] = {}
        for key, names in KNOWN_ALIASES.items():
            if normalise(key) == self._core or self._core in (normalise(n) for n in names):
                aliases[normalise(key)] = f"known alias of {key}"
                for n in names:
                    aliases[normalise(n)] = f"known alias of {key}"
        for n in extra_aliases:
            aliases[normalise(n)] = f"alias {n!r} from the zones file"
        aliases.pop(self._core, None)
        self._aliases = aliases
        self._cache: dict[str, Match | None] = {}

    def similar(self, manufacturer: str) -> bool:
        """True for a name that did not match but looks close (shares a word, or nearly the same
        spelling): listed in the report so that a reviewer can add an alias if it is the vendor."""
        if self.match(manufacturer) is not None:
            return False
        core = normalise(manufacturer)
        if set(core.split()) & set(self._core.split()):
            return True
        return difflib.SequenceMatcher(None, core, self._core).ratio() >= 0.8

    def match(self, manufacturer: str) -> Match | None:
        if manufacturer in self._cache:
            return self._cache[manufacturer]
        found = self._match(manufacturer)
        self._cache[manufacturer] = found
        return found

    def _match(self, manufacturer: str) -> Match | None:
        if not manufacturer.strip():
            return None
        if manufacturer.strip().casefold() == self.vendor.strip().casefold():
            return Match(manufacturer, "exact", f"{manufacturer!r} is the agreement's vendor")
        core = normalise(manufacturer)
        if core == self._core:
            return Match(
                manufacturer,
                "normalised",
                f"{manufacturer!r} and {self.vendor!r} both normalise to {core!r}",
            )
        if core in self._aliases:
            return Match(manufacturer, "alias", f"{manufacturer!r} normalises to {core!r}: {self._aliases[core]}")
        return None
