"""Which schemes could claim a credential, found by its leading characters.

``identify`` used to ask all 53 registered schemes in priority order, phpass after 25 others and
several through libpass, twice per migrated row. Most schemes say by a fixed prefix whether a
credential is theirs (``$2b$``, ``$P$``, ``pbkdf2_sha256$``, ``$digest$``), and declare it as
``prefixes`` (see :mod:`._base`). The index keeps the prefixes as a tree of characters; a
credential's candidates are the schemes whose prefix it starts with (found by walking the tree
along the credential) plus the schemes that declare none, still in priority order.
``identify`` then asks only those, so its answer is the ordered walk's answer as long as every
declaration holds (tests/test_identify_index.py compares the two over every known-answer
vector and fuzzed strings).

    >>> [s.id for s in candidates("$2b$04$" + "a" * 53)][:1]
    ['bcrypt']
"""

from __future__ import annotations

from collections.abc import Sequence

from ._base import Scheme, all_schemes


class _Node:
    """One character of the declared prefixes: the schemes whose prefix ends here, what follows."""

    __slots__ = ("mask", "following")

    def __init__(self) -> None:
        self.mask = 0
        self.following: dict[str, _Node] = {}


class PrefixIndex:
    """The candidate schemes of a credential, from the ``prefixes`` the schemes declare."""

    def __init__(self, schemes: Sequence[Scheme]) -> None:
        self.source = schemes
        """What the index was built from (``all_schemes()``'s tuple: a new one means stale)."""
        self.schemes = tuple(schemes)
        general = 0
        root = _Node()
        for position, scheme in enumerate(self.schemes):
            prefixes = getattr(scheme, "prefixes", None)
            if not prefixes or "" in prefixes:
                general |= 1 << position
                continue
            for prefix in prefixes:
                node = root
                for char in prefix:
                    node = node.following.setdefault(char, _Node())
                node.mask |= 1 << position
        self._general = general
        self._root = root.following
        # A mask is the general schemes plus those whose prefixes start the credential: those
        # prefixes are nested, so there are at most as many masks as declared prefixes, plus one.
        self._chosen: dict[int, tuple[Scheme, ...]] = {}

    def candidates(self, credential: str) -> tuple[Scheme, ...]:
        """The schemes that may claim ``credential``, in identification order."""
        mask = self._general
        following = self._root
        for char in credential:  # down the prefixes' tree, as far as the credential follows it
            node = following.get(char)
            if node is None:
                break
            mask |= node.mask
            following = node.following
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
