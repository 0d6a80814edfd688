"""Keeping credentials out of the store: environment variables, argv and ``flor.arg`` values.

A name *suggests a credential* when one of its words (split at ``_``, ``-``, ``.``, digits and
camelCase) is in :data:`SECRET_WORDS`, or it contains one of :data:`SECRET_PARTS`. Such
environment variables are not recorded at all; such command-line options and ``flor.arg``
values are recorded as :data:`REDACTED`. A value holding a URL with a password
(``scheme://user:password@host``) has the password replaced, whatever its name.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

REDACTED = "[redacted by flordb]"
SECRET_WORDS = frozenset({
    "key", "apikey", "token", "secret", "secrets", "password", "passwd", "pass", "passphrase",
    "credential", "credentials", "creds", "auth", "authorization", "cookie",
    "session", "private", "signature", "dsn", "cert", "salt", "otp", "pat", "bearer",
})
SECRET_PARTS = ("secret", "token", "password", "passwd", "apikey", "credential", "privatekey")
_WORDS = re.compile(r"[A-Z]?[a-z]+|[A-Z]+(?![a-z])")
_URL_PASSWORD = re.compile(r"(?P<head>[A-Za-z][A-Za-z0-9+.-]*://[^:/@\s]*:)[^@/\s]+(?=@)")


def is_secret(name: str) -> bool:
    """Whether ``name`` suggests a credential (``AWS_SECRET_ACCESS_KEY``, ``hfToken``)."""
    words = {w.lower() for w in _WORDS.findall(name)}
    flat = re.sub(r"[^a-z]", "", name.lower())
    return bool(words & SECRET_WORDS) or any(part in flat for part in SECRET_PARTS)


def scrub(value: str) -> str:
    """``value`` with the passwords of URLs in it replaced."""
    return _URL_PASSWORD.sub(lambda m: m.group("head") + REDACTED, value)


def environment(environ: Mapping[str, str]) -> dict[str, str]:
    """The environment variables as they may be recorded: credentials by name only (their
    value :data:`REDACTED`), passwords in URLs scrubbed."""
    return {k: REDACTED if is_secret(k) else scrub(v) for k, v in sorted(environ.items())}


def argv(args: list[str]) -> list[str]:
    """``args`` with the values of credential-like options (``--token X``, ``--api-key=X``)
    and ``--kwargs`` pairs (``api_key=X``) redacted, and URL passwords scrubbed."""
    out: list[str] = []
    hide_next = False
    for a in args:
        if hide_next:
            out.append(REDACTED)
            hide_next = False
            continue
        if a.startswith("-") and is_secret(a.lstrip("-").split("=", 1)[0]):
            if "=" in a:
                out.append(a.split("=", 1)[0] + "=" + REDACTED)
            else:
                out.append(a)
                hide_next = True
            continue
        name, eq, _ = a.partition("=")
        if eq and name.isidentifier() and is_secret(name):  # --kwargs api_key=...
            out.append(f"{name}={REDACTED}")
            continue
        out.append(scrub(a))
    return out
