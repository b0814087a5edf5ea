"""Past one machine: a run's key ranges as Dask tasks (``authmigrate run SPEC --dask``).

- :mod:`.ranges`: the key space cut into ranges in the source's own order, each with its own
  checkpoint rows;
- :mod:`.duplicates`: the pre-pass that keeps "first in key order wins" across ranges;
- :mod:`.run`: the client side: lock, plan, pre-pass, one Dask task per range.
"""
