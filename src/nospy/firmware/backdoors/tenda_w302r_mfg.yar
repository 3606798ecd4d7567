rule tenda_w302r_mfg_udp7329
{
    meta:
        description = "Tenda MfgThread backdoor: UDP 7329 packets starting with w302r_mfg run commands as root"
        vendor = "Tenda (W302R, W330R and Medialink re-brands)"
        cve = "none assigned"
        reference = "http://www.devttys0.com/2013/10/from-china-with-love/"
    strings:
        $magic = "w302r_mfg" ascii
    condition:
        $magic
}
