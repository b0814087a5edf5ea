"""Property tests: our canonical forms round-trip, and bad input only ever raises our errors."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import struct

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import authmigrate.credentials as creds
from authmigrate.credentials._common import b64decode, b64encode
from authmigrate.credentials.wrap import WrappedParts, format_wrapped, parse_wrapped
from authmigrate.errors import CredentialError, MalformedHashError, UnknownSchemeError

FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
KEY_IDS = st.from_regex(r"[A-Za-z0-9_.-]{1,20}", fullmatch=True)
SCHEME_IDS = [info.id for info in creds.schemes()]


@FAST
@given(st.binary(max_size=64))
def test_phc_base64_round_trips(data: bytes) -> None:
    text = b64encode(data)
    assert "=" not in text
    assert b64decode(text) == data


@FAST
@given(
    scheme=st.sampled_from(SCHEME_IDS),
    salt=st.binary(min_size=8, max_size=24),
    tag=st.binary(min_size=16, max_size=48),
    inner=st.text(max_size=40),
)
def test_wrapped_form_round_trips(scheme: str, salt: bytes, tag: bytes, inner: str) -> None:
    argon = f"$argon2id$v=19$m=19456,t=2,p=1${b64encode(salt)}${b64encode(tag)}"
    parts = WrappedParts(scheme, argon, inner)
    assert parse_wrapped(format_wrapped(parts)) == parts


@FAST
@given(salt=st.text(max_size=30), digest=st.binary(min_size=64, max_size=64), r=st.integers(1, 99))
def test_authlogic_form_round_trips(salt: str, digest: bytes, r: int) -> None:
    canonical = creds.import_hash("authlogic_sha512", digest.hex(), salt=salt, stretches=r)
    assert creds.identify(canonical) == "authlogic_sha512"
    assert creds.import_hash("authlogic_sha512", canonical) == canonical
    scheme = creds.get("authlogic_sha512")
    assert scheme.stored_digest(canonical) == digest
    assert canonical.split("$")[3] == b64encode(salt.encode())


@FAST
@given(key_id=KEY_IDS, password=st.text(max_size=20))
def test_devise_form_round_trips(key_id: str, password: str) -> None:
    bcrypt_hash = "$2a$04$abcdefghijklmnopqrstuueAuu9OnqCAUFerR0dg6hTillSSVBctG"
    canonical = creds.import_hash("devise_bcrypt", bcrypt_hash, key_id=key_id)
    assert canonical == f"$devise-bcrypt$k={key_id}{bcrypt_hash}"
    assert creds.identify(canonical) == "devise_bcrypt"
    assert creds.import_hash("devise_bcrypt", canonical) == canonical
    assert creds.get("devise_bcrypt").strip_digest(canonical) == canonical[:-31]


@FAST
@given(
    prf=st.integers(0, 2),
    iterations=st.integers(1, 2_400_000),  # within the work budget for SHA-1, -256 and -512
    salt=st.binary(min_size=8, max_size=32),
    subkey=st.binary(min_size=16, max_size=64),
)
def test_aspnet_v3_blob_round_trips(prf: int, iterations: int, salt: bytes, subkey: bytes) -> None:
    blob = b"\x01" + struct.pack(">III", prf, iterations, len(salt)) + salt + subkey
    value = base64.b64encode(blob).decode()
    assert creds.identify(value) == "aspnet_identity_v3"
    scheme = creds.get("aspnet_identity_v3")
    assert scheme.stored_digest(value) == subkey
    stripped = scheme.strip_digest(value)
    assert base64.b64decode(stripped) + subkey == blob


@FAST
@given(
    salt=st.text(
        alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="$"),
        min_size=1,
        max_size=20,
    )
)
def test_django_salted_forms_round_trip(salt: str) -> None:
    value = f"md5${salt}${hashlib.md5(salt.encode()).hexdigest().upper()}"
    canonical = creds.import_hash("django_md5", value)
    assert canonical == value.lower()[:4] + salt + "$" + value.rsplit("$", 1)[1].lower()
    assert creds.identify(canonical) == "django_md5"


@settings(max_examples=300, deadline=None)
@given(scheme=st.sampled_from(SCHEME_IDS), value=st.text(max_size=120), salt=st.none() | st.text())
def test_import_of_arbitrary_text_raises_only_credential_errors(
    scheme: str, value: str, salt: str | None
) -> None:
    try:
        creds.import_hash(scheme, value, salt=salt)
    except (MalformedHashError, UnknownSchemeError):
        pass
    except CredentialError as error:  # only the keyed/option errors a scheme may name
        assert error.code.startswith("credential.")


@settings(max_examples=300, deadline=None)
@given(value=st.text(max_size=120))
def test_identify_of_arbitrary_text_raises_only_unknown_scheme(value: str) -> None:
    with contextlib.suppress(UnknownSchemeError):
        assert creds.identify(value) in SCHEME_IDS


@settings(max_examples=300, deadline=None)
@given(
    prefix=st.sampled_from(
        [
            "$1$",
            "$2b$04$",
            "$5$",
            "$6$rounds=",
            "$argon2id$",
            "$scrypt$",
            "$pbkdf2-sha256$",
            "pbkdf2_sha256$",
            "scrypt$",
            "argon2$argon2id$",
            "bcrypt$",
            "md5$",
            "sha1$$",
            "pbkdf2:sha256:",
            "scrypt:",
            "$wrap$",
            "$devise-bcrypt$k=",
            "$authlogic-sha512$",
            "AQAAAA",
            "AA",
        ]
    ),  # fmt: skip
    rest=st.text(max_size=80),
)
def test_mangled_known_prefixes_never_escape_as_other_exceptions(prefix: str, rest: str) -> None:
    value = prefix + rest
    try:
        scheme = creds.identify(value)
    except UnknownSchemeError:
        return
    try:
        creds.import_hash(scheme, value)
        creds.get(scheme).verify("password", value, None)
    except CredentialError:
        pass
