rule zte_zxv10_w300_airocon
{
    meta:
        description = "ZTE ZXV10 W300 hard-coded admin password suffix airocon (last 4 MAC digits + airocon)"
        vendor = "ZTE ZXV10 W300"
        cve = "CVE-2014-0329"
        reference = "https://nvd.nist.gov/vuln/detail/CVE-2014-0329"
    strings:
        $pw = "airocon" ascii fullword
    condition:
        $pw
}
