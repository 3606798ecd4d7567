rule alphanetworks_telnetd_image_sign
{
    meta:
        description = "Alpha Networks boot script starts telnetd with the fixed login Alphanetworks and the image's sign as password"
        vendor = "D-Link DIR-8xx, TRENDnet TEW-7xx and other Alpha Networks ODM firmware (/etc/init0.d/S80telnetd.sh)"
        cve = "none assigned"
        reference = "http://www.devttys0.com/2015/04/hacking-the-d-link-dir-890l/"
    strings:
        $arm = /telnetd[^\n]{0,80}-u[ \t]+Alphanetworks:\$\{?image_sign/ ascii
    condition:
        $arm
}
