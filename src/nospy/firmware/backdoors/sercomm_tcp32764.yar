rule sercomm_tcp32764_scmm
{
    meta:
        description = "SerComm configuration backdoor on TCP 32764 (ScMM/MMcS protocol): dump config, run commands"
        vendor = "SerComm-built Cisco, Linksys, Netgear, Diamond and others"
        cve = "CVE-2014-0659"
        reference = "https://nvd.nist.gov/vuln/detail/CVE-2014-0659"
    strings:
        $le = "ScMM" ascii
        $be = "MMcS" ascii
        $sh = "/bin/sh" ascii
        $cfg = "/tmp/cfg" ascii
    condition:
        uint32(0) == 0x464c457f and ($le or $be) and ($sh or $cfg)
}
