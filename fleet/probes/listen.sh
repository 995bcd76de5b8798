PATH=$PATH:/usr/sbin:/sbin
os=$(uname -s 2>/dev/null)
# BSD netstat's -p names a protocol, not the owner: FreeBSD's sockstat shows owners,
# macOS and the other BSDs get netstat's plain table (owners unknown).
# BusyBox netstat may lack -p: then it fails and ss or /proc answers instead.
if [ "$os" = FreeBSD ] || [ "$os" = DragonFly ]; then
  fleet_section listen source=sockstat; $FLEET_SUDO sockstat -46 -l -P tcp 2>&1 | head -n 2000
elif [ -n "$os" ] && [ "$os" != Linux ]; then
  fleet_section listen source=netstat; netstat -an -p tcp 2>&1 | head -n 2000
elif command -v netstat >/dev/null 2>&1 && out=$($FLEET_SUDO netstat -tlnp 2>/dev/null); then
  fleet_section listen source=netstat; printf '%s\n' "$out"
elif command -v ss >/dev/null 2>&1 && out=$($FLEET_SUDO ss -tlnp 2>/dev/null); then
  fleet_section listen source=ss; printf '%s\n' "$out"
else
  fleet_section listen source=proc-tcp; cat /proc/net/tcp
  fleet_section listen source=proc-tcp6; cat /proc/net/tcp6 2>/dev/null
fi
exit 0
