"""``plan`` for exports: how many accounts take each route, per provider, and the spec's
provider's self-test per group."""

from __future__ import annotations

from collections import Counter
from typing import Any

from authmigrate.pipeline.batch import Batch

from . import PROVIDERS, provider_named, route
from ._model import ROUTES
from ._sink import ExportSink


class ExportPlan:
    """Counts routes for every provider over the batches ``plan`` reads."""

    def __init__(self, sink: ExportSink) -> None:
        self.sink = sink
        names = [sink.provider.name, *(n for n in PROVIDERS if n != sink.provider.name)]
        self.providers = {
            n: sink.provider if n == sink.provider.name else provider_named(n) for n in names
        }
        self.counts: dict[str, Counter[str]] = {n: Counter() for n in names}
        self.groups: dict[str, bool] = {}

    @classmethod
    def from_spec(cls, spec: Any) -> ExportPlan:
        """The plan of the spec's export."""
        return cls(ExportSink.from_spec(spec))

    def tally(self, batch: Batch) -> None:
        """Route every account of ``batch`` for every provider."""
        column = self.sink.credential_column
        for record in batch.records:
            value = record.values.get(column) if column else None
            for name, provider in self.providers.items():
                r = route(provider, value, self.sink.keyring, record.scheme)
                self.counts[name][r.route] += 1
                if name == self.sink.provider.name and r.route in ("native", "re-encoded"):
                    label = f"{r.scheme} {r.route}" + (
                        " (" + ", ".join(f"{k}={v}" for k, v in r.config if k != "hash-key") + ")"
                        if r.config
                        else ""
                    )
                    passed = self.sink.self_test(r, str(value))
                    self.groups[label] = self.groups.get(label, True) and passed

    def routes(self) -> dict[str, dict[str, int]]:
        """Accounts per route, per provider (every route listed, zeros too)."""
        return {n: {r: c[r] for r in ROUTES} for n, c in self.counts.items()}

    def self_tests(self) -> dict[str, bool]:
        """The spec's provider's self-test per group label."""
        return dict(self.groups)
