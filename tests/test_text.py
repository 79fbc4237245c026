# SPDX-License-Identifier: MIT
"""The output boundary (check_imap.text) on its own: redaction and sanitising."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from check_imap import text


@pytest.fixture(autouse=True)
def no_secrets() -> Iterator[None]:
    yield
    text._secrets.clear()
    text._pattern.clear()


def test_password_in_every_form_and_case_is_redacted() -> None:
    text.add_secret('pa"ss', "probe")
    line = text.sanitize('LOGIN probe "pa\\"ss" then PA"SS and AHByb2JlAHBhInNz', 300)
    assert line == "LOGIN probe [redacted] then [redacted] and [redacted]"


def test_a_second_pass_leaves_the_marker_whole() -> None:
    """The boundary sanitises each line again; a password that is part of the marker
    ("act") must not eat into the first pass's marker."""
    text.add_secret("act")
    once = text.sanitize("greeting: OK act now", 300)
    assert once == "greeting: OK [redacted] now"
    assert text.sanitize(once, len(once)) == once


def test_pipe_and_control_characters_never_pass() -> None:
    assert (
        text.sanitize("evil|time=99s \x07\x1b[2J\r\nbanner", 300) == "evil/time=99s ??[2J??banner"
    )
