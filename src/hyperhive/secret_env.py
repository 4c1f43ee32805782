"""Which environment variables may hold a secret, for the core's containers and the
harness's CLI alike: such a variable never enters a container, nor the CLI behind the
core's gateway (which holds every credential itself)."""

from __future__ import annotations

from typing import Final

# A name with one of these in it is a secret's (CLAUDE_CODE_OAUTH_TOKEN, a proxy's
# password), whatever its prefix.
SECRET_WORDS: Final = ("TOKEN", "KEY", "SECRET", "PASSWORD", "CREDENTIAL", "AUTH")


def is_secret_name(name: str) -> bool:
    """Whether ``name`` may hold a secret, or is the API's address or key (``ANTHROPIC_*``:
    the core's gateway's business)."""
    upper = name.upper()
    return upper.startswith("ANTHROPIC_") or any(word in upper for word in SECRET_WORDS)
