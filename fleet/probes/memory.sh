fleet_section meminfo
head -n 100 /proc/meminfo
fleet_section loadavg "cpus=$(grep -c '^cpu[0-9]' /proc/stat 2>/dev/null)"
cat /proc/loadavg
if [ -r /proc/pressure/memory ]; then
  fleet_section psi-memory
  cat /proc/pressure/memory
fi
exit 0
