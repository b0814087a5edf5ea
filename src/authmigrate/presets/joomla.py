"""Joomla 1.5-5: ``#__users`` (the ``#__`` prefix is random per site, e.g. ``jos_``, ``a1b2c_``).

Joomla 3.2+ stores PHP ``password_hash()`` bcrypt (or Argon2 when configured); older rows are
``md5(password.salt):salt``. ``block = 1`` is a blocked account; a non-empty ``activation`` is an
account that never confirmed its email.
"""

from __future__ import annotations

from authmigrate.presets._model import (
    Preset,
    datetime_field,
    email_field,
    flag_field,
    name_field,
    zero_date,
)

QUERY = f"""
SELECT u.id AS legacy_id,
       u.username,
       u.name,
       u.email,
       u.password,
       CASE WHEN u.block = 0 THEN 1 ELSE 0 END AS active,
       CASE WHEN u.activation IS NULL OR u.activation = '' OR u.activation = '0'
            THEN 1 ELSE 0 END AS confirmed,
       {zero_date("u.registerDate")} AS registered
FROM {{p}}users u
"""

JOOMLA = Preset(
    name="joomla",
    title="Joomla 1.5 - 5 (VirtueMart, HikaShop, J2Store)",
    summary="#__users.password bcrypt/argon2 or md5:salt; block = 1 is blocked",
    default_prefix="jos_",
    required={
        "users": ("id", "username", "email", "password", "block", "registerDate", "activation"),
        "user_usergroup_map": ("user_id", "group_id"),
    },
    bonus_tables=("virtuemart_userinfos", "hikashop_user", "extensions", "usergroups"),
    query=QUERY,
    fields={
        "email": email_field("email"),
        "username": name_field("username"),
        "display_name": name_field("name"),
        "created_at": datetime_field("registered"),
        "active": flag_field("active"),
        "email_confirmed": flag_field("confirmed"),
    },
    # bcrypt/phpass since Joomla 3.2; md5(password . salt):salt from 1.5/2.5 sites kept along
    credentials={"column": "password", "scheme": ["auto", "joomla"]},
    notes=("Joomla's table prefix is chosen at install (#__ in its SQL): found from the tables.",),
    sources=("Joomla 4 installation/sql/mysql/base.sql (#__users, #__user_usergroup_map)",),
)
