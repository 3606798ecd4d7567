rule fortinet_fortimanager_access_ssh
{
    meta:
        description = "FortiOS undocumented SSH account Fortimanager_Access with a hard-coded challenge secret"
        vendor = "Fortinet FortiOS 4.x, 5.0.x before 5.0.8"
        cve = "CVE-2016-1909"
        reference = "https://nvd.nist.gov/vuln/detail/CVE-2016-1909"
    strings:
        $user = "Fortimanager_Access" ascii
        $secret = "FGTAbc11*xy+Qqz27" ascii
    condition:
        $secret or ($user and $secret)
}
