set -f
t=$http_timeout; login=$login_path; health=$health_path; proxy=${proxy_url%/}
# Credentials in proxy_url (user:password@) go to curl on its stdin (-K -), never on a
# command line, which every user of the host can read; wget is sent none.
auth=; where=${proxy#*://}; where=${where%%/*}
case $where in *@*) auth=${where%@*}; proxy=${proxy%%://*}://${where##*@}${proxy#*://"$where"} ;; esac
case $auth in *\\*|*\"*) auth=$(printf '%s' "$auth" | sed 's/[\\"]/\\&/g') ;; esac
body='{"username":"fleet-probe","password":"x"}'
if command -v curl >/dev/null 2>&1; then client=curl
elif command -v wget >/dev/null 2>&1; then client=wget
else client=none
fi
fleet_section http "client=$client"
[ "$client" = none ] && exit 0
to=; command -v timeout >/dev/null 2>&1 && to="timeout $((t + 2))"
wt=
if [ "$client" = wget ]; then
  # GNU wget retries 20 times by default; Debian's BusyBox wget has no -T at all.
  if wget --version 2>/dev/null | grep -q 'GNU Wget'; then wt="-T $t -t 1"
  elif wget --help 2>&1 | grep -q -- '-T '; then wt="-T $t"
  fi
fi
# curl ARGS, with $cfg (the credentials) as its config on stdin; without credentials no printf
# process and pipe (each attempt costs forks, and the probe makes six or more). Only ever run
# in a command substitution, whose subshell curl then replaces (exec: one fork less).
fleet_curl() {
  if [ -n "$cfg" ]; then printf '%s\n' "$cfg" | curl -K - "$@"
  else exec curl "$@" </dev/null
  fi
}
# attempt LABEL BASE_URL PATH METHOD: prints one line per attempt.
attempt() {
  if [ "$client" = curl ]; then
    cfg=; [ "$1" = proxy ] && [ -n "$auth" ] && cfg="user = \"$auth\""
    if [ "$4" = POST ]; then
      r=$(fleet_curl -g -s -o /dev/null --max-time "$t" -w 'code=%{http_code} connect=%{time_connect} total=%{time_total}' -H 'Content-Type: application/json' --data "$body" "$2$3")
    else
      r=$(fleet_curl -g -s -o /dev/null --max-time "$t" -w 'code=%{http_code} connect=%{time_connect} total=%{time_total}' "$2$3")
    fi
    echo "target=$1 path=$3 method=$4 $r exit=$?"
  else
    if [ "$4" = POST ]; then
      r=$($to wget -S -O /dev/null $wt --header 'Content-Type: application/json' --post-data "$body" "$2$3" 2>&1)
    else
      r=$($to wget -S -O /dev/null $wt "$2$3" 2>&1)
    fi
    rc=$?
    # wget -S prints the status line indented; its own messages are not.
    code=$(printf '%s\n' "$r" | sed -n 's/^ *HTTP\/[0-9.]* \([0-9][0-9]*\).*/\1/p' | tail -n 1)
    case $r in *' connected.'*) conn=1 ;; *) conn=0 ;; esac
    err=$(printf '%s\n' "$r" | grep -i -e refused -e 'timed out' -e error -e 'failed' -e "can't" | tail -n 1)
    echo "target=$1 path=$3 method=$4 code=${code:-000} connected=$conn exit=$rc error=$err"
  fi
}
# nginx's upstream targets: `server` lines in `upstream` blocks and proxy_pass
# http://host:port literals (names of upstream blocks are not hosts).
extra=$(fleet_nginx_config | awk '
    function add(a) {
      if (a ~ /^unix:/ || a ~ /\$/ || a == "") return
      if (a !~ /:[0-9]+$/) a = a ":80"
      if (!(a in seen)) { seen[a] = 1; print a }
    }
    {
      sub(/#.*/, ""); gsub(/[{};]/, "\n&\n"); n = split($0, parts, "\n")
      for (i = 1; i <= n; i++) {
        s = parts[i]; gsub(/^[ \t]+|[ \t]+$/, "", s)
        if (s == "{") { depth++; if (pending != "") { updepth = depth; ups[pending] = 1; pending = "" } }
        else if (s == "}") { if (depth == updepth) updepth = 0; depth-- }
        else if (s != "" && s != ";") {
          split(s, w, /[ \t]+/)
          if (w[1] == "upstream") pending = w[2]
          else if (w[1] == "server" && updepth) add(w[2])
          else if (w[1] == "proxy_pass" && w[2] ~ /^http:\/\//) pp[++npp] = substr(w[2], 8)
        }
      }
    }
    END {
      for (i = 1; i <= npp; i++) {
        a = pp[i]; sub(/\/.*/, "", a); h = a; sub(/:[0-9]+$/, "", h)
        if (!(h in ups)) add(a)
      }
    }' | head -n 6)
# every ACTION: `ACTION TARGET BASE_URL PATH METHOD` for each attempt, always in this order.
every() {
  seen=
  for tg in "127.0.0.1:$port" "[::1]:$port" $extra; do
    case " $seen " in *" $tg "*) continue ;; esac
    seen="$seen $tg"
    case $tg in "127.0.0.1:$port"|"[::1]:$port") $1 "$tg" "http://$tg" "$health" GET ;; esac
    $1 "$tg" "http://$tg" "$login" POST
  done
  $1 proxy "$proxy" "$login" POST
  $1 proxy "$proxy" "$health" GET
}
# All at once, so a hanging backend costs one time limit, not one per attempt. Each
# attempt prints a single short line, which a pipe writes whole.
alone() { attempt "$@" & }
nl='
'
cr=$(printf '\r')
if [ "$client" = curl ]; then
  # One curl start-up (~6 ms of CPU, most of this probe's) for every attempt: its config on
  # stdin, one transfer per `next`, all at once (--parallel and --parallel-immediate, curl
  # 7.68), each printing its own line with its own exit code (%{exitcode}, curl 7.75). An
  # attempt that has no such line (an older curl: an unknown option is exit 2 and no line; no
  # %{exitcode}: an empty exit, which only an HTTP answer makes needless) runs alone as before.
  # Values that curl's config syntax would read otherwise (quote, backslash, line break) and a
  # time limit that is not a number are never put in it: those attempts run alone too.
  cfg="silent${nl}parallel${nl}parallel-immediate"; i=0; sep=
  plan() {
    i=$((i + 1)); a=; [ "$1" = proxy ] && a=$auth
    case $2$3$a$t in *[\\\"]*|*"$nl"*|*"$cr"*) return ;; esac
    case $t in ''|*[!0-9.]*) return ;; esac
    cfg="$cfg$sep${nl}globoff${nl}output = \"/dev/null\"${nl}max-time = $t${nl}url = \"$2$3\""
    cfg="$cfg${nl}write-out = \"i=$i code=%{http_code} connect=%{time_connect} total=%{time_total} exit=%{exitcode}\\n\""
    [ -n "$a" ] && cfg="$cfg${nl}user = \"$a\""
    [ "$4" = POST ] && cfg="$cfg${nl}header = \"Content-Type: application/json\"${nl}data = \"{\\\"username\\\":\\\"fleet-probe\\\",\\\"password\\\":\\\"x\\\"}\""
    sep="${nl}next"
  }
  every plan
  out=; [ -n "$sep" ] && out=$(printf '%s\n' "$cfg" | curl -K - 2>/dev/null)
  # report: the line of attempt $i, or the attempt run alone.
  report() {
    i=$((i + 1))
    r=$nl$out$nl
    case $r in *"${nl}i=$i code="*) r=${r#*"${nl}i=$i "}; r=${r%%"$nl"*} ;; *) r= ;; esac
    e=${r##*" exit="}
    case $r in *" exit="*) ;; *) r= ;; esac
    case $r:$e in
      :*|"code=000 "*:|*:*[!0-9]*) alone "$@" ;;
      *) echo "target=$1 path=$3 method=$4 $r" ;;
    esac
  }
  i=0; every report
else
  every alone
fi
wait
exit 0
