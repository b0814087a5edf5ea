"""Writing an upgraded credential back with SQLAlchemy, as a compare-and-swap.

``verify_and_update`` answers ``(True, new)`` when a credential is due for an upgrade. Between
reading the old credential and writing the new one, a password reset may have stored another
credential; a plain ``UPDATE ... WHERE id = :id`` would then put back a hash of the *old*
password, and the reset would be undone. The write must only happen if the row still holds
what was verified::

    UPDATE users SET password = :new WHERE id = :id AND password = :old

:func:`store_upgrade` issues exactly that and says whether it took. When it did not, the
login still succeeded (the old password was right when it was checked); the next login verifies
against whatever the reset stored.

Example::

    ok, new = authmigrate.verify_and_update(typed, row.password, min_seconds="profile")
    if ok and new is not None:
        store_upgrade(engine, "users", key=row.id, old=row.password, new=new)
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from authmigrate.spec import check_identifier


def upgrade_statement(
    table: str,
    *,
    key_column: str = "id",
    password_column: str = "password",
    schema: str | None = None,
) -> sa.Update:
    """The compare-and-swap ``UPDATE``, with bind parameters ``key``, ``old`` and ``new``.

    Identifiers are checked (letters, digits, ``_``) and quoted by SQLAlchemy for the dialect.

    Raises:
        SpecError: a table, schema or column name that is not a plain identifier.
    """
    check_identifier(table)
    check_identifier(key_column)
    check_identifier(password_column)
    if schema is not None:
        check_identifier(schema)
    target = sa.table(table, sa.column(key_column), sa.column(password_column), schema=schema)
    return (
        sa.update(target)
        .where(target.c[key_column] == sa.bindparam("key"))
        .where(target.c[password_column] == sa.bindparam("old"))
        .values({password_column: sa.bindparam("new")})
    )


def store_upgrade(
    bind: Connection | Engine,
    table: str,
    *,
    key: object,
    old: str,
    new: str,
    key_column: str = "id",
    password_column: str = "password",
    schema: str | None = None,
) -> bool:
    """Write ``new`` over ``old`` for the row ``key``, only if the row still holds ``old``.

    Args:
        bind: an Engine (the write runs in a transaction of its own and is committed) or a
            Connection (the write runs in the connection's transaction: committing is yours).
        table: the accounts table; ``schema`` its schema when not the default.
        key: the row's key value (``key_column``).
        old: the credential that was verified, exactly as read.
        new: the replacement ``verify_and_update`` returned.

    Returns:
        True when the row was updated; False when it no longer holds ``old`` (a reset or
        another login's upgrade came first) or is gone. Nothing is overwritten then.
    """
    statement = upgrade_statement(
        table, key_column=key_column, password_column=password_column, schema=schema
    )
    params = {"key": key, "old": old, "new": new}
    if isinstance(bind, Engine):
        with bind.begin() as connection:
            return connection.execute(statement, params).rowcount == 1
    return bind.execute(statement, params).rowcount == 1
