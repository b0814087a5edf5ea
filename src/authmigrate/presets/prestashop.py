"""PrestaShop 1.5/1.6 and 1.7/8/9: ``ps_customer``.

1.6 stores ``md5(_COOKIE_KEY_ . password)`` in ``passwd varchar(32)``: the cookie key (from
``config/settings.inc.php``) is a secret, read from the keyring, never written in the spec. 1.7+
stores PHP ``password_hash()`` bcrypt in ``passwd varchar(60/255)`` and still accepts the md5
form of customers who have not logged in since the upgrade, so both presets name the key.
Guests (``is_guest = 1``: a random password, no account) and deleted customers are not read.
"""

from __future__ import annotations

from authmigrate.presets._model import (
    Preset,
    SchemaView,
    column_length,
    datetime_field,
    email_field,
    flag_field,
    name_field,
    zero_date,
)

_COLUMNS = """c.id_customer AS legacy_id,
       c.email,
       c.firstname,
       c.lastname,"""

_TAIL = f"""
       c.id_shop,
       c.id_shop_group,
       c.id_default_group,
       c.active,
       c.newsletter,
       {zero_date("c.date_add")} AS date_add,
       c.date_upd
FROM {{p}}customer c
WHERE c.is_guest = 0 AND c.deleted = 0
"""

QUERY_16 = f"""
SELECT {_COLUMNS}
       c.passwd,{_TAIL}"""

# bcrypt rows pass as they are; md5 rows are given their canonical form (cookie key id
# "prestashop"), so that scheme = "auto" reads both kinds in one column.
QUERY = f"""
SELECT {_COLUMNS}
       CASE WHEN LEFT(c.passwd, 1) = '$' THEN c.passwd
            ELSE CONCAT('$prestashop$k=prestashop$', LOWER(c.passwd)) END AS passwd,{_TAIL}"""

_REQUIRED = {
    "customer": ("id_customer", "email", "passwd", "secure_key", "is_guest", "date_add"),
    "configuration": ("name", "value"),
}

_FIELDS = {
    "email": email_field("email"),
    "first_name": name_field("firstname"),
    "last_name": name_field("lastname"),
    "shop_id": {"from": "id_shop", "type": "integer"},
    "shop_group_id": {"from": "id_shop_group", "type": "integer"},
    "group_id": {"from": "id_default_group", "type": "integer"},
    "newsletter": flag_field("newsletter"),
    "created_at": datetime_field("date_add"),
    "active": flag_field("active"),
}

_KEY_NOTES = (
    "The cookie key is _COOKIE_KEY_ in config/settings.inc.php (1.6) or cookie_key in",
    "app/config/parameters.php (1.7+). Export it before running, never write it here:",
    "  export PS_COOKIE_KEY='...'",
)


def _md5_column(schema: SchemaView, prefix: str) -> bool:
    length = column_length(schema, f"{prefix}customer", "passwd")
    return length is not None and length <= 32


def _bcrypt_column(schema: SchemaView, prefix: str) -> bool:
    return not _md5_column(schema, prefix)


PRESTASHOP16 = Preset(
    name="prestashop16",
    aliases=("prestashop15",),
    title="PrestaShop 1.5 / 1.6",
    summary="ps_customer.passwd = md5(cookie key . password); key from the keyring",
    default_prefix="ps_",
    required=_REQUIRED,
    refine=_md5_column,
    bonus_tables=("customer_group", "guest"),
    query=QUERY_16,
    changed_column="date_upd",
    fields=_FIELDS,
    credentials={
        "column": "passwd",
        "scheme": "prestashop",
        "params": {"key_id": "prestashop"},
        "keys": {"prestashop": "env:PS_COOKIE_KEY"},
        # AuthController::processSubmitLogin() trims the typed password (1.6 only)
        "login_rules": ["trim"],
    },
    notes=_KEY_NOTES,
    sources=("PrestaShop 1.6 install-dev/data/db_structure.sql (PREFIX_customer)",),
)

PRESTASHOP = Preset(
    name="prestashop",
    aliases=("prestashop17", "prestashop8"),
    title="PrestaShop 1.7 / 8 / 9",
    summary="ps_customer.passwd = bcrypt (password_hash), older rows md5 with the cookie key",
    default_prefix="ps_",
    required=_REQUIRED,
    refine=_bcrypt_column,
    bonus_tables=("customer_group", "guest", "customer_session"),
    query=QUERY,
    changed_column="date_upd",
    fields=_FIELDS,
    credentials={"column": "passwd", "scheme": "auto", "keys": {"prestashop": "env:PS_COOKIE_KEY"}},
    notes=(
        *_KEY_NOTES,
        'bcrypt rows are read as they are; md5 rows are tagged with key id "prestashop".',
    ),
    sources=("PrestaShop 1.7/8 install-dev/data/db_structure.sql (PREFIX_customer)",),
)
