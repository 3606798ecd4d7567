rule hikvision_auth_magic_string
{
    meta:
        description = "Hikvision web server accepts auth=YWRtaW46MTEK (admin:11) in the URL as an admin session"
        vendor = "Hikvision IP cameras"
        cve = "CVE-2017-7921"
        reference = "https://nvd.nist.gov/vuln/detail/CVE-2017-7921"
    strings:
        $magic = "YWRtaW46MTEK" ascii
    condition:
        $magic
}
