"""Chunk keys are a pure, deterministic partition of the grid (property tests)."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.run.plan import make_plan
from pipeline.spec import parse_spec
from pipeline.store.grid import (
    chunk_coords,
    chunk_slices,
    iter_chunk_keys,
    key_from_str,
    key_to_str,
)


@st.composite
def specs(draw):
    n_w = draw(st.integers(1, 7))
    n_b = draw(st.integers(1, 5))
    n_seed = draw(st.integers(1, 3))
    raw = {
        "axes": {
            "width": [8],
            "seed": {"start": 0, "count": n_seed},
            "sigma_w": {"linspace": [0.5, 2.0], "count": n_w},
            "sigma_b": {"linspace": [0.0, 1.0], "count": n_b},
        },
        "depth": 2,
        "chunks": {
            "sigma_w": draw(st.integers(1, n_w)),
            "sigma_b": draw(st.integers(1, n_b)),
            "seed": draw(st.integers(1, n_seed)),
        },
    }
    return parse_spec(raw)


@settings(max_examples=60, deadline=None)
@given(specs())
def test_keys_partition_the_grid_exactly_once(spec):
    seen = np.zeros(spec.shape, int)
    keys = list(iter_chunk_keys(spec))
    assert keys == sorted(keys) and len(set(keys)) == len(keys)
    for key in keys:
        assert key_from_str(key_to_str(key)) == key
        sl = chunk_slices(spec, key)
        seen[sl] += 1
        coords = chunk_coords(spec, key)
        for ax, s in zip(spec.axes, sl, strict=True):
            assert tuple(coords[ax.name]) == ax.values[s]
            assert s.stop - s.start <= spec.chunks[spec.dims.index(ax.name)]
    assert (seen == 1).all()
    assert make_plan(spec).n_chunks == len(keys)
