"""OpenCart 1.5-3 (``password`` + ``salt``) and OpenCart 4 (``password_hash()`` bcrypt).

OpenCart 1.5.4-3.x stores ``sha1(salt . sha1(salt . sha1(password)))`` in ``password
varchar(40)`` with a 9-character ``salt`` column; older 1.5 rows hold ``md5(password)`` with an
empty salt. OpenCart 4 widens ``password`` to ``varchar(255)`` for PHP ``password_hash()``.
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

_COLUMNS = f"""c.customer_id AS legacy_id,
       c.email,
       c.firstname,
       c.lastname,
       c.telephone,
       c.store_id,
       c.customer_group_id,
       c.status,
       c.newsletter,
       {zero_date("c.date_added")} AS date_added,
       c.password"""

QUERY_LEGACY = f"""
SELECT {_COLUMNS},
       c.salt
FROM {{p}}customer c
"""

QUERY_4 = f"""
SELECT {_COLUMNS}
FROM {{p}}customer c
"""

_FIELDS = {
    "email": email_field("email"),
    "first_name": name_field("firstname"),
    "last_name": name_field("lastname"),
    "phone": name_field("telephone"),
    "store_id": {"from": "store_id", "type": "integer"},
    "group_id": {"from": "customer_group_id", "type": "integer"},
    "newsletter": flag_field("newsletter"),
    "created_at": datetime_field("date_added"),
    "active": flag_field("status"),
}

_REQUIRED = {
    "customer": ("customer_id", "email", "password", "customer_group_id", "date_added"),
    "customer_group": ("customer_group_id",),
}


def _sha1_column(schema: SchemaView, prefix: str) -> bool:
    length = column_length(schema, f"{prefix}customer", "password")
    return length is not None and length <= 40


def _wide_column(schema: SchemaView, prefix: str) -> bool:
    return not _sha1_column(schema, prefix)


OPENCART = Preset(
    name="opencart",
    aliases=("opencart3", "opencart2", "opencart15"),
    title="OpenCart 1.5 / 2 / 3",
    summary="oc_customer.password = sha1(salt.sha1(salt.sha1(pw))) + salt column",
    default_prefix="oc_",
    required={**_REQUIRED, "customer": (*_REQUIRED["customer"], "salt")},
    refine=_sha1_column,
    bonus_tables=("customer_ip", "customer_login"),
    query=QUERY_LEGACY,
    fields=_FIELDS,
    # the request filter HTML-escapes every POST field: escaped form first, then as typed
    credentials={
        "column": "password",
        "salt_column": "salt",
        "scheme": "opencart",
        "login_rules": ["html"],
    },
    sources=("OpenCart 3.0 upload/install/opencart.sql (oc_customer)",),
)

OPENCART4 = Preset(
    name="opencart4",
    title="OpenCart 4",
    summary="oc_customer.password = password_hash() bcrypt",
    default_prefix="oc_",
    required=_REQUIRED,
    refine=_wide_column,
    bonus_tables=("customer_ip", "customer_token"),
    query=QUERY_4,
    fields=_FIELDS,
    credentials={"column": "password", "scheme": "auto"},
    sources=("OpenCart 4.0 upload/install/opencart.sql / system/helper/db_schema.php",),
)
