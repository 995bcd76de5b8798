"""Parser `nginx_state`: is nginx running, is its config valid, where does it send the login path?

Input (probe `nginx`), in sections:
  `== nginx-ps ==`               ps lines containing `nginx: master` (the grep itself too)
  `== nginx-t exit=N priv=P ==`  output of `nginx -t`
  `== nginx-T ==`                `nginx -T`: the effective config, each file after a
                                 `# configuration file PATH:` line
  `== nginx-absent ==`           no nginx binary on PATH
  `== nginx-t-skipped ==`        nginx is not running, so `nginx -t`/`-T` were not run (they
                                 would create missing pid and log files)
  `== nginx-files ==`            the same format, read from nginx_conf_dir when nginx -T gave
                                 nothing (no binary, or no privilege)
The probe leaves out of the config the lines no reader needs, a `#fleet-skip N` line standing
for each run of N of them, so that file:line stays right (`_SKIP`).

An `include` is read where it stands when the files it names are in the dump (nginx -T prints
them after the file that includes them); words are split as nginx's own reader splits them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Iterator, Mapping, NamedTuple
from urllib.parse import urlsplit

from fleet import hostregex
from fleet.models import ProbeOutput
from fleet.probes._common import MAX_ITEMS, clip, hostport, ip_or_none, param, split_hostport, to_int
from fleet.probes.sections import sections
from fleet.probes.spec import Input, ProbeSpec

_FILE_HEADER = re.compile(r"^# configuration file (.+):$")
# `#fleet-skip N`: the probe left out N lines here that no reader needs (blank lines, comments,
# statements no handler reads: fleet_nginx_slim in fleet/probes/common.sh); the next line is
# numbered N further on. Full `nginx -T` output (no marker) reads the same.
_SKIP = re.compile(r"^#fleet-skip ([0-9]{1,9})$")
_ERROR = re.compile(r"\[(emerg|alert|crit|error)\]")
_ERROR_TEXT = re.compile(r"\[(?:emerg|alert|crit|error)\](?: \d+#\d+:)? (.*)$")
# The file may hold spaces: from the first " in /" to the last ":LINE" (the line is clipped first).
_ERROR_WHERE = re.compile(r" in (/.*?):(\d+)\s*$")
_MAX_TOKENS = 200_000
_DEFAULT_PORTS = {"http": 80, "https": 443}


@dataclass(frozen=True)
class NginxTarget:
    """A backend address from a `server` line of an upstream block or a proxy_pass literal."""

    host: str
    port: int | None
    scheme: str
    upstream: str | None
    file: str | None
    line: int | None
    text: str

    @property
    def hostport(self) -> str:
        return hostport(self.host, self.port)

    @property
    def where(self) -> str:
        return f"{self.file}:{self.line}" if self.file else "?"

    @property
    def loopback(self) -> bool:
        """Whether the target is this host's loopback, where fleet's local checks apply."""
        if self.host.lower() == "localhost":
            return True
        address = ip_or_none(self.host)
        return address is not None and address.is_loopback

    @property
    def down(self) -> bool:
        """An upstream server marked `down` (`server 127.0.0.1:8002 down;`): nginx never
        sends a request there. Read from the server line's own parameters."""
        return self.upstream is not None and "down" in self.text.rstrip(";").split()[2:]

    @property
    def evidence(self) -> str:
        """`/etc/nginx/sites-enabled/backend:2: server 127.0.0.1:8001;`"""
        return f"{self.where}: {self.text}"


@dataclass(frozen=True)
class Upstream:
    name: str
    servers: tuple[NginxTarget, ...]
    file: str | None
    line: int | None


@dataclass(frozen=True)
class Location:
    """A `location` block, with the server block it belongs to."""

    modifier: str
    path: str
    proxy_pass: str | None
    server_names: tuple[str, ...]
    listen_ports: tuple[int, ...]
    default_server: bool
    file: str | None
    line: int | None

    @property
    def where(self) -> str:
        return f"{self.file}:{self.line}" if self.file else "?"


@dataclass(frozen=True)
class NginxFacts:
    """nginx's state. `test_ok` is None when `nginx -t` could not judge the config
    (nginx absent, or it failed only for lack of privilege)."""

    installed: bool | None
    running: bool
    master: str | None
    test_exit: int | None
    test_ok: bool | None
    test_error: str | None
    test_error_file: str | None
    test_error_line: int | None
    config_source: str | None
    upstreams: tuple[Upstream, ...]
    locations: tuple[Location, ...]
    login_location: Location | None
    backend: tuple[NginxTarget, ...]
    notes: tuple[str, ...] = ()

    @property
    def config_invalid(self) -> bool:
        return self.test_ok is False

    @property
    def backend_hostports(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(t.hostport for t in self.backend))

    def backend_on_port(self, port: Any) -> tuple[NginxTarget, ...]:
        """The login location's targets that use `port`."""
        port = to_int(port)
        return tuple(t for t in self.backend if t.port == port)

    def loopback_on_port(self, port: Any) -> tuple[NginxTarget, ...]:
        """The login location's targets on this host's loopback that use `port`."""
        return tuple(t for t in self.backend_on_port(port) if t.loopback)

    def upstream_mismatch(self, answering: Any) -> tuple[NginxTarget, ...]:
        """The login location's targets where no backend answered (pass `http.answering`)."""
        try:
            answered = {str(a) for a in answering or ()}
        except TypeError:
            answered = set()
        return tuple(t for t in self.backend if t.hostport not in answered)

    @property
    def backend_evidence(self) -> str:
        return "\n".join(t.evidence for t in self.backend)


@dataclass
class _Server:
    """A `server { }` block while parsing."""

    names: list[str] = field(default_factory=list)
    ports: list[int] = field(default_factory=list)
    default: bool = False
    locations: list[dict[str, Any]] = field(default_factory=list)


# One token at a time after optional blanks, split as nginx's own reader does: a comment (only
# where a token starts; to the end of the line), a brace or semicolon, a quoted word (may span
# lines; a backslash escapes the quote), an opening quote left unclosed, or a bare word, which
# runs to a blank, `;` or `{` (a `}` or `#` inside it is part of it, so is `${var}`; a
# backslash takes the next character into it, `\;` and `\{` included).
_TOKEN = re.compile(
    r"""\s*(?:(\#[^\n]*)|([{};])|"((?:[^"\\]|\\[\s\S])*)"|'((?:[^'\\]|\\[\s\S])*)'|(["'][^\n]*)|"""
    r"""((?:\\[\s\S]?|\$\{|[^\s;{\\])+))"""
)
# nginx turns these escapes of a token into the character: \" \' \\ \t \r \n.
_ESCAPE = re.compile(r"""\\(["'\\tnr])""")
_ESCAPED = {"t": "\t", "n": "\n", "r": "\r"}
# A quoted word may span lines; past this many (or chars), an unclosed quote runs to the end of its line.
_MAX_QUOTED_LINES = 64
_MAX_QUOTED_CHARS = 65_536
_MAX_INCLUDE_DEPTH = 16
_GLOB_CHARS = re.compile(r"[*?\[]")

# A line holding one whole `directive args;` and nothing else (no block, quote, comment or escape).
# The directive must end at a blank or the `;`, so a line without `;` fails in linear time (the
# directive and its arguments once overlapped: quadratic on a 300 KB line).
_SIMPLE_STATEMENT = re.compile(r"""\s*([^\s{};#"'\\]+)(?:\s[^{};#"'\\]*)?;\s*$""")


@dataclass(frozen=True)
class _Token:
    """A word (`punct` "") or one of `{`, `}`, `;` (`punct` the same), where it starts."""

    text: str
    punct: str
    line: int


def _lex(text: str, first_line: int, strict: bool) -> list[_Token] | None:
    """The tokens of `text`, whose first line is `first_line`; None when `strict` and a quote
    is left open (the caller then adds the next line)."""
    result = []
    line, counted = first_line, 0
    # Trailing blanks are dropped first: `\s*` retried at each of them would take quadratic time.
    for match in _TOKEN.finditer(text.rstrip()):
        comment, punct, dquoted, squoted, open_quote, word = match.groups()
        if comment is not None:
            continue
        if open_quote:
            if strict:
                return None
            dquoted = open_quote[1:]
        value = punct or next(v for v in (dquoted, squoted, word, "") if v is not None)
        if not punct:
            value = _ESCAPE.sub(lambda m: _ESCAPED.get(m.group(1), m.group(1)), value)
        start = match.end() - len(match.group(0).lstrip())
        line += text.count("\n", counted, start)
        counted = start
        result.append(_Token(value, punct or "", line))
    return result


def _file_tokens(lines: list[tuple[int, str]]) -> list[_Token]:
    """The tokens of one config file. Simple statements of directives that no handler reads
    (`_STATEMENTS`, and `include`) are left out untokenized: mime types, log formats and most of
    what nginx -T prints."""
    result: list[_Token] = []
    pending, pending_start, pending_lines = "", 0, 0
    for index, (number, raw) in enumerate(lines):
        if pending_lines:
            text, first, pending_lines = pending + "\n" + raw, pending_start, pending_lines + 1
        else:
            between_statements = not result or bool(result[-1].punct)
            simple = _SIMPLE_STATEMENT.match(raw) if between_statements else None
            if simple and simple.group(1) not in _STATEMENTS and simple.group(1) != "include":
                continue
            text, first, pending_lines = raw, number, 1
        strict = pending_lines < _MAX_QUOTED_LINES and len(text) < _MAX_QUOTED_CHARS and index < len(lines) - 1
        tokens = _lex(text, first, strict)
        if tokens is None:
            pending, pending_start = text, first
            continue
        result += tokens
        pending_lines = 0
        if len(result) > _MAX_TOKENS:
            break
    return result


def _config_files(lines: list[str]) -> dict[str | None, list[tuple[int, str]]]:
    """The numbered lines of each file of a config dump, in order, split at nginx -T's
    `# configuration file X:` lines (lines before the first one belong to file None)."""
    files: dict[str | None, list[tuple[int, str]]] = {None: []}
    current: str | None = None
    number = {None: 0}
    for raw in lines:
        header = _FILE_HEADER.match(raw)
        skip = _SKIP.match(raw) if raw.startswith("#fleet-skip ") else None
        if header:
            current = header.group(1)
            files.setdefault(current, [])
            number.setdefault(current, 0)
        elif skip:
            number[current] += int(skip.group(1))
        else:
            number[current] += 1
            files[current].append((number[current], raw))
    return files


def _glob(pattern: str) -> re.Pattern[str]:
    """An include path with wildcards as a regex: `*` and `?` within one path component."""
    parts = re.split(r"(\*|\?)", pattern)
    return re.compile("".join("[^/]*" if p == "*" else "[^/]" if p == "?" else re.escape(p) for p in parts))


def _included(pattern: str, names: list[str], prefix: str) -> list[str]:
    """The dumped files an `include` names: relative paths are from the main file's directory
    (nginx's conf prefix); wildcards match in name order, as nginx's glob does."""
    path = pattern if pattern.startswith("/") else f"{prefix}/{pattern}"
    if not _GLOB_CHARS.search(path):
        return [path] if path in names else []
    regex = _glob(path)
    return sorted(name for name in names if regex.fullmatch(name))


def _tokens(lines: list[str]) -> Iterator[tuple[_Token, str | None]]:
    """Tokens of an nginx config dump, with the file each comes from.

    nginx -T prints an included file after the file that includes it, so each `include`
    whose files are in the dump is replaced by their tokens, where it stands (in an upstream,
    a server, a location). Files no include reached are read after, in dump order.
    """
    files = _config_files(lines)
    names = [name for name in files if name is not None]
    main = names[0] if names else None
    prefix = main.rpartition("/")[0] if main else ""
    cache: dict[str | None, list[_Token]] = {}
    reached: set[str | None] = set()
    budget = [_MAX_TOKENS]

    def expand(name: str | None, depth: int) -> Iterator[tuple[_Token, str | None]]:
        reached.add(name)
        if name not in cache:
            cache[name] = _file_tokens(files[name])
        tokens = cache[name]
        i = 0
        while i < len(tokens) and budget[0] > 0:
            token = tokens[i]
            at_start = i == 0 or bool(tokens[i - 1].punct)
            if at_start and token.text == "include" and not token.punct and i + 2 < len(tokens) \
                    and not tokens[i + 1].punct and tokens[i + 2].punct == ";" and depth < _MAX_INCLUDE_DEPTH:
                matched = _included(tokens[i + 1].text, names, prefix)
                if matched:
                    for included in matched:
                        yield from expand(included, depth + 1)
                    i += 3
                    continue
            budget[0] -= 1
            yield token, name
            i += 1

    for name in [None, *names]:
        if name not in reached:
            yield from expand(name, 0)


def _target(address: str, scheme: str, upstream: str | None, file: str | None, line: int | None, text: str) -> NginxTarget:
    host, port = split_hostport(address)
    return NginxTarget(host, port if port is not None else _DEFAULT_PORTS.get(scheme, 80), scheme, upstream, file, line, clip(text))


def _listen_port(value: str) -> int | None:
    """`80`, `127.0.0.1:80`, `[::]:80`, `*:80` -> 80; a bare address listens on 80."""
    if value.startswith("unix:"):
        return None
    if value.isdigit():
        return int(value)
    return split_hostport(value)[1] or 80


class _Frame(NamedTuple):
    """An open block while reading, with the innermost server and location around it (itself
    included), so that deep nesting costs nothing per statement (30,000 nested blocks once cost
    12 s when each statement searched the stack)."""

    directive: str
    args: list[str]
    built: Any
    server: "_Server | None"
    location: dict[str, Any] | None
    in_upstream: bool


_Stack = list[_Frame]


def _read_config(lines: list[str]) -> tuple[dict[str, Upstream], list[_Server]]:
    """Upstream blocks and server blocks (with their locations) of an nginx config."""
    upstreams: dict[str, Upstream] = {}
    servers: list[_Server] = []
    stack: _Stack = []
    words: list[str] = []
    start: tuple[str | None, int] = (None, 0)
    for item, file in _tokens(lines):
        token = item.punct
        if not token:
            if not words:
                start = (file, item.line)
            words.append(item.text)
            continue
        name, args = (words[0], words[1:]) if words else ("", [])
        text = " ".join(words) + ";"
        words = []
        if token == "{":
            built: Any = None
            if name == "upstream" and args:
                built = {"name": args[0], "servers": [], "file": start[0], "line": start[1]}
            elif name == "server" and not (stack and stack[-1].in_upstream):
                built = _Server()
                servers.append(built)
            elif name == "location" and args:
                modifier, path = (args[0], args[1]) if len(args) > 1 else ("", args[0])
                server = stack[-1].server if stack else None
                built = {"modifier": modifier, "path": path, "proxy_pass": None, "file": start[0], "line": start[1]}
                if server is not None and len(server.locations) < MAX_ITEMS:
                    server.locations.append(built)
            parent = stack[-1] if stack else None
            stack.append(_Frame(name, args, built,
                                built if isinstance(built, _Server) else parent.server if parent else None,
                                built if name == "location" and built is not None
                                else parent.location if parent else None,
                                name == "upstream" or bool(parent and parent.in_upstream)))
        elif token == "}":
            if stack:
                name, _, built, *_ = stack.pop()
                if name == "upstream" and isinstance(built, dict) and len(upstreams) < MAX_ITEMS:
                    upstreams[built["name"]] = Upstream(built["name"], tuple(built["servers"]), built["file"], built["line"])
        elif stack and args and name in _STATEMENTS:
            _STATEMENTS[name](stack, args, start, text)
    return upstreams, servers


def _upstream_server(stack: _Stack, args: list[str], start: tuple[str | None, int], text: str) -> None:
    block, _, upstream, *_ = stack[-1]
    if block == "upstream" and isinstance(upstream, dict) and not args[0].startswith("unix:") \
            and len(upstream["servers"]) < MAX_ITEMS:
        upstream["servers"].append(_target(args[0], "http", upstream["name"], start[0], start[1], text))


def _listen(stack: _Stack, args: list[str], start: tuple[str | None, int], text: str) -> None:
    server = stack[-1][2]
    if isinstance(server, _Server):
        port = _listen_port(args[0])
        if port is not None:
            server.ports.append(port)
        server.default = server.default or "default_server" in args


def _server_name(stack: _Stack, args: list[str], start: tuple[str | None, int], text: str) -> None:
    server = stack[-1][2]
    if isinstance(server, _Server):
        server.names.extend(a.lower() for a in args)


def _proxy_pass(stack: _Stack, args: list[str], start: tuple[str | None, int], text: str) -> None:
    location = stack[-1].location
    if location is not None:
        location.update(proxy_pass=args[0], pp_file=start[0], pp_line=start[1], pp_text=text)


# The simple statements _read_config acts on, by directive. `_tokens` skips every other one, so
# a directive gets read by adding its handler here, and only here.
_STATEMENTS = {"server": _upstream_server, "listen": _listen, "server_name": _server_name, "proxy_pass": _proxy_pass}


def _name_matches(name: str, host: str) -> bool:
    if name.startswith("*."):
        return host.endswith(name[1:])
    if name.startswith("."):
        return host == name[1:] or host.endswith(name)
    return name == host


def _pick_server(servers: list[_Server], proxy_url: str) -> _Server | None:
    """The server block nginx would pick for `proxy_url`: same port, then server_name,
    then default_server, then the first."""
    try:
        url = urlsplit(proxy_url)
        host, port = (url.hostname or "").lower(), url.port or _DEFAULT_PORTS.get(url.scheme, 80)
    except ValueError:
        host, port = "", 80
    # A server block without `listen` listens on 80.
    candidates = [s for s in servers if port in (s.ports or [80])] or servers
    for server in candidates:
        if any(_name_matches(n, host) for n in server.names):
            return server
    return next((s for s in candidates if s.default), candidates[0] if candidates else None)


def _match_location(locations: list[dict[str, Any]], path: str) -> dict[str, Any] | None:
    """nginx's location choice: exact `=`, else the longest prefix unless `^~` stops there,
    regexes (`~`, `~*`) in order, else that longest prefix.

    The regexes are the host's: they run on RE2 (linear time), never on Python's backtracking
    `re`. One RE2 cannot run (a backreference, a lookaround) makes the choice unknowable:
    CannotEvaluate.
    """
    prefix = None
    for location in locations:
        if location["modifier"] == "=" and location["path"] == path:
            return location
        if location["modifier"] in ("", "^~") and path.startswith(location["path"]):
            if prefix is None or len(location["path"]) > len(prefix["path"]):
                prefix = location
    if prefix is not None and prefix["modifier"] == "^~":
        return prefix
    for location in locations:
        if location["modifier"] in ("~", "~*"):
            try:
                if hostregex.search(location["path"], path, ignore_case=location["modifier"] == "~*"):
                    return location
            except hostregex.Unsupported as exc:
                raise CannotEvaluate(f"cannot evaluate location {location['modifier']} {location['path']} "
                                     f"({location['file'] or '?'}:{location['line']}): {exc}") from None
    return prefix


class CannotEvaluate(ValueError):
    """The config decides with something fleet will not run; the message says what."""


def _resolve(location: dict[str, Any], upstreams: dict[str, Upstream]) -> tuple[tuple[NginxTarget, ...], str | None]:
    """The backend targets of a location's proxy_pass, or a note saying why there are none."""
    proxy_pass = location.get("proxy_pass")
    if not proxy_pass:
        return (), f"location {location['path']} has no proxy_pass"
    if "$" in proxy_pass:
        return (), f"proxy_pass {proxy_pass} uses variables: not resolved"
    scheme, sep, rest = proxy_pass.partition("://")
    if not sep:
        return (), f"proxy_pass {proxy_pass} not understood"
    address = rest.split("/", 1)[0]
    if address.startswith("unix:"):
        return (), f"proxy_pass {proxy_pass} is a unix socket"
    if address in upstreams:
        servers = upstreams[address].servers
        live = tuple(t for t in servers if not t.down)
        return live, None if live or not servers else f"every server of upstream {address} is marked down"
    return (_target(address, scheme, None, location.get("pp_file"), location.get("pp_line"), location.get("pp_text", "")),), None


def _location(location: dict[str, Any], server: _Server) -> Location:
    return Location(
        location["modifier"], location["path"], location["proxy_pass"], tuple(server.names),
        tuple(server.ports), server.default, location["file"], location["line"],
    )


def _test(attrs: dict[str, str], lines: list[str]) -> dict[str, Any]:
    """`nginx -t`: ok or not, and the first error with its file and line."""
    exit_code = to_int(attrs.get("exit"))
    error_line = next((clip(line.strip()) for line in lines if _ERROR.search(line)), None)
    text = _ERROR_TEXT.search(error_line) if error_line else None
    where = _ERROR_WHERE.search(error_line) if error_line else None
    ok: bool | None = exit_code == 0 if exit_code is not None else None
    # Unprivileged, nginx -t fails on the pid file, logs or keys, whatever the config says.
    if not ok and attrs.get("priv") == "user" and any("Permission denied" in line for line in lines):
        ok = None
    return {
        "test_exit": exit_code,
        "test_ok": ok,
        "test_error": clip(text.group(1)) if text else error_line,
        "test_error_file": where.group(1) if where else None,
        "test_error_line": to_int(where.group(2)) if where else None,
    }


def parse(output: ProbeOutput, inputs: Mapping[str, Any]) -> NginxFacts:
    """Read nginx's state and resolve the backend targets of the location serving login_path."""
    login_path = str(param(inputs, "login_path", "/api/v1/demo-login"))
    proxy_url = str(param(inputs, "proxy_url", "http://localhost"))
    facts: dict[str, Any] = {
        "installed": None, "running": False, "master": None, "test_exit": None, "test_ok": None,
        "test_error": None, "test_error_file": None, "test_error_line": None, "config_source": None,
    }
    notes: list[str] = []
    config: list[str] = []
    for section in sections(output.stdout):
        if section.name == "nginx-ps":
            for line in section.lines:
                # ps also lists the probe's own shell and grep, whose args merely contain the words.
                parts = line.split(None, 1)
                if len(parts) == 2 and parts[1].startswith("nginx: master process"):
                    facts.update(running=True, master=clip(line.strip()))
                    break
        elif section.name == "nginx-t":
            facts.update(installed=True, **_test(section.attrs, section.lines))
        elif section.name == "nginx-absent":
            facts["installed"] = False
        elif section.name == "nginx-t-skipped":
            facts["installed"] = True
            notes.append("nginx -t not run: nginx is not running, and nginx -t would create its missing pid "
                         "and log files")
        elif section.name in ("nginx-T", "nginx-files"):
            config = section.lines
            facts["config_source"] = section.name
            if section.name == "nginx-files":
                notes.append("config read from the usual files (nginx -T not run or gave nothing), includes not followed")
    if facts["installed"] and facts["test_ok"] is None and facts["running"]:
        notes.append("nginx -t could not judge the config without privilege")
    upstreams, servers = _read_config(config)
    if config and not servers:
        notes.append("no server blocks in the config")
    server = _pick_server(servers, proxy_url)
    locations = tuple(_location(loc, s) for s in servers for loc in s.locations)[:MAX_ITEMS]
    undecided = False
    try:
        chosen = _match_location(server.locations, login_path) if server else None
    except CannotEvaluate as exc:
        chosen, undecided = None, True
        notes.append(str(exc))
    backend: tuple[NginxTarget, ...] = ()
    login_location = None
    if server is not None and chosen is not None:
        login_location = _location(chosen, server)
        backend, note = _resolve(chosen, upstreams)
        if note:
            notes.append(note)
    elif config and not undecided:
        notes.append(f"no location serves {login_path}")
    return NginxFacts(
        **facts,
        upstreams=tuple(upstreams.values()),
        locations=locations,
        login_location=login_location,
        backend=backend,
        notes=tuple(notes),
    )


PROBE = ProbeSpec(
    name="nginx",
    parser="nginx_state",
    parse=parse,
    description='Is nginx running, is its config valid, and where does it send the login path?',
    inputs=(
        Input("nginx_conf_dir", "where nginx's config lives; read when nginx -T gives nothing"),
        # Which location serves the login path, and nginx's address as the host sees it.
        Input("login_path", "path users hit", parse_only=True),
        Input("proxy_url", "base URL of nginx as seen from the host", parse_only=True),
    ),
    timeout_s=15,
    libraries=("common",),
    reads="nginx_config",
)
