set -f
read -r os release machine <<EOF
$(uname -srm 2>/dev/null)
EOF
fleet_section platform
printf 'uname=%s release=%s machine=%s\n' "${os:-unknown}" "$release" "$machine"
# The first four of these lines of os-release (as grep -E '^(...)=' | head -n 4), read by the shell.
if [ -r /etc/os-release ]; then
  n=0
  while [ "$n" -lt 4 ] && { IFS= read -r l || [ -n "$l" ]; }; do
    case $l in ID=*|ID_LIKE=*|VERSION_ID=*|PRETTY_NAME=*) printf '%s\n' "$l"; n=$((n + 1)) ;; esac
    l=
  done </etc/os-release
fi
command -v sw_vers >/dev/null 2>&1 && echo "macos_version=$(sw_vers -productVersion 2>/dev/null)"
command -v freebsd-version >/dev/null 2>&1 && echo "freebsd_version=$(freebsd-version 2>/dev/null)"
# Inputs: port process_pattern login_path proxy_url nginx_conf_dir. An open parameter (nobody gave
# it) holds its FLEET_D_ variable's value; this probe updates that variable when it finds one.
pat=$process_pattern; path=$login_path; proxy=$proxy_url
# found NAME VALUE WHY: a discovered value for the later probes, with where it came from.
found() { printf 'param %s=%s\nwhy %s=%s\n' "$1" "$2" "$1" "$3"; }
oneline() { tr '\n\r\t' '   ' | cut -c 1-300; }

fleet_section nginx
# nginx's master from the shared step (fleet_shared); one ps for the backend's candidates below.
fleet_shared
master=${fleet_masters%%"
"*}
psall=$(fleet_ps_all)
# nginx -V's paths, read once: prefix, conf-path, error-log-path, http-log-path.
prefix=; conf_path=; error_log_path=; http_log_path=
if command -v nginx >/dev/null 2>&1; then
  # Its words split by the shell (set -f is on), not by tr and grep.
  for w in $(nginx -V 2>&1); do
    case $w in
      --prefix=*) prefix=${w#*=} ;; --conf-path=*) conf_path=${w#*=} ;;
      --error-log-path=*) error_log_path=${w#*=} ;; --http-log-path=*) http_log_path=${w#*=} ;;
    esac
  done
fi
# The word after its last ` -c `, as `sed 's/.* -c \([^ ]*\).*/\1/'` would have it.
conf=; case $master in *" -c "*) conf=${master##* -c }; conf=${conf%% *} ;; esac
[ -n "$conf" ] || conf=$conf_path
case $conf in ''|/*) ;; *) conf=$prefix/$conf ;; esac
# A line of at most 300 of these (ASCII) characters, no tab or carriage return among them, is what
# `oneline` would print: no tr and cut for it. Listed, not ranges some locales collate otherwise.
case $master in
  *[!abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789\ /._:\;=,@+-]*) master_line=$(printf '%s' "$master" | oneline) ;;
  *) master_line=$master; [ "${#master}" -le 300 ] || master_line=$(printf '%s' "$master" | oneline) ;;
esac
echo "master=$master_line"
echo "conf=$conf prefix=$prefix"
if [ -n "${FLEET_D_nginx_conf_dir+1}" ] && [ -n "$conf" ] && [ -f "$conf" ]; then
  FLEET_D_nginx_conf_dir=${conf%/*}
  nginx_conf_dir=$FLEET_D_nginx_conf_dir
  found nginx_conf_dir "$FLEET_D_nginx_conf_dir" "the config file nginx runs with: $conf"
fi
pport=${proxy#*://}; pport=${pport%%/*}
case $pport in *:*) pport=${pport##*:} ;; *) case $proxy in https:*) pport=443 ;; *) pport=80 ;; esac ;; esac
# The location nginx picks for the path (exact, longest prefix unless ^~, regexes in order),
# in the server block that listens on the proxy's port, and its proxy_pass targets; and
# every error_log/access_log the config names.
nginx_info=$(fleet_nginx_config | awk -v want="$path" -v pport="$pport" '
  function where() { return file ":" sline }
  function stmt(w, n,    i, a, d) {
    d = w[1]
    if (d == "error_log" || d == "access_log") {
      if (w[2] != "off" && w[2] !~ /^(syslog:|memory:|stderr)/) print "log kind=" d " where=" where() " path=" w[2]
      return
    }
    if (depth == 0) return
    if (type[depth] == "upstream" && d == "server") { ups[upname] = ups[upname] "target where=" where() " addr=" w[2] "\n"; return }
    if (type[depth] == "server" && d == "listen") {
      a = w[2]; if (a ~ /^unix:/) return
      if (a !~ /^[0-9]+$/) { if (a ~ /:[0-9]+$/) sub(/.*:/, "", a); else a = 80 }
      sports[sid] = sports[sid] " " a " "
      for (i = 3; i <= n; i++) { if (w[i] == "default_server" || w[i] == "default") sdef[sid] = 1; if (w[i] == "ssl") sssl[sid] = 1 }
      return
    }
    if (d == "proxy_pass" && lid[depth]) { lpp[lid[depth]] = w[2]; lppw[lid[depth]] = where() }
  }
  function open_block(w, n,    t) {
    t = "other"
    if (w[1] == "upstream") { t = "upstream"; upname = w[2] }
    else if (w[1] == "server" && type[depth] != "upstream") { t = "server"; sid = ++nserv; sfirst[sid] = where() }
    else if (w[1] == "location") {
      t = "location"; nloc++; lsrv[nloc] = sid; lwhere[nloc] = where()
      if (n >= 3) { lmod[nloc] = w[2]; lpath[nloc] = w[3] } else { lmod[nloc] = ""; lpath[nloc] = w[2] }
    }
    depth++; type[depth] = t; lid[depth] = (t == "location") ? nloc : lid[depth - 1]
  }
  /^== / { next }
  /^# configuration file .*:$/ { file = substr($0, 22, length($0) - 22); line = 0; next }
  {
    line++; s = $0; sub(/#.*/, "", s); gsub(/[{};]/, " & ", s); m = split(s, parts, /[ \t]+/)
    for (k = 1; k <= m; k++) {
      t = parts[k]; if (t == "") continue
      gsub(/^["\047]|["\047]$/, "", t)
      if (t == ";") { if (nw) stmt(words, nw); nw = 0 }
      else if (t == "{") { open_block(words, nw); nw = 0 }
      else if (t == "}") { if (depth > 0) depth--; nw = 0 }
      else { if (nw == 0) sline = line; words[++nw] = t }
    }
  }
  END {
    chosen = 0
    # The default server of the proxy port (else its first); with no server on that port, the
    # default server (else the first) of them all.
    for (i = 1; i <= nserv; i++) { p = (sports[i] == "") ? " 80 " : sports[i]; if (index(p, " " pport " ")) { if (!chosen || (sdef[i] && !sdef[chosen])) chosen = i } }
    for (i = 1; !chosen && i <= nserv; i++) if (sdef[i]) chosen = i
    if (!chosen && nserv) chosen = 1
    best = 0
    for (i = 1; i <= nloc; i++) {
      if (lsrv[i] != chosen) continue
      if (lmod[i] == "=" && lpath[i] == want) { best = i; exact = 1; break }
      if ((lmod[i] == "" || lmod[i] == "^~") && index(want, lpath[i]) == 1 && (!best || length(lpath[i]) > length(lpath[best]))) best = i
    }
    if (!exact && !(best && lmod[best] == "^~")) {
      for (i = 1; i <= nloc; i++) {
        if (lsrv[i] != chosen) continue
        if (lmod[i] == "~" && want ~ lpath[i]) { best = i; break }
        if (lmod[i] == "~*" && tolower(want) ~ tolower(lpath[i])) { best = i; break }
      }
    }
    if (chosen) { split(sports[chosen], lp, " "); print "server where=" sfirst[chosen] " listen=" (lp[1] == "" ? 80 : lp[1]) " ssl=" (sssl[chosen] ? 1 : 0) }
    if (!best) exit
    print "location where=" lwhere[best] " path=" lpath[best] " proxy_pass=" lpp[best]
    a = lpp[best]; if (a == "") exit
    scheme = a; sub(/:\/\/.*/, "", scheme); sub(/^[a-z]+:\/\//, "", a); sub(/\/.*/, "", a)
    if (a ~ /^unix:/ || a ~ /\$/) { print "target where=" lppw[best] " addr=" a; exit }
    if (a in ups) { printf "%s", ups[a]; exit }
    if (a !~ /:[0-9]+$/ || a ~ /^\[[^]]*\]$/) a = a ":" (scheme == "https" ? 443 : 80)
    print "target where=" lppw[best] " addr=" a
  }' | head -n 60)
printf '%s\n' "$nginx_info"
# Its lines read once, by the shell (each `printf | sed` costs processes): the port of the
# plain-HTTP server block, the targets, and each kind of log, at most 4 different paths of each
# (newline-separated). The patterns are those of the sed commands they replace.
nl='
'
listen=; targets=; error_logs=; access_logs=; n_error_log=0; n_access_log=0
while IFS= read -r l; do
  case $l in
    "server "*" listen="*" ssl=0")
      v=${l##* listen=}; v=${v%" ssl=0"}
      case $v in *[!0123456789]*) ;; *) listen=$v ;; esac ;;
    "target "*" addr="*) targets="$targets$nl${l##* addr=}" ;;
    "log kind=error_log where="*|"log kind=access_log where="*)
      kind=${l#log kind=}; kind=${kind%% *}
      v=${l#"log kind=$kind where="}; w=${v%%" "*}; v=${v#"$w"}
      case $v in " path="*) v=${v#" path="} ;; *) continue ;; esac
      case $kind in
        error_log) case "$nl$error_logs$nl" in *"$nl$v$nl"*) continue ;; esac
          [ "$n_error_log" -lt 4 ] && n_error_log=$((n_error_log + 1)) && error_logs=${error_logs:+$error_logs$nl}$v ;;
        *) case "$nl$access_logs$nl" in *"$nl$v$nl"*) continue ;; esac
          [ "$n_access_log" -lt 4 ] && n_access_log=$((n_access_log + 1)) && access_logs=${access_logs:+$access_logs$nl}$v ;;
      esac ;;
  esac
done <<FLEET_INFO
$nginx_info
FLEET_INFO
# nginx listening elsewhere than the proxy URL's port (plain HTTP only: no certificate to check).
if [ -n "${FLEET_D_proxy_url+1}" ] && [ -n "$listen" ] && [ "$listen" != "$pport" ]; then
  found proxy_url "http://localhost:$listen" "the server block serving $path listens on port $listen"
fi


fleet_section listeners
# port pid program address, one line per listening TCP socket, whatever the platform has.
listeners=$(
  case $os in
    Darwin)
      command -v lsof >/dev/null 2>&1 && $FLEET_SUDO lsof -nP -iTCP -sTCP:LISTEN -Fpcn 2>/dev/null | awk '
        /^p/ { pid = substr($0, 2) } /^c/ { prog = substr($0, 2) }
        /^n/ { a = substr($0, 2); p = a; sub(/.*:/, "", p); sub(/:[^:]*$/, "", a); print p, pid, prog, a }' ;;
    FreeBSD|DragonFly)
      sockstat -46 -l -P tcp 2>/dev/null | awk 'NR > 1 { p = $6; sub(/.*[:.]/, "", p); a = $6; sub(/[:.][0-9*]+$/, "", a); print p, $3, $2, a }' ;;
    Linux)
      if command -v ss >/dev/null 2>&1 && out=$($FLEET_SUDO ss -tlnp 2>/dev/null); then
        printf '%s\n' "$out" | awk '$1 == "LISTEN" { a = $4; p = a; sub(/.*:/, "", p); sub(/:[^:]*$/, "", a)
          pid = "-"; prog = "-"
          if (match($0, /pid=[0-9]+/)) pid = substr($0, RSTART + 4, RLENGTH - 4)
          if (match($0, /\("[^"]*"/)) prog = substr($0, RSTART + 2, RLENGTH - 3)
          print p, pid, prog, a }'
      elif command -v netstat >/dev/null 2>&1 && out=$($FLEET_SUDO netstat -tlnp 2>/dev/null); then
        printf '%s\n' "$out" | awk '$6 == "LISTEN" { a = $4; p = a; sub(/.*:/, "", p); sub(/:[^:]*$/, "", a)
          pid = $7; prog = $7; sub(/\/.*/, "", pid); sub(/^[^\/]*\//, "", prog); if (pid !~ /^[0-9]+$/) pid = "-"
          print p, pid, (prog == "" ? "-" : prog), a }'
      else
        # /proc/net/tcp only: the owner is the process holding the inode of the socket (root sees all).
        cat /proc/net/tcp /proc/net/tcp6 2>/dev/null | awk 'function hex(s,  i, n) { for (i = 1; i <= length(s); i++) n = n * 16 + index("0123456789ABCDEF", toupper(substr(s, i, 1))) - 1; return n }
          $4 == "0A" { split($2, x, ":"); print hex(x[2]), $10 }' |
        while read -r p inode; do
          owner=$(set +f; ls -l /proc/[0-9]*/fd 2>/dev/null | awk -v s="socket:[$inode]" '/^\/proc\// { d = $0 } index($0, s) { sub(/^\/proc\//, "", d); sub(/\/.*/, "", d); print d; exit }')
          echo "$p ${owner:--} - -"
        done
      fi ;;
  esac | head -n 200)
printf '%s\n' "$listeners"

# The backend's port: the nginx target on this host that something listens on; else, when
# nginx's port has no listener, the one application listener there is (nginx may point at
# the wrong port); else nginx's port. Without an nginx route, nothing is guessed.
# A line of $listeners starts with the port and a space (awk printed it, or it is empty).
listens_on() { case "$nl$listeners" in *"$nl$1 "*) return 0 ;; esac; return 1; }
if [ -n "${FLEET_D_port+1}" ]; then
  first=; chosen=; read -r me 2>/dev/null </proc/sys/kernel/hostname || me=$(hostname 2>/dev/null)
  for t in $targets; do
    tp=${t##*:}; th=${t%:*}; th=${th#[}; th=${th%]}
    case $tp in ''|*[!0-9]*) continue ;; esac
    case $th in 127.*|localhost|::1|0.0.0.0|::|"$me") local=1 ;; *) local= ;; esac
    [ -z "$first" ] && [ -n "$local" ] && first=$tp
    if listens_on "$tp"; then
      # The first line naming the target: its where= word (a line not of that form, whole).
      tw=
      while IFS= read -r l; do
        case $l in
          *" addr=$t"*) case $l in "target where="*) tw=${l#target where=}; tw=${tw%% *} ;; *) tw=$l ;; esac; break ;;
        esac
      done <<FLEET_INFO
$nginx_info
FLEET_INFO
      chosen=$tp; why="nginx sends $path to $t ($tw), where a process listens"; break
    fi
  done
  if [ -z "$chosen" ]; then
    # Application listeners: unprivileged ports, not nginx, sshd or a well-known server.
    apps=$(printf '%s\n' "$listeners" | awk '$1 >= 1024 && $3 !~ /^(nginx|sshd|systemd.*|dockerd|docker-proxy|containerd.*|postgres|mysqld|mariadbd|redis-server|memcached|mongod|dnsmasq|chronyd|rpcbind|cupsd|master|exim4|named|unbound|avahi-daemon)$/ && $1 !~ /^(5432|3306|6379|11211|27017)$/ { print $1 }' | sort -u)
    if [ -n "$first" ] && [ "$(printf '%s\n' "$apps" | grep -c .)" = 1 ]; then
      chosen=$apps; why="nginx sends $path to port $first, where nothing listens; the only application listener is on $apps"
    elif [ -n "$first" ]; then
      chosen=$first; why="nginx sends $path to port $first (nothing listens there)"
    fi
  fi
  [ -n "$chosen" ] && port=$chosen && found port "$chosen" "$why"
fi

fleet_section backend
# Its process: the one listening on the port; else one whose command line or environment
# names the port (it may not listen yet); else one matching process_pattern.
psout=$(printf '%s\n' "$psall" | grep -v -e fleet_ -e FLEET_ -e 'nginx: ' | head -n 2000)
# Processes of other PID namespaces are not this host's backend (other sandboxes on the
# machine), unless they run in one of its containers (docker, containerd, podman, kubernetes):
# the first candidate in our namespace (or whose namespace cannot be read) or a container is taken.
own_ns=$(readlink /proc/$$/ns/pid 2>/dev/null)
first_here() {
  while read -r c; do
    n=$($FLEET_SUDO readlink /proc/"$c"/ns/pid 2>/dev/null)
    if [ -z "$own_ns" ] || [ -z "$n" ] || [ "$n" = "$own_ns" ]; then echo "$c"; return; fi
    case $(head -n 20 /proc/"$c"/cgroup 2>/dev/null) in
      *docker*|*containerd*|*libpod*|*kubepods*) echo "$c"; return ;;
    esac
  done
}
pid=$(printf '%s\n' "$listeners" | awk -v p="$port" '$1 == p && $2 ~ /^[0-9]+$/ { print $2 }' | first_here)
how="listens on port $port"
if [ -z "$pid" ]; then
  pid=$(printf '%s\n' "$psout" | awk -v p="$port" '{ a = $0; sub(/^ *[0-9]+ +/, "", a) } $1 ~ /^[0-9]+$/ && a ~ ("(^|[^0-9.])" p "([^0-9.]|$)") && a !~ /^(\[|sh |ps |awk |grep )/ { print $1 }' | first_here)
  how="its command line names port $port"
fi
if [ -z "$pid" ] && [ "$os" = Linux ] && [ "$FLEET_PRIV" = root ]; then
  set +f; procs=$(echo /proc/[0-9]*); set -f
  pid=$(for d in $procs; do
    tr '\0' '\n' 2>/dev/null <"$d/environ" | grep -qx "PORT=$port" && echo "${d#/proc/}"
  done | first_here)
  how="its environment has PORT=$port"
fi
if [ -z "$pid" ] && [ -n "$pat" ]; then
  pid=$(printf '%s\n' "$psout" | awk -v p="$pat" '{ a = $0; sub(/^ *[0-9]+ +/, "", a) } $1 ~ /^[0-9]+$/ && index(a, p) && a !~ /^(sh|ps|awk|grep) / { print $1 }' | first_here)
  how="its command line contains \"$pat\""
fi
if [ -n "$pid" ]; then
  echo "pid=$pid how=$how"
  # (`oneline` inlined where it ends a pipeline: a function there costs a subshell more.)
  if [ -r /proc/$pid/cmdline ]; then args=$(tr '\0\n\r\t' '    ' < /proc/$pid/cmdline | cut -c 1-300)
  else args=$(ps -o command= -p "$pid" 2>/dev/null | oneline); fi
  args=${args% }
  echo "args=$args"
  if [ "$os" = Linux ]; then
    cwd=$($FLEET_SUDO readlink /proc/$pid/cwd 2>/dev/null); exe=$($FLEET_SUDO readlink /proc/$pid/exe 2>/dev/null)
    if [ -n "$FLEET_SUDO" ]; then venv=$($FLEET_SUDO cat /proc/$pid/environ 2>/dev/null | tr '\0' '\n' | sed -n '/^VIRTUAL_ENV=/{s///p;q;}')
    else venv=$(tr '\0' '\n' </proc/$pid/environ 2>/dev/null | sed -n '/^VIRTUAL_ENV=/{s///p;q;}'); fi
    # `FD -> /PATH` lines as "FD /PATH" (what sed 's/^\([0-9]*\) \(\/.*\)/\1 \2/p' kept of them).
    files=$($FLEET_SUDO ls -l /proc/$pid/fd 2>/dev/null | awk 'NF >= 3 && $(NF - 2) ~ /^[0-9]+$/ && $NF ~ /^\// { print $(NF - 2), $NF }')
    # What `head -n 5 FILE | tr '\n\r\t' '   ' | cut -c 1-300` prints, by the shell's `read`
    # (tr and cut only for a tab, a carriage return or a long line, which cgroup paths rarely hold).
    cgroup=; n=0
    while [ "$n" -lt 5 ]; do
      IFS= read -r l || { cgroup=$cgroup$l; break; }
      cgroup="$cgroup$l "; n=$((n + 1))
    done 2>/dev/null </proc/$pid/cgroup
    case $cgroup in *"$(printf '\t')"*|*"$(printf '\r')"*) cgroup=$(printf '%s' "$cgroup" | tr '\r\t' '  ') ;; esac
    [ "${#cgroup}" -gt 300 ] && cgroup=$(printf '%s\n' "$cgroup" | cut -c 1-300)
  else
    lsofs=$(command -v lsof >/dev/null 2>&1 && $FLEET_SUDO lsof -a -p "$pid" -Ffn 2>/dev/null)
    cwd=$(printf '%s\n' "$lsofs" | awk '/^fcwd/ { getline; sub(/^n/, ""); print; exit }')
    exe=; venv=; cgroup=
    files=$(printf '%s\n' "$lsofs" | awk '/^f/ { fd = substr($0, 2) } /^n\// && fd ~ /^[0-9]+/ { sub(/[^0-9].*/, "", fd); print fd, substr($0, 2) }')
  fi
  case $exe$args in */bin/python*) [ -z "$venv" ] && for v in "${exe%/bin/*}" "${args%%/bin/python*}"; do [ -f "$v/pyvenv.cfg" ] && venv=$v && break; done ;; esac
  echo "cwd=$cwd"; echo "exe=$exe"; echo "venv=$venv"; echo "cgroup=$cgroup"
  # The first 50 (as `printf '%s\n' "$files" | head -n 50 | sed 's/^/fd /'`, in the shell).
  n=0
  while [ "$n" -lt 50 ] && IFS= read -r l; do printf 'fd %s\n' "$l"; n=$((n + 1)); done <<FLEET_FILES
$files
FLEET_FILES
  if [ -n "${FLEET_D_process_pattern+1}" ] && [ -n "$args" ]; then
    found process_pattern "$args" "command line of pid $pid, which $how"
  fi
  if [ -n "${FLEET_D_app_log+1}" ]; then
    # The first file named *.log; else the first under /var/log/; else stdout's or stderr's
    # (not a device): one pass of the shell's `read`.
    l1=; l2=; l3=
    while read -r fd path rest; do
      case $path in *.log) [ -z "$l1" ] && l1=$path ;; esac
      case $path in /var/log/*) [ -z "$l2" ] && l2=$path ;; esac
      case $fd in 1|2) case $path in /dev/*) ;; *) [ -z "$l3" ] && l3=$path ;; esac ;; esac
    done <<FLEET_FILES
$files
FLEET_FILES
    log=${l1:-${l2:-$l3}}
    [ -n "$log" ] && [ -f "$log" ] || $FLEET_SUDO test -f "$log" 2>/dev/null || log=
    [ -n "$log" ] && found app_log "$log" "file open by pid $pid"
  fi
fi
# The service manager running it: its container (docker's cgroup names the container id)
# or systemd unit; with no process, a failed or restarting unit or a stopped container whose
# command line names the port. The unit and logs probes then read that one.
if [ -n "${FLEET_D_service+1}" ]; then
  to=; command -v timeout >/dev/null 2>&1 && to='timeout 5'
  has_docker=; command -v docker >/dev/null 2>&1 && has_docker=1
  has_systemd=; [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1 && has_systemd=1
  names_port() { awk -v p="$port" '$0 ~ ("(^|[^0-9.])" p "([^0-9.]|$)") { f = 1 } END { exit !f }'; }
  names_port_line() { awk -v p="$port" '$0 ~ ("(^|[^0-9.])" p "([^0-9.]|$)") { print $1; exit }'; }
  svc=; why=
  cid=
  case ${cgroup:-} in *docker*)  # the only cgroups sed can find an id in
    cid=$(printf '%s\n' "${cgroup:-}" | tr ' ' '\n' | sed -n 's/.*docker[-\/]\([0-9a-f]\{64\}\).*/\1/p' | head -n 1) ;;
  esac
  if [ -n "$cid" ] && [ -n "$has_docker" ]; then
    svc=$($to $FLEET_SUDO docker inspect --type container --format '{{.Name}}' "$cid" 2>/dev/null)
    svc=${svc#/}; why="pid $pid runs in docker container $svc"
  elif [ -n "${cgroup:-}" ] && [ -n "$has_systemd" ]; then
    svc=$(printf '%s\n' "$cgroup" | tr ' ' '\n' | sed -n 's/.*\/system\.slice\/\(.*\)\.service$/\1/p' | head -n 1)
    why="pid $pid runs in systemd unit $svc.service (/proc/$pid/cgroup)"
  fi
  if [ -z "$svc" ] && [ -z "$pid" ] && [ -n "$has_systemd" ]; then
    for u in $(systemctl list-units --type=service --all --no-legend --plain --state=failed,activating 2>/dev/null | awk '{ print $1 }' | head -n 20); do
      if systemctl show -p ExecStart -- "$u" 2>/dev/null | names_port; then
        svc=${u%.service}; why="systemd unit $u is down or restarting and its ExecStart names port $port"; break
      fi
    done
  fi
  if [ -z "$svc" ] && [ -z "$pid" ] && [ -n "$has_docker" ]; then
    svc=$($to $FLEET_SUDO docker ps -a --no-trunc --filter status=exited --filter status=restarting --filter status=created \
          --format '{{.Names}} {{.Command}}' 2>/dev/null | head -n 50 | names_port_line)
    why="docker container $svc is stopped or restarting and its command names port $port"
  fi
  [ -n "$svc" ] && found service "$svc" "$why"
fi

fleet_section nginx-logs
# The logs the config names; else the compiled-in defaults (nginx -V), relative to the prefix.
for kind in error_log access_log; do
  case $kind in error_log) logs=$error_logs ;; *) logs=$access_logs ;; esac
  if [ -z "$logs" ]; then
    case $kind in error_log) logs=$error_log_path ;; *) logs=$http_log_path ;; esac
    case $logs in stderr|syslog:*) logs= ;; esac
    from="nginx -V (compiled-in default)"
  else from="the config's $kind"; fi
  # Absolute, relative to the prefix, joined by spaces (in the shell: no subshell and tr).
  joined=
  for l in $logs; do case $l in /*) ;; *) l=${prefix:-/usr/share/nginx}/$l ;; esac; joined="$joined$l "; done
  logs=${joined% }
  echo "$kind=$logs"
  if [ -n "$logs" ]; then
    case $kind in
      error_log) [ -n "${FLEET_D_nginx_error_log+1}" ] && found nginx_error_log "$logs" "$from" ;;
      *) [ -n "${FLEET_D_nginx_access_log+1}" ] && found nginx_access_log "$logs" "$from" ;;
    esac
  fi
done
exit 0
