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
fleet_nginx_master() { fleet_ps_all | grep '[n]ginx: master'; }
# The effective nginx config under a section header. `nginx -T` only while nginx runs: on a
# stopped nginx, -t and -T create the pid and log files its config names, which would change
# the host. Otherwise (or without privilege) the usual files are read, includes not followed.
# (A probe that already listed the processes sets fleet_master and saves a ps.)
fleet_nginx_config() {
  fleet_conf=
  [ -n "${fleet_master+1}" ] || fleet_master=$(fleet_nginx_master)
  if command -v nginx >/dev/null 2>&1 && [ -n "$fleet_master" ]; then
    fleet_conf=$($FLEET_SUDO nginx -T 2>/dev/null | head -n 20000)
  fi
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
