"""The agreement document, format version 1 (DESIGN.md "Agreement document").

Every model forbids unknown keys: a typo in a security contract must be an error, not a clause that
silently disappears. Every section is optional: a missing section (``None``) is not part of the
agreement and its clause is reported as not-checked; a present but empty list allows nothing.
"""

from __future__ import annotations

import ipaddress
import re
from enum import StrEnum
from typing import Annotated, Literal

import pycountry
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

__all__ = [
    "Access",
    "Account",
    "Agreement",
    "Auth",
    "Clause",
    "Data",
    "Endpoint",
    "Keys",
    "Placement",
    "Protocol",
    "Service",
    "Software",
]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)


def _port(value: int) -> int:
    if not 1 <= value <= 65535:
        raise ValueError("must be 1-65535")
    return value


Port = Annotated[int, AfterValidator(_port)]

_HOSTNAME = re.compile(
    r"^(?=.{1,253}$)(\*\.)?([a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9])?)(\.[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9])?)*\.?$"
)


def _hostname(value: str) -> str:
    value = value.lower()
    if not _HOSTNAME.match(value):
        raise ValueError(f"{value!r} is not a host name (letters, digits, '-', '.'; '*.' prefix allowed)")
    return value.rstrip(".")


def _cidr(value: str) -> str:
    try:
        return str(ipaddress.ip_network(value, strict=True))
    except ValueError as exc:
        raise ValueError(f"{value!r} is not a network in CIDR form ({exc})") from None


def _country(value: str) -> str:
    if len(value) != 2 or not value.isascii() or not value.isupper() or pycountry.countries.get(alpha_2=value) is None:
        raise ValueError(f"{value!r} is not an ISO 3166-1 alpha-2 country code (e.g. IN, GB)")
    return value


def _device_path(value: str) -> str:
    if not value.startswith("/"):
        raise ValueError(f"{value!r} must be an absolute path on the device")
    if "\x00" in value or any(part == ".." for part in value.split("/")):
        raise ValueError(f"{value!r} must not contain '..' or NUL")
    return value


def _slug(value: str) -> str:
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}", value):
        raise ValueError("must be 1-128 letters, digits, '.', '_' or '-', starting with a letter or digit")
    return value


Slug = Annotated[str, AfterValidator(_slug)]
Text = Annotated[str, Field(min_length=1, max_length=1000)]
Hostname = Annotated[str, AfterValidator(_hostname)]
Cidr = Annotated[str, AfterValidator(_cidr)]
Country = Annotated[str, AfterValidator(_country)]
DevicePath = Annotated[str, AfterValidator(_device_path)]


class Access(StrEnum):
    """Ways an account can reach the device."""

    SSH = "ssh"
    TELNET = "telnet"
    WEB = "web"
    CONSOLE = "console"
    FTP = "ftp"
    SNMP = "snmp"
    NETCONF = "netconf"
    API = "api"


class Auth(StrEnum):
    PUBLICKEY = "publickey"
    PASSWORD = "password"  # noqa: S105 - the name of an authentication method, not a secret
    CERTIFICATE = "certificate"


class Protocol(StrEnum):
    TCP = "tcp"
    UDP = "udp"
    SCTP = "sctp"


class Clause(StrEnum):
    """The clauses of an agreement: one per section that can be checked."""

    BACKDOORS = "backdoors"  # implied by every agreement: no known backdoor, no unauthenticated shell
    ACCOUNTS = "accounts"
    SERVICES = "services"
    ENDPOINTS = "endpoints"
    DATA = "data"
    KEYS = "keys"
    PLACEMENT = "placement"
    SOFTWARE = "software"


class Account(_Model):
    name: Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._][A-Za-z0-9._-]*\$?$")]
    access: list[Access] = Field(default_factory=list)
    auth: list[Auth] = Field(default_factory=list)


class Service(_Model):
    name: Annotated[str, Field(min_length=1, max_length=64)]
    protocol: Protocol = Protocol.TCP
    port: Port
    program: Annotated[str, Field(min_length=1, max_length=255)] | None = None


class Endpoint(_Model):
    host: Hostname | None = None
    cidr: Cidr | None = None
    port: Port | None = None
    protocol: Protocol | None = None

    @model_validator(mode="after")
    def _host_or_cidr(self) -> Endpoint:
        if (self.host is None) == (self.cidr is None):
            raise ValueError("give exactly one of host or cidr")
        return self


class Data(_Model):
    countries: list[Country]


class Keys(_Model):
    private: list[DevicePath] = Field(default_factory=list)
    authorized: list[DevicePath] = Field(default_factory=list)


class Placement(_Model):
    zones: list[Annotated[str, Field(min_length=1, max_length=64)]] = Field(default_factory=list)
    max_share_percent: Annotated[float, Field(ge=0, le=100)] | None = None
    excluded_sites: list[Annotated[str, Field(min_length=1, max_length=128)]] = Field(default_factory=list)


class Software(_Model):
    transparency_log: Literal["required", "optional"] = "optional"


class Agreement(_Model):
    """A no-spy, no-backdoor agreement between a vendor and a customer."""

    nospy: Literal[1]
    id: Slug
    title: Text
    vendor: Text
    customer: Text
    products: list[Slug] = Field(default_factory=list)
    accounts: list[Account] | None = None
    services: list[Service] | None = None
    endpoints: list[Endpoint] | None = None
    data: Data | None = None
    keys: Keys | None = None
    placement: Placement | None = None
    software: Software | None = None

    def clauses(self) -> list[Clause]:
        """The clauses this agreement makes: the sections present, and the implied backdoor clause."""
        present = [
            Clause(name)
            for name in ("accounts", "services", "endpoints", "data", "keys", "placement", "software")
            if getattr(self, name) is not None
        ]
        return [Clause.BACKDOORS, *present]
