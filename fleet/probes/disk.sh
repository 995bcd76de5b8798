PATH=$PATH:/usr/sbin:/sbin
thr=$disk_threshold_pct; ithr=$inode_threshold_pct; dt=$du_timeout
ign=$(printf '%s' "$ignore_fstypes" | tr ',' ' ')
paths=$(printf '%s' "$paths" | tr ',' ' ')
set -f  # $paths is split into words, never globbed
if df --version 2>/dev/null | grep -q coreutils; then src=gnu
elif df --help 2>&1 | grep -qi busybox; then src=busybox
else src=other
fi
to=; dft=; command -v timeout >/dev/null 2>&1 && to="timeout $dt" && dft='timeout -k 2 10'
# df -kP: one line per filesystem on every df (GNU, BusyBox, BSD, macOS), sizes in KiB (BSD
# and macOS count 512-byte blocks without -k); a hung network filesystem hangs df: exit 124 after 10 s.
out=$($dft df -kP -- $paths 2>&1); rc=$?
fleet_section df "source=$src" "exit=$rc"
printf '%s\n' "$out" | head -n 2000
iout=$($dft df -iP -- $paths 2>&1); irc=$?
fleet_section df-i "source=$src" "exit=$irc"
printf '%s\n' "$iout" | head -n 2000
# fstype of each mount point df showed (the last mount on a point is the visible one);
# /proc/self/mounts writes a space as \040.
types=$(printf '%s\n' "$out" | awk '
  NR == FNR { if (FNR > 1 && $5 ~ /%$/) { m = $0; sub(/^[^ \t]+[ \t]+[0-9-]+[ \t]+[0-9-]+[ \t]+[0-9-]+[ \t]+[0-9-]+%[ \t]+/, "", m); want[m] = 1 }; next }
  { m = $2; gsub(/\\040/, " ", m); if (m in want) print $3, $2 }' - /proc/self/mounts 2>/dev/null | head -n 2000)
if [ ! -r /proc/self/mounts ]; then
  # BSD and macOS: `mount` prints `DEV on MOUNTPOINT (TYPE, options...)`.
  types=$(mount 2>/dev/null | sed -n 's/^.* on \(.*\) (\([^,)]*\)[,)].*$/\2 \1/p' | head -n 2000)
fi
fleet_section fstypes
printf '%s\n' "$types"
if [ "$irc" != 0 ] && [ "$irc" -lt 124 ] && ! df -iP / >/dev/null 2>&1; then
  # A df without -i (some BusyBox builds): statfs via stat -f, per mount point.
  fleet_section statfs-i
  printf '%s\n' "$out" | awk 'NR > 1 && $5 ~ /%$/ { print $6 }' | head -n 200 | while IFS= read -r m; do
    $dft stat -f -c '%c %d %n' -- "$m" 2>/dev/null
  done
fi
# over TABLE THRESHOLD: mount points at or over THRESHOLD use%, not of an ignored type, at most 3.
over() {
  printf '%s\n' "$1" | awk -v thr="$2" -v ign=" $ign " -v types="$types" '
    BEGIN { n = split(types, t, "\n"); for (i = 1; i <= n; i++) { p = index(t[i], " ");
            m = substr(t[i], p + 1); gsub(/\\040/, " ", m); fs[m] = substr(t[i], 1, p - 1) } }
    NR > 1 && $5 ~ /^[0-9]+%$/ {
      pct = $5; sub(/%/, "", pct); m = $0
      sub(/^[^ \t]+[ \t]+[0-9]+[ \t]+[0-9]+[ \t]+[0-9]+[ \t]+[0-9]+%[ \t]+/, "", m)
      if (pct + 0 >= thr + 0 && (fs[m] == "" || index(ign, " " fs[m] " ") == 0) && !(m in seen)) { seen[m] = 1; print m }
    }' | head -n 3
}
# The biggest directories one level down, on that filesystem only (-x), within $dt seconds;
# du's exit code follows in `== du-end exit=N ==` (124: cut off by timeout).
top() {
  fleet_section du "kind=$1" "timeout=$dt"
  echo "mount=$2"
  { drc=$( { { if [ "$1" = inodes ]; then $to $FLEET_SUDO du --inodes -x -d1 -- "$2" 2>/dev/null
               else $to $FLEET_SUDO du -x -d1 -k -- "$2" 2>/dev/null; fi
               echo $? >&3; } | sort -rn | head -n 8 >&4; } 3>&1 ); } 4>&1
  fleet_section du-end "exit=$drc"
}
over "$out" "$thr" | while IFS= read -r m; do top blocks "$m"; done
if [ "$src" = gnu ]; then
  over "$iout" "$ithr" | while IFS= read -r m; do top inodes "$m"; done
fi
exit 0
