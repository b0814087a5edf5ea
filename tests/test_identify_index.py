"""The prefix index identifies exactly what the ordered walk over every scheme identified.

``identify`` used to ask every registered scheme, in priority order, whether a credential is
its own; it now asks only the schemes whose declared ``prefixes`` the credential starts with
(plus those that declare none). ``identify_slow`` below is the old walk, kept verbatim as the
reference: over every string of the known-answer vectors, every prefix of them, near misses
and hypothesis-fuzzed strings, both give the same scheme or the same error.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import sys
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import authmigrate.credentials as creds
from authmigrate.credentials import _base, _batch, digest
from authmigrate.credentials._examples import KNOWN_ANSWERS
from authmigrate.credentials.rules import split_rules, with_rules
from authmigrate.credentials.wrap import TEST, wrap_credential
from authmigrate.errors import CredentialError, MalformedHashError, UnknownSchemeError

VECTORS = Path(__file__).parent / "vectors"


def identify_slow(credential: str) -> str:
    """The ordered walk ``identify`` was before the index (the reference implementation)."""
    if not isinstance(credential, str) or not credential:
        raise UnknownSchemeError("empty or non-text credential")
    for scheme in _base.all_schemes():
        try:
            if scheme.identify(credential):
                return scheme.id
        except Exception:  # noqa: BLE001, S112 - as the old walk did
            continue
    raise UnknownSchemeError("no known scheme recognises the credential")


def outcome(identify: Callable[[Any], str], value: Any) -> tuple[str, ...]:
    """What ``identify`` answers for ``value``: the scheme id, or the error it raises."""
    try:
        return ("scheme", identify(value))
    except Exception as exc:  # noqa: BLE001 - the error itself is the answer compared
        return ("error", type(exc).__name__, getattr(exc, "code", ""), str(exc))


def assert_same(value: Any) -> None:
    assert outcome(creds.identify, value) == outcome(identify_slow, value), repr(value)


# -- the corpus: every string of the known-answer vectors, and their canonical forms ---------


def _strings(node: Any) -> Iterator[str]:
    if isinstance(node, str):
        yield node
    elif isinstance(node, dict):
        for value in node.values():
            yield from _strings(value)
    elif isinstance(node, list):
        for value in node:
            yield from _strings(value)


def _canonical(scheme: str, stored: str, imp: dict[str, Any]) -> str | None:
    try:
        return creds.import_hash(scheme, stored, salt=imp.get("salt"), **(imp.get("params") or {}))
    except CredentialError:
        return None


def _corpus() -> list[str]:
    found: set[str] = set()
    for path in sorted(VECTORS.glob("*.json")):
        data = json.loads(path.read_text("utf-8"))
        found.update(_strings(data))
        for vector in data.get("vectors", []):
            imported = _canonical(vector["scheme"], vector["stored"], vector.get("import") or {})
            if imported is not None:
                found.add(imported)
    for scheme_id, known in KNOWN_ANSWERS.items():
        found.add(known["stored"])
        imported = _canonical(scheme_id, known["stored"], known["import"])
        if imported is not None:
            found.add(imported)
    for scheme in _base.all_schemes():
        found.update(example.credential for example in getattr(scheme, "examples", ()))
    for value in sorted(found):  # the forms a run writes around them
        try:
            scheme_id = identify_slow(value)
        except UnknownSchemeError:
            continue
        found.add(with_rules(value, ["trim"]))
        with contextlib.suppress(CredentialError):  # argon2 is never wrapped
            found.add(wrap_credential(scheme_id, value, profile=TEST, allow_test_profile=True))
    return sorted(found)


CORPUS = _corpus()

NEAR_MISS_CHARS = (
    "$", "{", "}", "*", ":", "A", "a", "0", "_", "-", "=", "/", ".", " ", "\t", "\n", "\x00",
    "\u017f",  # LATIN SMALL LETTER LONG S: upper() is "S"
    "\u0131",  # LATIN SMALL LETTER DOTLESS I: upper() is "I"
    "\u00df",  # sharp s: upper() is "SS"
    "\u0130",  # capital I with dot above: lower() is two characters
    "\u212a",  # KELVIN SIGN
    "\uff04",  # fullwidth dollar sign
    "\u0663",  # ARABIC-INDIC DIGIT THREE: a \\d digit
    "\U0001f512",
)  # fmt: skip

SHAPES = [
    # bare digests: ambiguous, never identified on their own, whatever their length
    *(hashlib.sha512(b"x").hexdigest()[:n] for n in range(0, 129)),
    *(hashlib.sha512(b"x").hexdigest().upper()[:n] for n in (13, 32, 40, 64)),
    "5f4dcc3b5aa765d61d8327deb882cf99",
    "abcdef0123456",  # 13 hex digits: the shape of DES crypt
    "md5$$5f4dcc3b5aa765d61d8327deb882cf99",
    "md5$salt$5f4dcc3b5aa765d61d8327deb882cf99",
    "sha1$$" + hashlib.sha1(b"x").hexdigest(),
    "sha1$s$" + hashlib.sha1(b"x").hexdigest(),
    "*" + hashlib.sha1(b"x").hexdigest().upper(),
    "*" + hashlib.sha1(b"x").hexdigest(),
    "1000:salt:" + hashlib.sha256(b"x").hexdigest(),
    "\u0661\u0660\u0660\u0660:salt:" + hashlib.sha256(b"x").hexdigest(),  # Arabic-Indic 1000
    "5f4dcc3b5aa765d61d8327deb882cf99:salt:1",
    ":salt:0",
    "{SSHA}AAAA",
    "{ssha}AAAA",
    "{\u017f\u017fha}AAAA",  # upper() is {SSHA}AAAA
    "{crypt}$1$saltsalt$qjXMvbEw8oaL.CzflDtaK/",
    "{CRYPT}",
    "{SHA256}" + hashlib.sha256(b"x").hexdigest(),
    "AAAA",
    "AP1DZmPMtWrWd3eQdy/B4Om0Pwyspaux4NjAlEOSneaVnwNczb+bRi6Xx+rJhZ35Xg==",
    "$digest$",
    "$digest$a=md5,e=hex$$" + hashlib.md5(b"x").hexdigest(),
    "$",
    "$$",
    "U$",
    "pbkdf2:",
    "scrypt$1",
    "scrypt$x",
]


def test_the_corpus_covers_every_scheme() -> None:
    claimed = {
        identify_slow(value) for value in CORPUS if outcome(identify_slow, value)[0] == "scheme"
    }
    assert claimed == {scheme.id for scheme in _base.all_schemes()}


def test_index_identifies_every_vector_and_each_of_its_prefixes_as_the_ordered_walk() -> None:
    for value in CORPUS + SHAPES:
        for end in range(len(value) + 1):
            assert_same(value[:end])
        assert_same(value.swapcase())
        assert_same(" " + value)
        assert_same(value + "\n")


def _heads() -> list[str]:
    """One value of the corpus per scheme and leading characters (plus the shapes)."""
    chosen: dict[tuple[str, ...], str] = {}
    for value in CORPUS + SHAPES:
        chosen.setdefault((*outcome(identify_slow, value)[:2], value[:6]), value)
    return list(chosen.values())


def test_index_identifies_near_misses_of_every_vector_as_the_ordered_walk() -> None:
    for value in _heads():
        for position in range(min(len(value), 20)):
            for char in NEAR_MISS_CHARS:
                assert_same(value[:position] + char + value[position + 1 :])
                assert_same(value[:position] + char + value[position:])


@pytest.mark.parametrize("value", [None, b"$P$BXhx3s6Ld2yjMvRjQf0uaOU9MzC9CS/", 42, "", "\x00"])
def test_non_text_and_empty_values_get_the_same_error(value: Any) -> None:
    assert_same(value)


def _markers() -> list[str]:
    found = set(NEAR_MISS_CHARS)
    for scheme in _base.all_schemes():
        found.update(getattr(scheme, "prefixes", None) or ())
    for value in CORPUS:
        found.add(value[: value.find("$", 1) + 1] if "$" in value[1:] else value[:4])
    return sorted(found)


MARKERS = _markers()


@st.composite
def near_credentials(draw: st.DrawFn) -> str:
    """A marker or a vector, cut, bent and extended: what a legacy column may hold."""
    base = draw(st.sampled_from(MARKERS + CORPUS + SHAPES))
    base = base[: draw(st.integers(0, len(base)))] if draw(st.booleans()) else base
    chars = st.sampled_from(NEAR_MISS_CHARS) | st.characters()
    for _ in range(draw(st.integers(0, 3))):
        position = draw(st.integers(0, len(base)))
        action = draw(st.sampled_from(["insert", "replace", "delete", "case"]))
        if action == "insert":
            base = base[:position] + draw(chars) + base[position:]
        elif action == "replace":
            base = base[:position] + draw(chars) + base[position + 1 :]
        elif action == "delete":
            base = base[:position] + base[position + 1 :]
        else:
            base = base[:position] + base[position:].swapcase()
    tail = draw(
        st.text(alphabet="0123456789abcdefABCDEF$./=+:" + "".join(NEAR_MISS_CHARS), max_size=70)
    )
    return base + tail if draw(st.booleans()) else base


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(near_credentials())
def test_index_identifies_fuzzed_credentials_as_the_ordered_walk(value: str) -> None:
    assert_same(value)


@settings(max_examples=1000, deadline=None)
@given(st.text(max_size=80))
def test_index_identifies_any_text_as_the_ordered_walk(value: str) -> None:
    assert_same(value)


def test_only_the_brace_upper_cases_to_a_brace() -> None:
    """The LDAP schemes compare their ``{...}`` prefix in any case (``value.upper()``) and
    declare ``"{"``: true only if no other character's upper case starts with ``{``."""
    others = [
        chr(c) for c in range(sys.maxunicode + 1) if chr(c) != "{" and chr(c).upper()[:1] == "{"
    ]
    assert others == []


# -- the index's cost: what made identify ~20 us a row ---------------------------------------


@pytest.fixture
def asked(monkeypatch: pytest.MonkeyPatch) -> Counter[str]:
    """How often each registered scheme's ``identify`` is called (the real method, counted)."""
    calls: Counter[str] = Counter()
    for scheme in _base.all_schemes():

        def counted(credential: str, _scheme: Any = scheme, _real: Any = scheme.identify) -> bool:
            calls[_scheme.id] += 1
            return bool(_real(credential))

        monkeypatch.setattr(scheme, "identify", counted)
    return calls


def test_all_schemes_is_built_once() -> None:
    assert _base.all_schemes() is _base.all_schemes()


def test_identify_asks_only_the_schemes_whose_prefix_the_credential_has(
    asked: Counter[str],
) -> None:
    assert creds.identify("$digest$a=md5,e=hex$$" + hashlib.md5(b"x").hexdigest()) == "digest"
    assert set(asked) <= {"digest", "shopware5_sha256"}
    asked.clear()
    assert creds.identify("$P$BXhx3s6Ld2yjMvRjQf0uaOU9MzC9CS/") == "phpass"
    assert set(asked) <= {"phpass", "shopware5_sha256"}


def test_auto_import_identifies_each_value_once(asked: Counter[str]) -> None:
    items: list[tuple[str | None, str | None]] = [("$P$BXhx3s6Ld2yjMvRjQf0uaOU9MzC9CS/", None)] * 50
    out = creds.prepare_batch(items, creds.CredentialPolicy(scheme="auto"))
    assert [p.scheme for p in out if isinstance(p, creds.Prepared)] == ["phpass"] * 50
    assert asked["phpass"] == 50


# -- prepare_batch: the scheme carried from "auto" is the one identify would find -------------


def _import_one_slow(value: str, salt: str | None, policy: creds.CredentialPolicy) -> Any:
    """``_batch._import_one`` as it was, over the ordered walk (the reference)."""
    try:
        if not str(value).strip():
            raise CredentialError("no credential in the row", code="credential.missing")
        try:
            scheme = policy.scheme
            if scheme == "auto":  # what import_hash("auto", ...) did, over the ordered walk
                scheme = identify_slow(str(value).strip())
            canonical = creds.import_hash(scheme, str(value), salt=salt, **dict(policy.params))
            canonical = with_rules(canonical, policy.rules)
            try:
                scheme_id = identify_slow(split_rules(canonical)[1])
            except UnknownSchemeError:
                scheme_id = policy.scheme
        except CredentialError:
            raise
        except Exception:  # noqa: BLE001 - as the old code did
            raise MalformedHashError(f"not a valid {policy.scheme} credential") from None
        return ("ok", canonical, scheme_id)
    except CredentialError as exc:
        return ("error", exc.code, str(exc))


def _import_one_now(value: str, salt: str | None, policy: creds.CredentialPolicy) -> Any:
    try:
        return ("ok", *_batch._import_one(value, salt, policy))
    except CredentialError as exc:
        return ("error", exc.code, str(exc))


def _policies() -> list[creds.CredentialPolicy]:
    policies = [creds.CredentialPolicy(scheme="auto"), creds.CredentialPolicy(rules=("trim",))]
    for scheme_id, known in sorted(KNOWN_ANSWERS.items()):
        params = known["import"].get("params") or {}
        policies.append(creds.CredentialPolicy(scheme=scheme_id, params=params))
    policies.append(creds.CredentialPolicy(scheme="digest", params={"algorithm": "md5"}))
    policies.append(creds.CredentialPolicy(scheme="devise_bcrypt"))
    return policies


@pytest.mark.parametrize("policy", _policies(), ids=lambda p: f"{p.scheme}{'+'.join(p.rules)}")
def test_prepare_batch_finds_the_scheme_the_ordered_walk_found(
    policy: creds.CredentialPolicy,
) -> None:
    values = [v for v in CORPUS if not _batch.is_unusable(v)] + SHAPES[128:]
    for value in values:
        for salt in (None, "salt"):
            assert _import_one_now(value, salt, policy) == _import_one_slow(value, salt, policy), (
                value,
                salt,
            )


# -- a named scheme's descriptor, parsed once -------------------------------------------------


def test_a_digest_descriptor_is_parsed_once_for_a_run(monkeypatch: pytest.MonkeyPatch) -> None:
    parsed: list[dict[str, object]] = []
    real = digest.descriptor_from_params

    def counted(params: dict[str, object], *, has_salt: bool) -> digest.Descriptor:
        parsed.append(dict(params))
        return real(params, has_salt=has_salt)

    monkeypatch.setattr(digest, "descriptor_from_params", counted)
    monkeypatch.setattr(digest, "_DESCRIPTORS", {}, raising=False)
    values = [hashlib.md5(f"pw{i}".encode()).hexdigest() for i in range(200)]
    policy = creds.CredentialPolicy(scheme="digest", params={"algorithm": "md5"})
    out = creds.prepare_batch([(v, None) for v in values], policy)
    assert [p.credential for p in out if isinstance(p, creds.Prepared)] == [
        f"$digest$a=md5,e=hex$${v}" for v in values
    ]
    assert len(parsed) == 1


def test_the_descriptor_cache_tells_a_boolean_from_a_number() -> None:
    value = hashlib.md5(b"x").hexdigest()
    assert creds.import_hash("digest", value, algorithm="md5", iterations=1).startswith("$digest$")
    with pytest.raises(CredentialError) as info:
        creds.import_hash("digest", value, algorithm="md5", iterations=True)
    assert info.value.code == "credential.bad_params"


def test_the_descriptor_cache_keeps_every_error_per_row() -> None:
    value = hashlib.md5(b"x").hexdigest()
    for _ in range(3):
        with pytest.raises(CredentialError) as info:
            creds.import_hash("digest", value, algorithm="md4")
        assert info.value.code == "credential.bad_params"
