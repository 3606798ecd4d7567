rule xiongmai_port9530_opentelnet
{
    meta:
        description = "Xiongmai/HiSilicon DVR firmware: a command on TCP 9530 starts telnetd with a static root password"
        vendor = "Xiongmai (XMtech) DVR/NVR/IP cameras on HiSilicon SoCs"
        cve = "none assigned"
        reference = "https://www.theregister.co.uk/2020/02/04/hisilicon_camera_backdoor/"
    strings:
        $cmd = "OpenTelnet:OpenOnce" ascii
        $guard = "macGuarder" ascii
    condition:
        $cmd or ($guard and uint32(0) == 0x464c457f)
}
