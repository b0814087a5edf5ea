""" "First in key order wins" across key ranges that load at the same time.

In one process the batches commit in key order, so the duplicate check of a batch finds every
earlier account in the target. Ranges on Dask commit in any order: a later key could be
written first and take the email from an earlier one. So before the load, a pre-pass decides
every duplicate:

1. each range (a Dask task) reads its rows in key order and runs what comes before the
   duplicate check in a run (field transforms, the key-exists check, the credential stage
   without wrapping), and emits ``(rank, key, range, unique values)`` of every account that
   reaches the check; ``rank`` is the range's number and the row's place in it, so ranks
   follow the source's own key order;
2. a Dask bag is grouped (shuffled) by each unique group's value; in every group of more than
   one account, the lowest rank wins and the others lose;
3. groups are decided in the spec's order, each among the accounts the earlier groups left,
   as :class:`~authmigrate.stages.DuplicateStage` does batch by batch.

The range tasks then run the normal batch loop with :class:`DecidedDuplicates`: a loser whose
winner is not in its own batch is found a duplicate of the winner, whether or not the winner's
range has committed yet, with the same reason, detail and outcome as in one process (a value
held by a target account before the run still wins over both, as it does in one process).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from authmigrate.pipeline.batch import Batch
from authmigrate.pipeline.stages import DuplicateStage, group_value, unique_groups

if TYPE_CHECKING:
    from authmigrate.cluster.ranges import KeyRange
    from authmigrate.spec import Spec

Decided = dict[tuple[int, Any], Any]
"""``{(group index, value): winning source key}`` for the values held by several accounts."""

Candidate = tuple[tuple[int, int], Any, int, tuple[Any, ...], int]
"""``((range id, position), key, range id, value of each unique group, held)``: ``held`` is
the first group whose value an account of the target holds already (it loses there to that
account, as in one process), ``len(groups)`` for none."""


class _NoDuplicates:
    """Stands in for the duplicate stage while the pre-pass reads: it decides nothing."""

    def process(self, batch: Batch) -> None:
        return None


def candidates(spec: Spec, rng: KeyRange, run_id: str) -> list[Candidate]:
    """The accounts of ``rng`` (after its checkpoint) that reach the duplicate check, with
    their unique values; one Dask task per range."""
    from authmigrate.cluster.ranges import range_resume
    from authmigrate.cluster.run import worker_migration

    m = worker_migration(spec, run_id, dry=True)
    groups = unique_groups(spec)
    _, after = range_resume(m, rng)
    out: list[Candidate] = []
    position = 0
    with m.target.engine.connect() as conn:
        for rows in m.pages(after, rng.upto):
            batch = m.finish_batch(m.transform_batch(0, rows), _NoDuplicates(), conn)  # type: ignore[arg-type]
            columns = [[group_value(r.values, g) for r in batch.records] for g in groups]
            taken = [m.taken(conn, g, col) for g, col in zip(groups, columns, strict=True)]
            for i, rec in enumerate(batch.records):
                values = tuple(col[i] for col in columns)
                held = next(
                    (g for g, v in enumerate(values) if v is not None and v in taken[g]),
                    len(groups),
                )
                if any(v is not None for v in values):
                    out.append(((rng.id, position), rec.key, rng.id, values, held))
                position += 1
    return out


Loser = tuple[Any, int, tuple[int, Any, Any]]
"""``(key, range id, (group index, value, winning key))``."""


def _losers_of(group: int) -> Callable[[tuple[Any, list[Candidate]]], list[Loser]]:
    def losers(item: tuple[Any, list[Candidate]]) -> list[Loser]:
        value, members = item
        if len(members) < 2:
            return []
        ordered = sorted(members, key=lambda c: c[0])
        winner = ordered[0][1]
        return [(c[1], c[2], (group, value, winner)) for c in ordered[1:]]

    return losers


def decide(client: Any, spec: Spec, ranges: list[KeyRange], run_id: str) -> dict[int, Decided]:
    """Run the pre-pass on the cluster: ``{range id: decided duplicates its tasks need}``."""
    import dask.bag as db
    from dask import delayed

    groups = unique_groups(spec)
    if not groups:
        return {}
    parts = [delayed(candidates, pure=False)(spec, rng, run_id) for rng in ranges]
    items = client.persist(db.from_delayed(parts))
    decided: dict[int, Decided] = {}
    lost: set[Any] = set()
    for gi in range(len(groups)):
        gone = frozenset(lost)

        def open_value(c: Candidate, gi: int = gi, gone: frozenset[Any] = gone) -> bool:
            return c[3][gi] is not None and c[1] not in gone and c[4] > gi

        found = (
            items.filter(open_value)
            .groupby(lambda c, gi=gi: c[3][gi], shuffle="tasks")
            .map(_losers_of(gi))
            .flatten()
        )
        pairs = client.compute(found).result()
        for key, range_id, (g, value, winner) in pairs:
            lost.add(key)
            decided.setdefault(range_id, {})[(g, value)] = winner
    return decided


class DecidedDuplicates(DuplicateStage):
    """The duplicate stage of a range task: the target's accounts as in one process, plus
    the winners the pre-pass decided, so a loser loses even before its winner is written."""

    def __init__(
        self,
        spec: Spec,
        lookup: Callable[[tuple[str, ...], list[Any]], dict[Any, Any]],
        key_form: Callable[[Any], Any],
        decided: Decided,
    ) -> None:
        super().__init__(
            unique_groups(spec), lookup, key_form, merge=spec.run.duplicates == "merge"
        )
        self._target_lookup = lookup
        self.decided = decided
        self._index = {g: i for i, g in enumerate(self.groups)}

    def process(self, batch: Batch) -> None:
        if not self.decided:
            super().process(batch)
            return
        here = {self.key_form(r.key) for r in batch.records}

        def lookup(group: tuple[str, ...], values: list[Any]) -> dict[Any, Any]:
            taken = self._target_lookup(group, values)
            gi = self._index[group]
            for value in values:
                winner = self.decided.get((gi, value))
                if winner is None or value in taken or self.key_form(winner) in here:
                    continue  # no decision, held in the target, or decided in this batch
                taken[value] = winner
            return taken

        self.lookup = lookup
        try:
            super().process(batch)
        finally:
            self.lookup = self._target_lookup
