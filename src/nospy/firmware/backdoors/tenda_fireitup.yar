rule tenda_ac15_telnet_fireitup
{
    meta:
        description = "Tenda AC15 hard-coded telnet root password Fireitup (telnet started by /goform/telnet)"
        vendor = "Tenda AC15 15.03.05.18"
        cve = "CVE-2020-10988"
        reference = "https://nvd.nist.gov/vuln/detail/CVE-2020-10988"
    strings:
        $pw = "Fireitup" ascii fullword
    condition:
        $pw
}
