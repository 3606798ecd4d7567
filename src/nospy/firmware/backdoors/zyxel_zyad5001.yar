rule zyxel_pk5001z_su_password
{
    meta:
        description = "Zyxel PK5001Z hard-coded su password zyad5001 (root from the admin or user account)"
        vendor = "Zyxel PK5001Z (CenturyLink)"
        cve = "CVE-2016-10401"
        reference = "https://nvd.nist.gov/vuln/detail/CVE-2016-10401"
    strings:
        $pw = "zyad5001" ascii fullword
    condition:
        $pw
}
