pat=$process_pattern
os=$(uname -s 2>/dev/null)
# procps has etimes (elapsed seconds); BusyBox ps knows fewer -o fields, or none. BSD and
# macOS ps list only the session's own processes without -ax.
if [ "$os" != Linux ] && out=$(ps -ax -o pid,user,etime,command 2>/dev/null); then src=ps-ax
elif out=$(ps -eo pid=,user=,etimes=,args= 2>/dev/null); then src=ps-etimes
elif out=$(ps -o pid,user,time,args 2>/dev/null); then src=ps-time
elif out=$(ps -o pid,user,args 2>/dev/null); then src=ps-user
else out=$(ps 2>&1); src=ps
fi
fleet_section ps "source=$src"
printf '%s\n' "$out" | fleet_ps_matching "$pat"
# Where each matching process runs from, so a fix can restart it the same way;
# another user's /proc/PID/cwd needs root.
fleet_section cwd
printf '%s\n' "$out" | while read -r pid rest; do
  case $pid in ''|*[!0-9]*) continue ;; esac
  case $rest in *"$pat"*) ;; *) continue ;; esac
  if [ "$os" = Linux ]; then
    echo "pid=$pid cwd=$($FLEET_SUDO readlink /proc/"$pid"/cwd 2>/dev/null) exe=$($FLEET_SUDO readlink /proc/"$pid"/exe 2>/dev/null)"
  else  # no /proc: lsof knows the working directory (where it is installed)
    echo "pid=$pid cwd=$($FLEET_SUDO lsof -a -p "$pid" -d cwd -Fn 2>/dev/null | sed -n 's/^n//p' | head -n 1) exe="
  fi
done
exit 0
