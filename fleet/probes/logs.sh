f=$app_log; svc=$service
to=; command -v timeout >/dev/null 2>&1 && to='timeout 8'
if [ -r "$f" ] && [ -f "$f" ]; then
  fleet_section logs source=file; tail -n 200 "$f"
elif [ -n "$FLEET_SUDO" ] && $FLEET_SUDO test -f "$f"; then
  fleet_section logs source=file-sudo; $FLEET_SUDO tail -n 200 "$f"
elif [ -d /run/systemd/system ] && command -v journalctl >/dev/null 2>&1 &&
     [ "$(systemctl show -p LoadState --value -- "$svc" 2>/dev/null)" = loaded ]; then
  # only a loaded unit: journalctl -u answers "-- No entries --" for any name
  fleet_section logs source=journal; $to $FLEET_SUDO journalctl -u "$svc" -n 200 --no-pager -o cat 2>&1
elif command -v docker >/dev/null 2>&1 && $to $FLEET_SUDO docker inspect --type container -- "$svc" >/dev/null 2>&1; then
  fleet_section logs source=docker; $to $FLEET_SUDO docker logs --tail 200 "$svc" 2>&1
else
  fleet_section logs source=none
fi
exit 0
