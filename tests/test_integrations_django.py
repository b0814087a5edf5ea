"""LegacyHashBackend in a real minimal Django project (SQLite): users carry hashes made by
WooCommerce (phpass), Magento 2 and PrestaShop's own code; they log in through Django's own
``authenticate()`` and test client, and are upgraded to Django's argon2 format."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

django = pytest.importorskip("django", reason="django is in the test extra")

from authmigrate import import_hash  # noqa: E402
from tests.bridge_helpers import vector  # noqa: E402

SHOP_USERS = {  # username -> (vector file, scheme)
    "woo": ("php.json", "phpass"),
    "magento": ("php.json", "magento2"),
    "presta": ("php.json", "prestashop"),
}


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Configure Django once for this module: a SQLite database, auth and sessions, a login
    view; the users' ``password`` column holds authmigrate's canonical legacy credentials."""
    from django.conf import settings

    if settings.configured:
        pytest.skip("Django is already configured in this process")
    tmp = tmp_path_factory.mktemp("django")
    _, _, keyring = vector("php.json", "prestashop")
    settings.configure(
        DEBUG=False,
        SECRET_KEY="test-only-django-secret-key-0123456789",
        ALLOWED_HOSTS=["testserver"],
        DATABASES={
            "default": {"ENGINE": "django.db.backends.sqlite3", "NAME": str(tmp / "db.sqlite3")}
        },
        INSTALLED_APPS=[
            "django.contrib.contenttypes",
            "django.contrib.auth",
            "django.contrib.sessions",
        ],
        MIDDLEWARE=[
            "django.contrib.sessions.middleware.SessionMiddleware",
            "django.contrib.auth.middleware.AuthenticationMiddleware",
        ],
        ROOT_URLCONF=__name__,
        AUTHENTICATION_BACKENDS=[
            "django.contrib.auth.backends.ModelBackend",
            "authmigrate.integrations.django.LegacyHashBackend",
        ],
        PASSWORD_HASHERS=[
            "django.contrib.auth.hashers.Argon2PasswordHasher",
            "django.contrib.auth.hashers.PBKDF2PasswordHasher",
        ],
        AUTHMIGRATE_KEYRING=keyring,
        USE_TZ=True,
        LOGGING_CONFIG=None,
    )
    django.setup()
    from django.contrib.auth.models import User
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    passwords = {}
    for username, (file, scheme) in SHOP_USERS.items():
        stored, right, _ = vector(file, scheme)
        params = {"key_id": "ps_cookie"} if scheme == "prestashop" else {}
        user = User.objects.create(username=username, email=f"{username}@example.com")
        User.objects.filter(pk=user.pk).update(password=import_hash(scheme, stored, **params))
        passwords[username] = right
    return passwords


def login_view(request: Any) -> Any:
    from django.contrib.auth import authenticate, login
    from django.http import JsonResponse

    user = authenticate(
        request, username=request.POST.get("username"), password=request.POST.get("password")
    )
    if user is None:
        return JsonResponse({"ok": False}, status=401)
    login(request, user)
    return JsonResponse({"ok": True, "user": user.username})


def me_view(request: Any) -> Any:
    from django.http import JsonResponse

    return JsonResponse({"user": request.user.username if request.user.is_authenticated else None})


def _urls() -> list[Any]:
    from django.urls import path

    return [path("login/", login_view), path("me/", me_view)]


def __getattr__(name: str) -> Any:  # ROOT_URLCONF = this module; built after setup
    if name == "urlpatterns":
        return _urls()
    raise AttributeError(name)


def password_of(username: str) -> str:
    from django.contrib.auth.models import User

    return User.objects.get(username=username).password


@pytest.mark.parametrize("username", sorted(SHOP_USERS))
def test_legacy_user_logs_in_with_authenticate_and_is_upgraded_to_django_argon2(
    project, username
) -> None:
    from django.contrib.auth import authenticate
    from django.contrib.auth.hashers import check_password

    before = password_of(username)
    assert authenticate(username=username, password="wrong password") is None
    assert password_of(username) == before, "nothing written on a wrong password"
    user = authenticate(username=username, password=project[username])
    assert user is not None and user.username == username
    after = password_of(username)
    assert after.startswith("argon2$argon2id$") and after == user.password
    assert check_password(project[username], after)  # Django verifies it natively now
    # the next login is Django's own: ModelBackend alone answers it
    from django.contrib.auth.backends import ModelBackend

    assert ModelBackend().authenticate(None, username=username, password=project[username]) == user
    assert authenticate(username=username, password="wrong password") is None
    assert password_of(username) == after


def test_login_through_the_test_client(project) -> None:
    from django.contrib.auth.models import User
    from django.test import Client

    stored, right, _ = vector("php.json", "phpass", 1)  # another WooCommerce customer
    user = User.objects.create(username="woo2")
    User.objects.filter(pk=user.pk).update(password=import_hash("phpass", stored))
    client = Client()
    wrong = client.post("/login/", {"username": "woo2", "password": "nope"})
    assert wrong.status_code == 401 and password_of("woo2") == stored
    right_answer = client.post("/login/", {"username": "woo2", "password": right})
    assert right_answer.status_code == 200
    assert json.loads(right_answer.content) == {"ok": True, "user": "woo2"}
    assert client.session["_auth_user_backend"].endswith("LegacyHashBackend")
    # the session finds its user through LegacyHashBackend.get_user on the next request
    assert json.loads(client.get("/me/").content) == {"user": "woo2"}
    assert password_of("woo2").startswith("argon2$argon2id$")
    again = Client()
    assert again.login(username="woo2", password=right)
    assert again.session["_auth_user_backend"].endswith("ModelBackend")


def test_unknown_user_and_unusable_password_are_refused(project) -> None:
    from django.contrib.auth import authenticate
    from django.contrib.auth.models import User

    assert authenticate(username="nobody", password="password") is None
    User.objects.create_user("locked", password=None)  # unusable password ("!...")
    assert authenticate(username="locked", password="") is None
    assert password_of("locked").startswith("!")
    stored, right, _ = vector("php.json", "phpass", 2)
    inactive = User.objects.create(username="gone", is_active=False)
    User.objects.filter(pk=inactive.pk).update(password=import_hash("phpass", stored))
    assert authenticate(username="gone", password=right) is None
    assert password_of("gone") == stored, "an inactive user is not upgraded"


def test_check_password_for_any_framework_upgrades_through_save(tmp_path: Path) -> None:
    from authmigrate.integrations import check_password

    stored, right, _ = vector("php.json", "phpass")
    saved: list[str] = []
    assert not check_password("wrong", stored, save=saved.append, min_seconds=0.01)
    assert not check_password(right, None, save=saved.append, min_seconds=0.01)
    assert saved == []
    assert check_password(right, stored, save=saved.append)
    assert len(saved) == 1 and saved[0].startswith("$argon2id$")
    assert check_password(right, saved[0], save=saved.append) and len(saved) == 1
