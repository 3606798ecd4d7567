rule cisco_iosxe_badcandy_implant
{
    meta:
        description = "Implant written through the Cisco IOS XE web UI privilege escalation (nginx config with logon_hash)"
        vendor = "Cisco IOS XE with the web UI enabled"
        cve = "CVE-2023-20198"
        reference = "https://sec.cloudapps.cisco.com/security/center/content/CiscoSecurityAdvisory/cisco-sa-iosxe-webui-privesc-j22SaA4z"
    strings:
        $path = "logoutconfirm.html?logon_hash=" ascii
        $lua = "logon_hash" ascii
        $menu = "ngx.req.get_body_data" ascii
    condition:
        $path or ($lua and $menu)
}
