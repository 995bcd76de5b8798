"""Secret shapes redacted from host output, and ordinary output left alone."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fleet.redact import Redactor

REDACTOR = Redactor.build()


@pytest.mark.parametrize("line, expected", [
    ("Authorization: Bearer eyJhbGciOi.abc", "Authorization: Bearer [REDACTED]"),
    ('INFO login ok {"password": "hunter2"}', 'INFO login ok {"password": "[REDACTED]"}'),
    ("DATABASE_URL=postgres://app:s3cr3t@db:5432/app", "DATABASE_URL=postgres://app:[REDACTED]@db:5432/app"),
    ("aws key AKIAIOSFODNN7EXAMPLE used", "aws key [REDACTED] used"),
    ("aws_secret_access_key = wJalrXUtnFEMI/K7MDENG", "aws_secret_access_key = [REDACTED]"),
    ("cookie=eyJhbGciOiJIUzI1.eyJzdWIiOiIxMjM0.SflKxwRJSMeKKF2QT4", "cookie=[REDACTED]"),
    ("-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXk\n-----END OPENSSH PRIVATE KEY-----", "[REDACTED]"),
    ("api_key: 0123456789abcdef", "api_key: [REDACTED]"),
])
def test_secret_shapes_are_masked(line, expected):
    assert REDACTOR.redact(line) == (expected, 1)


@pytest.mark.parametrize("line", [
    "tcp 0 0 127.0.0.1:8000 0.0.0.0:* LISTEN 5/python",
    "upstream backend_app { server 127.0.0.1:8000; }",
    "proxy_pass http://backend_app;",
    "the password policy requires 12 characters",
    "ssl_certificate_key /etc/ssl/private/site.key;",
])
def test_ordinary_output_is_untouched(line):
    assert REDACTOR.redact(line) == (line, 0)


def test_runbook_patterns_extend_the_defaults():
    redactor = Redactor.build([r"(session=)\w+"])
    assert redactor.redact("session=abc123 ok") == ("session=[REDACTED] ok", 1)


def test_parameters_are_masked_by_name_and_redacted_by_shape():
    params = {"db_password": "x", "port": 8000, "url": "https://u:pw@h/"}
    assert REDACTOR.redact_params(params) == {"db_password": "[REDACTED]", "port": 8000,
                                              "url": "https://u:[REDACTED]@h/"}


# Pieces of the secret shapes above and of ordinary output, in any case, glued in any order.
_PIECES = ["password", "PassWD", "pwd", "Secret", "TOKEN", "api_key", "API-KEY", "apikey", "access_key",
           "Access-Key", "aws_secret_access_key", "authorization:", "Bearer ", "AKIA", "ASIA", "eyJ", ".eyJ",
           "://", "@", ":", "=", " = ", '"', "'", " ", "\n", "proxy_pass", "server_tokens", "key", "pass",
           "-----BEGIN RSA PRIVATE KEY-----", "-----END RSA PRIVATE KEY-----", "abcdEFGH0123456789", "x/y"]


@given(st.lists(st.sampled_from(_PIECES), max_size=12))
@settings(max_examples=400, deadline=None)
def test_trigger_words_never_skip_a_pattern_that_would_match(pieces):
    # The trigger words only decide whether a pattern is worth running: with or without them,
    # the same secrets must be masked.
    text = "".join(pieces)
    always = Redactor(tuple((pattern, ()) for pattern, _ in REDACTOR.patterns))
    assert REDACTOR.redact(text) == always.redact(text)
