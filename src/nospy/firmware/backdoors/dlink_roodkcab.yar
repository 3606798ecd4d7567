rule dlink_roodkcab_user_agent
{
    meta:
        description = "D-Link web server skips authentication for the User-Agent xmlset_roodkcableoj28840ybtide"
        vendor = "D-Link (DIR-100, DIR-615 and others; Alpha Networks code)"
        cve = "CVE-2013-6026"
        reference = "https://nvd.nist.gov/vuln/detail/CVE-2013-6026"
    strings:
        $ua = "xmlset_roodkcableoj28840ybtide"
    condition:
        $ua
}
