"""What a hash scheme is, and the registry of schemes by id.

A scheme is one small class in its family's module (``modern.py``, ``django.py``,
``shops.py``, ...), decorated with :func:`register`. Adding a scheme touches nothing else.

The first scheme whose :meth:`Scheme.identify` accepts a credential owns it, so more specific
schemes must be registered before more general ones (the registry keeps ``priority`` order).

A scheme may declare ``prefixes``: strings one of which starts every credential its ``identify``
accepts (case-sensitive, exact). :mod:`._index` then asks it only about credentials that start
with one of them, instead of asking every scheme about every credential; a scheme without
``prefixes`` is asked about every credential. A declaration narrower than ``identify`` would
change what is identified: tests/test_identify_index.py compares the index with the ordered
walk over every vector and fuzzed strings.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import ClassVar, NamedTuple, Protocol, TypeVar, runtime_checkable

Keyring = Mapping[str, bytes | str]
"""Maps a key id named in a credential to its secret (cookie key, pepper, signer key)."""


@runtime_checkable
class Scheme(Protocol):
    """One hash scheme.

    Attributes:
        id: the stable scheme id shown by ``authmigrate schemes`` (``phpass``, ``magento2``...).
        description: one line for ``authmigrate schemes``.
        weak: True when the scheme is in the default list that ``policy = "wrap"`` wraps
            (unsalted or fast digests, md5-crypt, phpass).
    """

    id: ClassVar[str]
    description: ClassVar[str]
    weak: ClassVar[bool]

    def identify(self, credential: str) -> bool:
        """True when ``credential`` is in this scheme's canonical form."""
        ...

    def import_hash(self, value: str, *, salt: str | None = None, **params: object) -> str:
        """Turn a legacy stored value (plus a salt column or params) into the canonical form.

        Raises:
            MalformedHashError: the value does not parse as this scheme.
        """
        ...

    def verify(self, password: str, credential: str, keyring: Keyring | None = None) -> bool:
        """Check ``password`` against a canonical credential of this scheme, in constant time."""
        ...

    def digest(self, password: str, credential: str, keyring: Keyring | None = None) -> bytes:
        """Recompute the legacy digest from a password, with the credential's salt and params.

        ``wrap`` stores a strong hash over this digest, so that verifying a wrapped credential is
        ``digest`` then the strong hash. ``credential`` may be either the full canonical
        credential or what :meth:`strip_digest` returned for it: a wrapped credential only
        keeps the latter.
        """
        ...

    def stored_digest(self, credential: str) -> bytes:
        """The digest stored in a canonical credential (what :meth:`digest` must reproduce)."""
        ...

    def strip_digest(self, credential: str) -> str:
        """The canonical credential with its digest removed: what a wrapped credential keeps."""
        ...


class Example(NamedTuple):
    """A known-answer vector a scheme may carry for ``self_test``.

    Optional: a scheme class may set ``examples: ClassVar[tuple[Example, ...]]``. ``keyring``
    holds the (test-only) key a keyed example was made with.
    """

    password: str
    credential: str
    keyring: Mapping[str, bytes | str] | None = None


S = TypeVar("S", bound=type)

_REGISTRY: dict[str, Scheme] = {}
_ORDER: list[tuple[int, str]] = []
_ALL: tuple[Scheme, ...] | None = None
"""``all_schemes()``, built once after the last registration (identify asks for it per value)."""


def register(priority: int = 100) -> Callable[[S], S]:
    """Class decorator: instantiate the scheme and register it under its ``id``.

    Lower ``priority`` is tried first by ``identify``.
    """

    def deco(cls: S) -> S:
        global _ALL
        scheme = cls()
        if scheme.id in _REGISTRY:
            raise RuntimeError(f"scheme id registered twice: {scheme.id}")
        _REGISTRY[scheme.id] = scheme
        _ORDER.append((priority, scheme.id))
        _ORDER.sort()
        _ALL = None
        return cls

    return deco


def get(scheme_id: str) -> Scheme:
    """The scheme registered under ``scheme_id``; KeyError if none."""
    return _REGISTRY[scheme_id]


def all_schemes() -> tuple[Scheme, ...]:
    """Every registered scheme, in identification order.

    The same tuple until the next :func:`register` (which makes a new one), so that a cache
    built from it (the prefix index) can tell that it is stale.
    """
    global _ALL
    if _ALL is None:
        _ALL = tuple(_REGISTRY[i] for _, i in _ORDER)
    return _ALL
