"""Which schemes could claim a credential, found by its leading characters.

``identify`` used to ask all 53 registered schemes in priority order, phpass after 25 others and
several through libpass, twice per migrated row. Most schemes say by a fixed prefix whether a
credential is theirs (``$2b$``, ``$P$``, ``pbkdf2_sha256$``, ``$digest$``), and declare it as
``prefixes`` (see :mod:`._base`). The index keeps, for each first character, a table per prefix
length; a credential's candidates are the schemes whose prefix it starts with plus the schemes
that declare none, still in priority order. ``identify`` then asks only those, so its answer is
the ordered walk's answer as long as every declaration holds (tests/test_identify_index.py
compares the two over every known-answer vector and fuzzed strings).

    >>> [s.id for s in candidates("$2b$04$" + "a" * 53)][:1]
    ['bcrypt']
"""

from __future__ import annotations

from collections.abc import Sequence

from ._base import Scheme, all_schemes


class PrefixIndex:
    """The candidate schemes of a credential, from the ``prefixes`` the schemes declare."""

    def __init__(self, schemes: Sequence[Scheme]) -> None:
        self.source = schemes
        """What the index was built from (``all_schemes()``'s tuple: a new one means stale)."""
        self.schemes = tuple(schemes)
        general = 0
        tables: dict[str, dict[int, dict[str, int]]] = {}
        for position, scheme in enumerate(self.schemes):
            prefixes = getattr(scheme, "prefixes", None)
            if not prefixes or "" in prefixes:
                general |= 1 << position
                continue
            for prefix in prefixes:
                table = tables.setdefault(prefix[0], {}).setdefault(len(prefix), {})
                table[prefix] = table.get(prefix, 0) | 1 << position
        self._general = general
        self._by_first = {first: tuple(sorted(by_len.items())) for first, by_len in tables.items()}
        # A mask is the general schemes plus those whose prefixes start the credential: those
        # prefixes are nested, so there are at most as many masks as declared prefixes, plus one.
        self._chosen: dict[int, tuple[Scheme, ...]] = {}

    def candidates(self, credential: str) -> tuple[Scheme, ...]:
        """The schemes that may claim ``credential``, in identification order."""
        mask = self._general
        for length, table in self._by_first.get(credential[:1], ()):
            hit = table.get(credential[:length])
            if hit:
                mask |= hit
        chosen = self._chosen.get(mask)
        if chosen is None:
            chosen = tuple(s for i, s in enumerate(self.schemes) if mask >> i & 1)
            self._chosen[mask] = chosen
        return chosen


_INDEX: PrefixIndex | None = None


def index() -> PrefixIndex:
    """The index of every registered scheme (rebuilt after a new registration)."""
    global _INDEX
    schemes = all_schemes()
    if _INDEX is None or _INDEX.source is not schemes:
        _INDEX = PrefixIndex(schemes)
    return _INDEX


def candidates(credential: str) -> tuple[Scheme, ...]:
    """The registered schemes that may claim ``credential``, in identification order."""
    return index().candidates(credential)
