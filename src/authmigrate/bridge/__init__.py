"""Login-time migration for identity providers: the password bridge.

Providers (Ory Kratos, Okta, AWS Cognito, Keycloak, FusionAuth, Auth0) call a hook at a
user's first login with the plaintext password; the bridge verifies it against the legacy
hash in the migration's target and upgrades that hash to argon2id. One core
(:class:`Bridge`, :func:`check`), one module per provider's wire format, one ASGI app
(:func:`authmigrate.bridge.app.create_app`) served by ``authmigrate bridge SPEC --listen``.

In process (a Lambda, a script)::

    import authmigrate.bridge

    verdict = authmigrate.bridge.check("alice@example.com", password)   # spec: $AUTHMIGRATE_SPEC
"""

from __future__ import annotations

import os
import threading

from authmigrate.errors import SpecError

from .core import Account, Bridge, Verdict

__all__ = ["Account", "Bridge", "Verdict", "check", "default_bridge"]

SPEC_ENV = "AUTHMIGRATE_SPEC"
"""Environment variable naming the spec file :func:`check` and the Lambda handler use."""

_default: Bridge | None = None
_lock = threading.Lock()


def default_bridge() -> Bridge:
    """The bridge of the spec file ``$AUTHMIGRATE_SPEC`` names, opened once per process.

    Raises:
        SpecError: the variable is not set, or the spec is invalid.
    """
    global _default
    with _lock:
        if _default is None:
            path = os.environ.get(SPEC_ENV)
            if not path:
                raise SpecError(SPEC_ENV, "environment variable is not set (the spec file)")
            from authmigrate.load import load_spec

            _default = Bridge(load_spec(path))
        return _default


def check(identifier: str, password: str) -> Verdict:
    """Verify a login against the default bridge (see :meth:`Bridge.check`)."""
    return default_bridge().check(identifier, password)
