rule netgear_telnetenable_magic_packet
{
    meta:
        description = "Netgear telnetenabled: a Blowfish-encrypted magic packet (key AMBIT_TELNET_ENABLE+password) opens telnet"
        vendor = "Netgear routers (Ambit code)"
        cve = "none assigned"
        reference = "https://openwrt.org/toh/netgear/telnet.console"
    strings:
        $key = "AMBIT_TELNET_ENABLE+" ascii
    condition:
        $key
}
