"""A Django authentication backend that logs users in with their legacy hashes and upgrades
them to Django's own argon2 format, so that Django verifies them natively afterwards.

Settings::

    AUTHENTICATION_BACKENDS = [
        "django.contrib.auth.backends.ModelBackend",          # Django's own hashes first
        "authmigrate.integrations.django.LegacyHashBackend",  # then the migrated ones
    ]
    PASSWORD_HASHERS = [
        "django.contrib.auth.hashers.Argon2PasswordHasher",   # first: the upgrade target
        "django.contrib.auth.hashers.PBKDF2PasswordHasher",
        ...
    ]
    AUTHMIGRATE_KEYRING = {"ps_cookie": os.environ["PS_COOKIE_KEY"]}  # keyed schemes only

The migrated ``password`` column holds authmigrate's canonical credential (``$P$...``,
``magento2$...``, ``$wrap$...``): Django cannot read it, so ``ModelBackend`` refuses it (after
its usual dummy hash) and this backend takes over. A right password is rewritten as
``argon2$argon2id$...`` (``make_password(password, hasher="argon2")``) with a conditional
UPDATE, so two racing logins upgrade once; nothing is written on a wrong password.
"""

from __future__ import annotations

from typing import Any

from authmigrate.bridge._timing import dummy_verify, password_too_long
from authmigrate.credentials import verify
from authmigrate.errors import UnknownSchemeError

# Django is imported inside the methods: this module imports (and lists its API) without
# Django installed or settings configured, and Django loads it only once settings are ready.


class LegacyHashBackend:
    """Authenticates users whose ``password`` is still a legacy hash, and upgrades it.

    A complete authentication backend (``authenticate``, ``get_user``); permissions are left
    to ``ModelBackend``, which sits before it in ``AUTHENTICATION_BACKENDS``.
    """

    def authenticate(
        self,
        request: Any,
        username: str | None = None,
        password: str | None = None,
        **kwargs: Any,
    ) -> Any:
        """The user when ``password`` matches their legacy hash (now upgraded), else None.

        Users whose hash Django reads itself are left to ``ModelBackend`` (None here).
        """
        from django.contrib.auth import get_user_model
        from django.contrib.auth.hashers import make_password

        user_model = get_user_model()
        if username is None:
            username = kwargs.get(user_model.USERNAME_FIELD)
        if not isinstance(username, str) or not isinstance(password, str):
            return None
        try:
            user = user_model._default_manager.get_by_natural_key(username)
        except user_model.DoesNotExist:
            dummy_verify()  # as long as a legacy verification: no user enumeration by time
            return None
        stored = user.password
        if not _is_legacy(stored) or password_too_long(password):
            return None
        try:
            ok = verify(password, stored, keyring=_keyring())
        except UnknownSchemeError:
            ok = False
        if not ok or not self.user_can_authenticate(user):
            return None
        new = make_password(password, hasher="argon2")
        upgraded = user_model._default_manager.filter(pk=user.pk, password=stored).update(
            password=new
        )
        if upgraded:
            user.password = new
        else:  # another login upgraded it first
            user.refresh_from_db(fields=["password"])
        return user

    def get_user(self, user_id: Any) -> Any:
        """The active user with this primary key, or None (how sessions find their user)."""
        from django.contrib.auth import get_user_model

        user_model = get_user_model()
        try:
            user = user_model._default_manager.get(pk=user_id)
        except user_model.DoesNotExist:
            return None
        return user if self.user_can_authenticate(user) else None

    def user_can_authenticate(self, user: Any) -> bool:
        """Inactive users are refused, as ``ModelBackend`` refuses them."""
        return bool(getattr(user, "is_active", True))


def _is_legacy(stored: str | None) -> bool:
    """True for a usable value no Django hasher recognises (a migrated credential)."""
    from django.contrib.auth.hashers import identify_hasher, is_password_usable

    if not stored or not is_password_usable(stored):
        return False
    try:
        identify_hasher(stored)
    except ValueError:
        return True
    return False


def _keyring() -> dict[str, bytes | str]:
    from django.conf import settings

    return dict(getattr(settings, "AUTHMIGRATE_KEYRING", {}) or {})
