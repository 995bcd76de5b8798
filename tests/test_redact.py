"""Secret shapes redacted from host output, and ordinary output left alone."""

from __future__ import annotations

import pytest

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
