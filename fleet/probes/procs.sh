pat=$process_pattern
# The backend's processes (and nginx's master) as the kernel has them: argv from
# /proc/PID/cmdline (NUL-separated), cwd, executable, argv[0] found on the process's own
# PATH, venv, cgroup and PID namespace. Paths and argv are printed in hex: they may hold
# any byte, newlines included. Another user's /proc entries need root.
# Bytes in hex: od's words, split as by default (IFS unset) and joined by the shell (no tr;
# they hold no pattern character).
# hex: stdin's; only ever run in a command substitution, whose subshell its IFS and set -- leave.
words() { unset IFS; set -- $fleet_o; IFS=; fleet_j="$*"; }
hex() { fleet_o=$(od -An -v -tx1) && words && echo "$fleet_j"; }
# hx TEXT [SUFFIX]: h = TEXT in hex, then SUFFIX (hex) appended. Text of the plain characters in
# the table (most paths, namespaces, users, cgroups; the space too) is looked up in the shell: forking od and tr
# for each of a process's fields cost more than the rest of this probe. Other text goes to od.
# The characters are listed, not given as ranges, which some shells' locales collate otherwise.
fleet_hx='|a=61|b=62|c=63|d=64|e=65|f=66|g=67|h=68|i=69|j=6a|k=6b|l=6c|m=6d|n=6e|o=6f|p=70|q=71|r=72|s=73|t=74|u=75|v=76|w=77|x=78|y=79|z=7a|A=41|B=42|C=43|D=44|E=45|F=46|G=47|H=48|I=49|J=4a|K=4b|L=4c|M=4d|N=4e|O=4f|P=50|Q=51|R=52|S=53|T=54|U=55|V=56|W=57|X=58|Y=59|Z=5a|0=30|1=31|2=32|3=33|4=34|5=35|6=36|7=37|8=38|9=39|/=2f|.=2e|_=5f|:=3a|-=2d|[=5b|]=5d|@=40|+=2b|,=2c|==3d| =20|'
hx() {
  case $1 in
    *[!]abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789/._:@+,=[\ -]*) h=$(printf '%s' "$1" | hex)$2; return ;;
  esac
  h=; fleet_r=$1
  while [ -n "$fleet_r" ]; do
    fleet_t=${fleet_r#?}; fleet_c=${fleet_r%"$fleet_t"}; fleet_r=$fleet_t
    fleet_t=${fleet_hx#*"|$fleet_c="}; h=$h${fleet_t%"${fleet_t#??}"}
  done
  h=$h$2
}
rl() { l=$($FLEET_SUDO readlink "$1" 2>/dev/null; echo x); l=${l%x}; l=${l%?}; }
rl /proc/$$/ns/pid
# What `tr -c 'a-z0-9:[]\n' _` would make of it: itself when it has no other character.
case $l in *[!]abcdefghijklmnopqrstuvwxyz0123456789:[]*) ns=$(printf '%s' "$l" | tr -c 'a-z0-9:[]\n' _) ;; *) ns=$l ;; esac
fleet_section procs "ns=$ns"
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
  rl "$d/ns/pid"; hx "$l"; echo "ns=$h"
  # stat's line and the cgroup line keep their newline (0a), as od saw them.
  u=$(stat -c %U:%u "$d" 2>/dev/null) && hx "$u" 0a || h=; echo "user=$h"
  fleet_o=$(od -An -v -tx1 -N 8192 "$d/cmdline" 2>/dev/null); fleet_ifs=$IFS; words; IFS=$fleet_ifs
  echo "argv=$fleet_j"
  rl "$d/cwd"; cwd=$l; hx "$cwd"; echo "cwd=$h"
  rl "$d/exe"; hx "$l"; echo "exe=$h"
  # The first line naming the v2 or the systemd hierarchy, read by the shell's own `read`.
  h=
  while IFS= read -r c; do
    case $c in 0::*|*name=systemd*) hx "$c" 0a; break ;; esac
  done 2>/dev/null <"$d/cgroup"
  echo "cgroup=$h"
  # argv[0] up to its first NUL or newline (as `tr '\0' '\n' | head -n 1` would print it), from
  # od's words just read: each byte as an octal escape for one printf, no tr and head.
  a0=
  for fleet_c in $fleet_o; do
    case $fleet_c in 00|0a) break ;; esac
    a0=$a0\\$((0x$fleet_c / 64))$((0x$fleet_c / 8 % 8))$((0x$fleet_c % 8))
  done
  [ -n "$a0" ] && a0=$(printf "$a0")
  r=
  case $a0 in
    /*) r=$a0 ;;
    */*) [ -n "$cwd" ] && r=$cwd/$a0 ;;
    ?*)
      # Only PATH is kept of its environment; the rest may hold secrets.
      if [ -n "$FLEET_SUDO" ]; then p=$($FLEET_SUDO cat "$d/environ" 2>/dev/null | tr '\0' '\n' | sed -n '/^PATH=/{s///p;q;}')
      else p=$(tr '\0' '\n' <"$d/environ" 2>/dev/null | sed -n '/^PATH=/{s///p;q;}'); fi
      fleet_ifs=$IFS; IFS=:; set -f
      for dir in $p; do
        case $dir in /*) ;; *) continue ;; esac
        if $FLEET_SUDO test -f "$dir/$a0" && $FLEET_SUDO test -x "$dir/$a0"; then r=$dir/$a0; break; fi
      done
      IFS=$fleet_ifs; set +f ;;
  esac
  [ -n "$r" ] && hx "$r" && echo "found=$h"
  v=${r%/*}; v=${v%/*}
  [ -n "$v" ] && $FLEET_SUDO test -f "$v/pyvenv.cfg" && hx "$v" && echo "venv=$h"
  [ -n "$cwd" ] && $FLEET_SUDO test -f "$cwd/requirements.txt" && echo "requirements=1"
done
exit 0
