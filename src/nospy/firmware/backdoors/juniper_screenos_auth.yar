rule juniper_screenos_auth_backdoor
{
    meta:
        description = "Juniper ScreenOS SSH/telnet authentication backdoor password (the format string it hides in)"
        vendor = "Juniper Networks ScreenOS 6.2.0r15-6.2.0r18, 6.3.0r12-6.3.0r20"
        cve = "CVE-2015-7755"
        reference = "https://nvd.nist.gov/vuln/detail/CVE-2015-7755"
    strings:
        $pw = "<<< %s(un='%s') = %u" ascii
    condition:
        $pw
}
