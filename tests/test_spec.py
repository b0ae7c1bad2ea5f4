"""The spec: parsing, round trip, and a one-line error for every kind of bad input."""

from __future__ import annotations

import copy
import subprocess
import sys

import numpy as np
import pytest
import yaml

from pipeline.run.plan import make_plan
from pipeline.spec import SpecError, load_spec, parse_spec
from pipeline.store.grid import chunk_slices, iter_chunk_keys

BASE = {
    "experiment": "propagation",
    "store": "x.zarr",
    "axes": {
        "width": [64],
        "sigma_w": {"linspace": [0.5, 2.0], "count": 4},
        "sigma_b": [0.0, 0.1],
    },
    "depth": 5,
    "probes": {"pair": {"q0": 1.0, "c0": 0.5}, "circle": {"K": 8}, "batch": {"m": 4}},
}


def with_(path: str, value, base=BASE):
    raw = copy.deepcopy(base)
    *parents, last = path.split(".")
    node = raw
    for p in parents:
        node = node.setdefault(p, {})
    node[last] = value
    return raw


def test_parse_defaults_and_grid():
    spec = parse_spec(BASE)
    assert spec.dims == ("width", "alpha", "seed", "activation", "sigma_w", "sigma_b")
    assert spec.shape == (1, 1, 1, 1, 4, 2)
    np.testing.assert_allclose(spec.axis("sigma_w").values, [0.5, 1.0, 1.5, 2.0])
    assert spec.params.record_layers == (1, 2, 3, 4, 5)
    assert spec.params.probes.rows_per_point == 3 + 8 + 4


def test_round_trip_through_dict_and_yaml():
    spec = parse_spec(BASE)
    again = parse_spec(yaml.safe_load(yaml.safe_dump(spec.to_dict())))
    assert again == spec
    assert again.differences(spec) == []


def test_differences_name_fields():
    a = parse_spec(BASE)
    b = parse_spec(with_("depth", 6))
    c = parse_spec(with_("axes.sigma_b", [0.0, 0.2]))
    assert a.differences(b) == ["depth", "record_layers"]
    assert a.differences(c) == ["axes.sigma_b"]
    assert a.differences(parse_spec(with_("store", "elsewhere.zarr"))) == []


def test_squared_axes_and_forms():
    raw = with_(
        "axes",
        {
            "width": {"values": [32, 64]},
            "sigma_w2": {"linspace": [1, 4], "count": 4},
            "sigma_b2": [0.05],
            "seed": {"start": 3, "count": 2},
            "alpha": {"logspace": [-0.3, 0.3], "count": 3},
        },
    )
    spec = parse_spec(raw)
    ax = spec.axis("sigma_w")
    assert ax.name == "sigma_w2" and ax.squared
    np.testing.assert_allclose(ax.physical, [1, np.sqrt(2), np.sqrt(3), 2])
    assert spec.axis("seed").values == (3, 4)
    np.testing.assert_allclose(spec.axis("alpha").values, 10 ** np.linspace(-0.3, 0.3, 3))


def test_record_layers_forms():
    assert parse_spec(with_("record_layers", {"every": 2})).params.record_layers == (2, 4, 5)
    assert parse_spec(with_("record_layers", "last")).params.record_layers == (5,)
    assert parse_spec(with_("record_layers", [5, 1])).params.record_layers == (1, 5)


def test_chunk_keys_cover_grid_once():
    spec = parse_spec(with_("chunks", {"sigma_w": 3, "sigma_b": 1}))
    seen = np.zeros(spec.shape, int)
    for key in iter_chunk_keys(spec):
        seen[chunk_slices(spec, key)] += 1
    assert (seen == 1).all()
    assert make_plan(spec).n_chunks == 4


def test_plan_flops():
    spec = parse_spec(BASE)
    plan = make_plan(spec)
    rows = 8 * (3 + 8 + 4)
    assert plan.flops == pytest.approx(2 * 64**2 * rows * 5)
    assert plan.n_points == 8


BAD = [
    # (path, value, fragment of the one-line message)
    ("axes.sigma_x", [1.0], "spec field 'axes.sigma_x': unknown key; did you mean 'sigma_w'?"),
    ("dpeth", 3, "spec field 'dpeth': unknown key; did you mean 'depth'?"),
    (
        "axes.width",
        [0],
        "spec field 'axes.width': value 0 is outside the allowed integers [1, 2147483647]",
    ),
    (
        "axes.alpha",
        [2.5],
        "spec field 'axes.alpha': value 2.5 is outside the allowed numbers (0, 2]",
    ),
    ("axes.alpha", [0], "spec field 'axes.alpha': value 0.0 is outside the allowed numbers (0, 2]"),
    (
        "axes.sigma_w",
        [-0.1],
        "spec field 'axes.sigma_w': value -0.1 is outside the allowed numbers [0, inf)",
    ),
    ("axes.sigma_b", [0.0, -1.0], "spec field 'axes.sigma_b[1]': value -1.0 is outside"),
    (
        "axes.sigma_w",
        {"linspace": [0, 1], "count": 0},
        "spec field 'axes.sigma_w.count': count 0 must be >= 1",
    ),
    (
        "chunks",
        {"sigma_w": 9},
        "spec field 'chunks.sigma_w': value 9 is larger than the axis (4 values)",
    ),
    (
        "axes.activation",
        ["tahn"],
        "spec field 'axes.activation': unknown value 'tahn'; did you mean 'tanh'?",
    ),
    ("depth", 0, "spec field 'depth': value 0 is not an integer >= 1"),
    ("probes.circle.K", 2, "spec field 'probes.circle.K': value 2 is not an integer >= 3"),
    ("probes.batch.m", 0, "spec field 'probes.batch.m': value 0 is not an integer >= 1"),
    ("record_layers", [0, 3], "spec field 'record_layers': value 0 is outside 1..5 (depth)"),
    ("record_layers", [6], "spec field 'record_layers': value 6 is outside 1..5 (depth)"),
    ("axes.sigma_b", [0.1, 0.1], "spec field 'axes.sigma_b': duplicate value 0.1"),
    ("dtype", "float16", "spec field 'dtype': unknown value 'float16' (allowed: float32, float64)"),
]


@pytest.mark.parametrize(
    ("path", "value", "message"), BAD, ids=[b[0] + "=" + repr(b[1]) for b in BAD]
)
def test_bad_input_one_line_message(path, value, message):
    with pytest.raises(SpecError) as info:
        parse_spec(with_(path, value))
    text = str(info.value)
    assert "\n" not in text
    assert text.startswith(message), text


def test_malformed_yaml(tmp_path):
    p = tmp_path / "bad.yaml"
    p.write_text("axes:\n  width: [64\ndepth: 3\n")
    with pytest.raises(SpecError) as info:
        load_spec(p)
    text = str(info.value)
    assert "\n" not in text
    assert text.startswith("spec field '<file>': ") and "is not valid YAML at line" in text


def test_missing_file(tmp_path):
    with pytest.raises(SpecError) as info:
        load_spec(tmp_path / "nope.yaml")
    assert (
        str(info.value)
        == f"spec field '<file>': spec file '{tmp_path / 'nope.yaml'}' does not exist"
    )


def test_cli_prints_one_line_error_and_exits_2(tmp_path):
    p = tmp_path / "s.yaml"
    p.write_text(yaml.safe_dump(with_("axes.alpha", [3.0])))
    out = subprocess.run(
        [sys.executable, "-m", "pipeline", "plan", str(p)], capture_output=True, text=True
    )
    assert out.returncode == 2
    assert out.stderr.strip() == (
        "error: spec field 'axes.alpha': value 3.0 is outside the allowed numbers (0, 2]"
    )
