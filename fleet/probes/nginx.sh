# nginx's master processes ($fleet_masters): the script's shared step saw them (common.sh).
fleet_shared
fleet_section nginx-ps
master=$fleet_masters
[ -n "$master" ] && printf '%s\n' "$master"
if ! command -v nginx >/dev/null 2>&1; then
  fleet_section nginx-absent
elif [ -z "$master" ]; then
  fleet_section nginx-t-skipped
else
  # -t's result from the shared `nginx -T` (common.sh); without it, nginx -t here.
  if [ -n "$fleet_t_exit" ]; then out=$fleet_t; rc=$fleet_t_exit
  else out=$($FLEET_SUDO nginx -t 2>&1); rc=$?
  fi
  fleet_section nginx-t "exit=$rc" "priv=${FLEET_PRIV:-unknown}"
  printf '%s\n' "$out" | head -n 50
fi
fleet_nginx_config | fleet_nginx_slim
exit 0
