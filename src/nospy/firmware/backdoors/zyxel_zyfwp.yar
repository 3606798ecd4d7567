rule zyxel_zyfwp_account
{
    meta:
        description = "Zyxel firewall/AP controller undocumented account zyfwp with a hard-coded password"
        vendor = "Zyxel USG, ATP, VPN, NXC series"
        cve = "CVE-2020-29583"
        reference = "https://nvd.nist.gov/vuln/detail/CVE-2020-29583"
    strings:
        $pw = "PrOw!aN_fXp" ascii
    condition:
        $pw
}
