rule netis_netcore_udp53413
{
    meta:
        description = "Netis/Netcore igdmptd backdoor on UDP 53413 with the hard-coded password netcore"
        vendor = "Netis / Netcore routers"
        cve = "none assigned"
        reference = "https://www.trendmicro.com/en_us/research/14/h/netis-routers-leave-wide-open-backdoor.html"
    strings:
        $pw = "netcore" ascii fullword
        $prog = "igdmptd" ascii
    condition:
        $pw and $prog
}
