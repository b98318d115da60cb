"""Parse ``KEY=value`` files written for a shell or pam_env.

os-release, ``/etc/default/locale``, ``/etc/locale.conf`` and ``/etc/environment`` all use
this form. Values are unquoted the way a shell would (``PRETTY_NAME="Debian 12"`` →
``Debian 12``); nothing is expanded or run.
"""

from __future__ import annotations

import shlex

__all__ = ["parse_shell_assignments"]


def parse_shell_assignments(text: str) -> dict[str, str]:
    """The assignments in ``text``; comments, blank and unparsable lines are skipped.

    >>> parse_shell_assignments('# c\\nNAME="Debian GNU/Linux"\\nexport LANG=C.UTF-8\\n')
    {'NAME': 'Debian GNU/Linux', 'LANG': 'C.UTF-8'}
    """
    values: dict[str, str] = {}
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, rest = line.partition("=")
        key = key.strip()
        if key.startswith("export "):
            key = key[len("export ") :].strip()
        if not key or not key.replace("_", "").isalnum() or key[0].isdigit():
            continue
        try:
            words = shlex.split(rest, comments=True)
        except ValueError:  # an unbalanced quote: keep the text as written
            words = [rest.strip().strip("\"'")]
        values[key] = " ".join(words)
    return values
