svc=$service; pat=$process_pattern
to=; command -v timeout >/dev/null 2>&1 && to='timeout 5'
# systemctl exists on hosts (and containers) where systemd is not PID 1; only
# /run/systemd/system says it is actually running.
if [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; then
  fleet_section systemd
  systemctl show -p LoadState,ActiveState,SubState,Result,NRestarts,MainPID,ExecMainStatus,WorkingDirectory,FragmentPath,ExecStart,ControlGroup -- "$svc" 2>&1 | head -n 20
else
  fleet_section systemd-absent
fi
if command -v docker >/dev/null 2>&1; then
  # Without a daemon docker fails at once; the timeout covers a daemon that hangs.
  # A container that crash-loops under a restart policy is "restarting" with Running true.
  out=$($to $FLEET_SUDO docker inspect --type container --format '{{.State.Status}} running={{.State.Running}} restarting={{.State.Restarting}} oom_killed={{.State.OOMKilled}} pid={{.State.Pid}} exit={{.State.ExitCode}} restarts={{.RestartCount}} memory={{.HostConfig.Memory}} id={{.Id}}
compose_project={{index .Config.Labels "com.docker.compose.project"}}
compose_service={{index .Config.Labels "com.docker.compose.service"}}
finished={{.State.FinishedAt}}
error={{.State.Error}}' -- "$svc" 2>&1)
  fleet_section docker "exit=$?"
  printf '%s\n' "$out" | head -n 8
  # compose's labels: can this host's docker run `docker compose` (v2) to start it?
  if printf '%s\n' "$out" | grep -q '^compose_project=[a-z0-9]'; then
    if $to docker compose version >/dev/null 2>&1; then fleet_section docker-compose cli=yes
    else fleet_section docker-compose cli=no
    fi
  fi
else
  fleet_section docker-absent
fi
# Whose are the processes matching the pattern: a process in another PID namespace (a
# container, a neighbour machine) or in another unit's cgroup is not this host's backend.
# Other users' namespaces need root; cgroups are readable by all.
# listed=all: ps answered, so a matching process missing from this list had ended by now
# (a crash-looping container's, seen by an earlier probe), not merely unseen.
listed=; all=$(ps -eo pid=,args= 2>/dev/null) && listed=all
fleet_section pidns "self=$(readlink /proc/$$/ns/pid 2>/dev/null)" "listed=$listed"
printf '%s\n' "$all" | while read -r pid args; do
  case $args in *"$pat"*) ;; *) continue ;; esac
  case $args in "sh -c "*|*" sh -c "*) continue ;; esac
  cg=$(sed -n 's/^[0-9]*:name=systemd://p; s/^0:://p' /proc/"$pid"/cgroup 2>/dev/null | head -n 1)
  echo "pid=$pid pidns=$($FLEET_SUDO readlink /proc/"$pid"/ns/pid 2>/dev/null) cgroup=$cg"
done | head -n 50
exit 0
