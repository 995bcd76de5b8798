set -f
n=$nginx_log_lines; errors=$nginx_error_log; access=$nginx_access_log
# The host's clock, so the controller can keep only the last nginx_log_minutes of entries;
# the error log's times are local and zoneless, the access log's carry their offset.
# One date for both (and both of the same second); set -f is on: the words are not globbed.
set -- $(date '+%s %Y/%m/%d_%H:%M:%S')
fleet_section clock "epoch=${1-}" "local=${2-}" "minutes=$nginx_log_minutes"
# tail FILE: its last $n lines, readable or through sudo; else say why not.
read_log() {
  if [ -r "$1" ] && [ -f "$1" ]; then tail -n "$n" "$1"
  elif [ -n "$FLEET_SUDO" ] && $FLEET_SUDO test -f "$1"; then $FLEET_SUDO tail -n "$n" "$1"
  else return 1; fi
}
state() { if [ -e "$1" ]; then echo unreadable; else echo missing; fi; }
for f in $errors; do
  # Only what concerns upstreams, the newest 200 such lines, each cut to 1000 characters.
  if out=$(read_log "$f"); then
    fleet_section error_log "path=$f" state=read
    printf '%s\n' "$out" | grep -e upstream -e 'connect() to unix:' | tail -n 200 | cut -c 1-1000
  else fleet_section error_log "path=$f" "state=$(state "$f")"; fi
done
for f in $access; do
  if out=$(read_log "$f"); then
    # Its lines that are not empty (grep -c . in the C locale), counted by the shell's field
    # splitting on newlines alone (set -f is on): no grep.
    fleet_ifs=$IFS; IFS='
'; set -- $out; IFS=$fleet_ifs
    fleet_section access_log "path=$f" state=read "lines=$#"
    printf '%s\n' "$out" | grep '" 502 ' | tail -n 500 | cut -c 1-500
  else fleet_section access_log "path=$f" "state=$(state "$f")"; fi
done
exit 0
