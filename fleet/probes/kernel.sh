PATH=$PATH:/usr/sbin:/sbin
to=; command -v timeout >/dev/null 2>&1 && to='timeout 10'
read up _ </proc/uptime 2>/dev/null
fleet_section clock "now=$(date +%s)" "uptime=${up:-}" "tz=$(date +%z)"
pat='invoked oom-killer|Out of memory|out of memory|Killed process|oom-kill:|memory: usage|oom_reaper'
# dmesg is restricted (kernel.dmesg_restrict=1) for users: then try the journal and the files.
if out=$($FLEET_SUDO dmesg 2>&1); then
  fleet_section kernel source=dmesg "priv=${FLEET_PRIV:-unknown}"
  printf '%s\n' "$out" | grep -E "$pat" | tail -n 300
  exit 0
fi
fleet_section kernel-failed source=dmesg "priv=${FLEET_PRIV:-unknown}"
printf '%s\n' "$out" | head -n 3
if [ -d /run/systemd/system ] && command -v journalctl >/dev/null 2>&1; then
  if out=$($to $FLEET_SUDO journalctl -k -b -o short-unix --no-pager -n 100000 2>&1); then
    fleet_section kernel source=journal "priv=${FLEET_PRIV:-unknown}"
    printf '%s\n' "$out" | grep -E "$pat" | tail -n 300
    exit 0
  fi
  fleet_section kernel-failed source=journal "priv=${FLEET_PRIV:-unknown}"
  printf '%s\n' "$out" | head -n 3
fi
for f in /var/log/kern.log /var/log/messages /var/log/syslog; do
  [ -f "$f" ] || continue
  if [ -r "$f" ]; then out=$(tail -n 100000 "$f" 2>&1); rc=$?
  elif [ -n "$FLEET_SUDO" ]; then out=$($FLEET_SUDO tail -n 100000 "$f" 2>&1); rc=$?
  else fleet_section kernel-failed source=file "priv=${FLEET_PRIV:-unknown}"; echo "$f: not readable"; continue
  fi
  if [ "$rc" = 0 ]; then
    fleet_section kernel source=file "priv=${FLEET_PRIV:-unknown}"
    echo "file=$f"
    printf '%s\n' "$out" | grep -E "$pat" | tail -n 300
    exit 0
  fi
  fleet_section kernel-failed source=file "priv=${FLEET_PRIV:-unknown}"
  printf '%s\n' "$out" | head -n 3
done
fleet_section kernel source=none "priv=${FLEET_PRIV:-unknown}"
exit 0
