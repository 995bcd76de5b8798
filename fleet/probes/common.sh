# Homebrew's nginx lives in /opt/homebrew (Apple silicon) or /usr/local, FreeBSD's in /usr/local.
PATH=$PATH:/usr/sbin:/sbin:/usr/local/sbin:/usr/local/bin:/opt/homebrew/sbin:/opt/homebrew/bin
# BSD and macOS ps read -e as "show the environment": every process there is `ps -ax`.
# (A probe that knows the platform sets os and saves a uname.)
fleet_ps_all() {
  case ${os:-$(uname -s 2>/dev/null)} in
    Linux) ps -eo pid=,args= 2>/dev/null || ps -o pid,args 2>/dev/null || ps ;;
    *) ps -ax -o pid=,command= 2>/dev/null ;;
  esac
}
# A ps listing on stdin cut to its first two lines (a header and a row: what a note on a format
# not understood quotes) and the lines naming $1, then
# `== ps-lines n=N ==`, how many lines ps printed: the rules use the matching processes and the
# count, not every program's command line (processes parser).
fleet_ps_matching() {
  command -v awk >/dev/null 2>&1 || { cat; return; }  # some hosts have no awk: the whole listing
  fleet_pat=$1 awk 'NF { n++; if (n <= 2 || index($0, ENVIRON["fleet_pat"])) print }
    END { print "== ps-lines n=" n + 0 " ==" }'
}
fleet_nginx_master() { fleet_ps_all | grep '[n]ginx: master'; }
# The shared step (fleet/probes/spec.py SHARED, run once per script, its output on fd 6 of each
# probe reading it): nginx's master processes (ps's lines), a `#fleet-dump` line, then
# `nginx -T`, only while nginx runs: on a stopped nginx, -t and -T create the pid and log files
# its config names, which would change the host. -T is -t that then prints the config: its
# stderr (written before the config) and exit status are -t's, which the nginx probe shows, so
# stdout and stderr go through one cap together, the exit status out on fd 3 (fleet_probe's way),
# then a last `#fleet-t exit=N` line.
fleet_nginx_dump() {
  fleet_masters=$(fleet_nginx_master)
  printf '%s\n#fleet-dump\n' "$fleet_masters"
  command -v nginx >/dev/null 2>&1 && [ -n "$fleet_masters" ] || return 0
  { fleet_rc=$( { { $FLEET_SUDO nginx -T 2>&1 3>&- 4>&-; echo $? >&3; } | head -n 20000 >&4; } 3>&1 ); } 4>&1
  printf '\n#fleet-t exit=%s\n' "$fleet_rc"
}
# fd 6 read once, in the probe's own shell (before any pipeline): fleet_masters, nginx's master
# processes; fleet_conf, the config of `nginx -T` (empty without it); fleet_t and fleet_t_exit,
# its other lines (-t's) and exit status (empty without them). Without the shared step (a probe
# run alone, or one cut short) ps runs here. Only patterns dash matches in linear time on this
# text: `#"$long_text"` and `#*word` try every prefix, quadratic in the config's length.
fleet_shared() {
  [ -n "${fleet_shared_read+1}" ] && return
  fleet_shared_read=1
  fleet_conf=$(cat <&6 2>/dev/null)
  fleet_masters=${fleet_conf%%"
#fleet-dump"*}
  case $fleet_masters in
    "$fleet_conf") fleet_masters=$(fleet_nginx_master); fleet_conf= ;;
    *) fleet_conf=${fleet_conf#"$fleet_masters
#fleet-dump"} ;;
  esac
  fleet_conf=${fleet_conf#"
"}
  fleet_t=; fleet_t_exit=
  fleet_rest=${fleet_conf%"
#fleet-t exit="*}
  [ "$fleet_rest" = "$fleet_conf" ] && return
  fleet_t_exit=${fleet_conf##*"
#fleet-t exit="}
  fleet_conf=$fleet_rest
  fleet_t=${fleet_conf%%"# configuration file "*}
  fleet_conf=${fleet_conf#"$fleet_t"}
  # Without trailing newlines, as $(...) would have them.
  while :; do case $fleet_conf in *"
") fleet_conf=${fleet_conf%?} ;; *) break ;; esac; done
  while :; do case $fleet_t in *"
") fleet_t=${fleet_t%?} ;; *) break ;; esac; done
}
# The effective nginx config under a section header: the shared `nginx -T`; without it (nginx
# stopped, or no privilege) the usual files under $nginx_conf_dir, includes not followed.
fleet_nginx_config() {
  fleet_shared
  if [ -n "$fleet_conf" ]; then
    fleet_section nginx-T
    printf '%s\n' "$fleet_conf"
    return
  fi
  fleet_section nginx-files
  dir=$nginx_conf_dir
  for f in "$dir"/nginx.conf "$dir"/conf.d/*.conf "$dir"/http.d/*.conf "$dir"/sites-enabled/* "$dir"/servers/*; do
    [ -f "$f" ] && [ -r "$f" ] || continue
    echo "# configuration file $f:"
    head -n 5000 "$f"
  done
}
# The config without what no reader of it needs: blank lines, comments and one-line statements
# of directives other than these (mime types, tuning...). Each run of N lines left out is one
# `#fleet-skip N` line, so the parser numbers the lines after it as nginx does (nginx_state's
# _SKIP). Statements are dropped only where one ended on the line before, and nothing after a
# statement holding a quote or a backslash (a quoted word may span lines).
fleet_nginx_slim() {
  command -v awk >/dev/null 2>&1 || { cat; return; }  # no awk: the whole config
  awk -v keep=" server listen server_name proxy_pass include error_log access_log " '
    function flush() { if (skip) print "#fleet-skip " skip; skip = 0 }
    /^== / || /^# configuration file .*:$/ { skip = 0; quoted = 0; prev = ";"; print; next }
    quoted { print; next }
    /^[ \t]*(#|$)/ { skip++; next }
    /["\047\\]/ { quoted = 1; flush(); print; next }
    prev ~ /[;{}]$/ && /^[ \t]*[^ \t{};#]+([ \t][^{};#]*)?;[ \t]*$/ {
      d = $1; sub(/;$/, "", d)
      if (index(keep, " " d " ") == 0) { skip++; next }
    }
    { flush(); print; prev = $0; sub(/[ \t]+$/, "", prev) }'
}
