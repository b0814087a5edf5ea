"""In-process login-time migration, for applications that own their user table.

- :mod:`authmigrate.integrations.sqlalchemy`: ``store_upgrade``, the compare-and-swap write of
  an upgraded credential (``UPDATE ... WHERE id = :id AND password = :old``).
- :mod:`authmigrate.integrations.django`: ``LegacyHashBackend``, a Django authentication
  backend that verifies legacy hashes and rewrites them in Django's own argon2 format.
- :func:`check_password`: the same for any framework (Flask, FastAPI, a script)::

    from authmigrate.integrations import check_password

    @app.post("/login")
    def login(form: LoginForm):
        user = db.users.get(email=form.email)                  # None when unknown
        stored = user.password if user else None

        def save(new: str) -> None:                           # only after a right password
            db.execute("UPDATE users SET password = ? WHERE id = ? AND password = ?",
                       (new, user.id, stored))

        if not check_password(form.password, stored, save=save, keyring=KEYRING):
            raise HTTPException(401, "wrong email or password")
        return start_session(user)
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Mapping

from authmigrate.bridge._timing import AnswerFloor, dummy_verify, password_too_long
from authmigrate.credentials import Profile, verify_and_update
from authmigrate.errors import UnknownSchemeError

__all__ = ["check_password"]


@functools.cache
def _floor(profile: str | Profile | None) -> AnswerFloor:
    return AnswerFloor.measured(profile)


def check_password(
    password: str,
    stored: str | None,
    *,
    save: Callable[[str], None] | None = None,
    keyring: Mapping[str, bytes | str] | None = None,
    profile: str | Profile | None = None,
    min_seconds: float | None = None,
) -> bool:
    """True when ``password`` matches ``stored`` (any scheme authmigrate reads); on success
    with a legacy or weaker hash, ``save`` gets its replacement (a ``$argon2id$`` string).

    Pass ``stored=None`` for an unknown user: the answer is False after the same work and
    time as a wrong password (one argon2id verification, then a floor of 1.5 x that, measured
    once per process, or ``min_seconds``). ``save`` should write the new hash only where the
    old one is still stored (``... WHERE id = ? AND password = ?``) so two racing logins
    upgrade once.

    Raises:
        TypeError: ``password`` is not a str.
        MissingKeyError: the credential needs a key ``keyring`` lacks (a setup error).
    """
    if not isinstance(password, str):
        raise TypeError("password must be a str")
    started = time.perf_counter()
    ok, new = False, None
    if stored is None or not stored.strip() or password_too_long(password):
        dummy_verify(profile)
    else:
        try:
            ok, new = verify_and_update(
                password, stored.strip(), keyring=dict(keyring or {}), profile=profile
            )
        except UnknownSchemeError:
            dummy_verify(profile)
    if ok:
        if new is not None and save is not None:
            save(new)
        return True
    floor = AnswerFloor(min_seconds) if min_seconds is not None else _floor(profile)
    floor.wait(started)
    return False
