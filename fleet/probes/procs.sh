pat=$process_pattern
# The backend's processes (and nginx's master) as the kernel has them: argv from
# /proc/PID/cmdline (NUL-separated), cwd, executable, argv[0] found on the process's own
# PATH, venv, cgroup and PID namespace. Paths and argv are printed in hex: they may hold
# any byte, newlines included. Another user's /proc entries need root.
hex() { od -An -v -tx1 | tr -d ' \n'; }
rl() { l=$($FLEET_SUDO readlink "$1" 2>/dev/null; echo x); l=${l%x}; l=${l%?}; }
rl /proc/$$/ns/pid
fleet_section procs "ns=$(printf '%s' "$l" | tr -c 'a-z0-9:[]\n' _)"
# Candidates from one ps (reading every /proc/PID/cmdline costs two processes each: on a busy
# host, more than the rest of the script); each is then checked on its cmdline as before. No
# ps listing or awk, an empty pattern or one ps would print otherwise (not printable): every process.
cands=
case $pat in
  ''|*[![:print:]]*) ;;
  *) cands=$(ps -eo pid=,args= 2>/dev/null | fleet_pat=$pat awk '
       index($0, ENVIRON["fleet_pat"]) || index($0, "nginx: master") { printf " %s", $1 } END { if (NR) print " " }') ;;
esac
n=0
for d in /proc/[0-9]*; do
  pid=${d#/proc/}
  if [ "$pid" = "$$" ] || [ "$pid" = "$PPID" ]; then continue; fi
  if [ -n "$cands" ]; then case $cands in *" $pid "*) ;; *) continue ;; esac; fi
  args=$(tr '\0' ' ' 2>/dev/null <"$d/cmdline") || continue
  case $args in
    "nginx: master"*) role=nginx ;;
    *"$pat"*) role=backend ;;
    *) continue ;;
  esac
  n=$((n + 1)); [ "$n" -gt 50 ] && break
  fleet_section proc "pid=$pid" "role=$role"
  rl "$d/ns/pid"; echo "ns=$(printf '%s' "$l" | hex)"
  echo "user=$(stat -c %U:%u "$d" 2>/dev/null | hex)"
  echo "argv=$(head -c 8192 "$d/cmdline" 2>/dev/null | hex)"
  rl "$d/cwd"; cwd=$l; echo "cwd=$(printf '%s' "$cwd" | hex)"
  rl "$d/exe"; echo "exe=$(printf '%s' "$l" | hex)"
  echo "cgroup=$(grep -E '^0::|name=systemd' "$d/cgroup" 2>/dev/null | head -n 1 | hex)"
  a0=$(head -c 8192 "$d/cmdline" 2>/dev/null | tr '\0' '\n' | head -n 1)
  r=
  case $a0 in
    /*) r=$a0 ;;
    */*) [ -n "$cwd" ] && r=$cwd/$a0 ;;
    ?*)
      # Only PATH is kept of its environment; the rest may hold secrets.
      r=$($FLEET_SUDO cat "$d/environ" 2>/dev/null | tr '\0' '\n' | sed -n 's/^PATH=//p' | head -n 1 |
        tr ':' '\n' | while IFS= read -r dir; do
          case $dir in /*) ;; *) continue ;; esac
          if $FLEET_SUDO test -f "$dir/$a0" && $FLEET_SUDO test -x "$dir/$a0"; then printf '%s' "$dir/$a0"; break; fi
        done) ;;
  esac
  [ -n "$r" ] && echo "found=$(printf '%s' "$r" | hex)"
  v=${r%/*}; v=${v%/*}
  [ -n "$v" ] && $FLEET_SUDO test -f "$v/pyvenv.cfg" && echo "venv=$(printf '%s' "$v" | hex)"
  [ -n "$cwd" ] && $FLEET_SUDO test -f "$cwd/requirements.txt" && echo "requirements=1"
done
exit 0
