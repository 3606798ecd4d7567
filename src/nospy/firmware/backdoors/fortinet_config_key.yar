rule fortinet_hardcoded_config_key
{
    meta:
        description = "FortiOS encrypts stored secrets with the hard-coded key 'Mary had a littl' (anyone can decrypt)"
        vendor = "Fortinet FortiOS 6.2.0 and below"
        cve = "CVE-2019-6693"
        reference = "https://nvd.nist.gov/vuln/detail/CVE-2019-6693"
    strings:
        $key = "Mary had a littl" ascii
    condition:
        $key
}
