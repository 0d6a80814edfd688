"""Keeping credentials out of the store: environment variables, argv and ``flor.arg`` values.

A name *suggests a credential* when one of its words (split at ``_``, ``-``, ``.``, digits and
camelCase) is in :data:`SECRET_WORDS`, or it contains one of :data:`SECRET_PARTS`, unless its
last word is in :data:`PATH_WORDS`: ``SSL_CERT_FILE``, ``KEY_PATH`` and
``GOOGLE_APPLICATION_CREDENTIALS_DIR`` name where a file is, not a secret; words in
:data:`BENIGN_WORDS` (``tokenizers``) are not searched for parts. Certificates are
public, so ``cert`` is no secret word (``PIP_CERT``, ``SSL_CERT_DIR`` are recorded). Such
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
    "session", "private", "signature", "dsn", "salt", "otp", "pat", "bearer",
})
#: Words that hold a secret part and mean something else (``TOKENIZERS_PARALLELISM``).
BENIGN_WORDS = frozenset({"tokenizer", "tokenizers", "tokenize", "tokenized", "tokenization",
                          "tokenizing"})
#: A name whose last word is one of these holds a location, recorded as it is.
PATH_WORDS = frozenset({"file", "files", "dir", "dirs", "path", "paths", "bundle", "home"})
SECRET_PARTS = ("secret", "token", "password", "passwd", "apikey", "credential", "privatekey")
_WORDS = re.compile(r"[A-Z]?[a-z]+|[A-Z]+(?![a-z])")
_URL_PASSWORD = re.compile(r"(?P<head>[A-Za-z][A-Za-z0-9+.-]*://[^:/@\s]*:)[^@/\s]+(?=@)")


def is_secret(name: str) -> bool:
    """Whether ``name`` suggests a credential (``AWS_SECRET_ACCESS_KEY``, ``hfToken``)."""
    found = [w.lower() for w in _WORDS.findall(name)]
    if found and found[-1] in PATH_WORDS:
        return False
    flat = "".join(w for w in found if w not in BENIGN_WORDS)
    return bool(set(found) & SECRET_WORDS) or any(part in flat for part in SECRET_PARTS)


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
