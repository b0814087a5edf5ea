"""A Django project's ``auth_user``, filled by Django's own ``create_user``, and Django's answers.

Run as a separate process (Django's settings are process-wide)::

    python django_accounts.py DB_PATH < request.json > answer.json

The request is ``{"accounts": [[username, password or null, hasher class name], ...],
"typed": {username: [typed password, ...]}}``. The database is created with Django's own
migrations, each account by ``User.objects.create_user`` with ``PASSWORD_HASHERS`` set to its
hasher (``None``: an unusable password), and the answer says, for every typed password, whether
Django's ``authenticate()`` logs the user in.
"""

from __future__ import annotations

import json
import sys


def main(db_path: str) -> None:
    import django
    from django.conf import settings

    settings.configure(
        DATABASES={"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": db_path}},
        INSTALLED_APPS=["django.contrib.auth", "django.contrib.contenttypes"],
        USE_TZ=True,
    )
    django.setup()
    from django.contrib.auth import authenticate
    from django.contrib.auth.models import User
    from django.core.management import call_command
    from django.test.utils import override_settings

    call_command("migrate", verbosity=0)
    request = json.load(sys.stdin)
    for username, password, hasher in request["accounts"]:
        path = f"django.contrib.auth.hashers.{hasher}"
        with override_settings(PASSWORD_HASHERS=[path]):
            User.objects.create_user(username, f"{username}@example.com", password)
    answer: dict[str, object] = {"stored": {}, "accepted": {}}
    for username, _, hasher in request["accounts"]:
        path = f"django.contrib.auth.hashers.{hasher}"
        with override_settings(PASSWORD_HASHERS=[path]):
            answer["accepted"][username] = [  # type: ignore[index]
                authenticate(username=username, password=typed) is not None
                for typed in request["typed"][username]
            ]
        answer["stored"][username] = User.objects.get(username=username).password  # type: ignore[index]
    json.dump(answer, sys.stdout)


if __name__ == "__main__":
    main(sys.argv[1])
