"""Drupal 7 (and Drupal Commerce 1.x on it): ``users``.

``pass`` holds Drupal's salted SHA-512 phpass variant (``$S$``), phpass ``$H$``/``$P$`` for
accounts imported from Drupal 6 / phpBB, and ``U$S$...`` for md5 hashes rehashed on upgrade.
``created`` is a Unix time; ``status`` 0 means blocked. uid 0 is the anonymous user, not read.
"""

from __future__ import annotations

from authmigrate.presets._model import Preset, email_field, flag_field, name_field

QUERY = """
SELECT u.uid AS legacy_id,
       u.name,
       u.mail,
       u.pass,
       CASE WHEN u.created > 0 THEN FROM_UNIXTIME(u.created) END AS created,
       u.status
FROM {p}users u
WHERE u.uid > 0
"""

DRUPAL7 = Preset(
    name="drupal7",
    aliases=("drupal", "drupal-commerce"),
    title="Drupal 7 / Drupal Commerce 1.x",
    summary="users.pass ($S$ sha512 phpass, $H$/$P$, U$ upgraded md5); status 0 = blocked",
    default_prefix="",
    required={
        "users": ("uid", "name", "pass", "mail", "created", "status", "init"),
        "users_roles": ("uid", "rid"),
    },
    bonus_tables=("commerce_order", "variable", "system"),
    query=QUERY,
    fields={
        "email": email_field("mail"),
        "username": name_field("name"),
        "created_at": {"from": "created", "type": "datetime"},
        "active": flag_field("status"),
    },
    # user_login_authenticate_validate() trims the typed password (modules/user/user.module)
    credentials={"column": "pass", "scheme": "auto", "login_rules": ["trim"]},
    notes=("uid 0 (the anonymous user) is not read; created is a Unix time.",),
    sources=("Drupal 7 modules/user/user.install (user_schema: users, users_roles)",),
)
