"""Window selection from per-layer curves with a known answer, and the reference windows."""

from __future__ import annotations

import numpy as np
import pytest

from geomalign.analysis import Result, ResultsTable
from geomalign.tuning import LayerWindow, curve_from_table, reference_windows, select_window


def bump(n_layers: int, centre: float, spread: float = 1.5, floor: float = 4.0) -> np.ndarray:
    """An ID-like profile over layers 0..n_layers with a Gaussian peak at ``centre``."""
    layers = np.arange(n_layers + 1)
    return floor + 10.0 * np.exp(-0.5 * ((layers - centre) / spread) ** 2)


@pytest.mark.parametrize("centre", [3, 8, 16, 25])
@pytest.mark.parametrize("width", [1, 3, 5, 11])
def test_peak_rule_centres_the_window_on_a_known_peak(centre, width):
    window = select_window(bump(32, centre), rule="peak", width=width)
    first = min(max(centre - (width - 1) // 2, 1), 32 - width + 1)  # shifted inside 1..32
    assert (window.first, window.last, window.size) == (first, first + width - 1, width)
    assert window.first <= centre <= window.last
    assert window.numbers["peak_layer"] == centre
    assert window.numbers["width"] == width
    assert window.blocks == range(first - 1, first + width - 1)


@pytest.mark.parametrize(("centre", "side"), [(10.3, 1), (9.7, -1)])
def test_even_width_extends_towards_the_higher_neighbour(centre, side):
    window = select_window(bump(20, centre), width=4)
    assert window.numbers["peak_layer"] == 10
    assert window.size == 4
    assert (window.first, window.last) == ((9, 12) if side > 0 else (8, 11))


def test_peak_window_is_shifted_not_cut_at_the_ends():
    near_start = select_window(bump(12, 1.0, spread=1.0), width=5)
    assert (near_start.first, near_start.last) == (1, 5)  # layer 0 is not a block output
    near_end = select_window(bump(12, 11.0, spread=1.0), width=5)
    assert (near_end.first, near_end.last) == (8, 12)
    whole = select_window(bump(4, 2.0), width=9)
    assert (whole.first, whole.last) == (1, 4)


def test_phase_rule_is_the_full_width_at_half_prominence():
    # A triangle over a flat floor of 2: peak 10 at layer 6, prominence 8, half level 6,
    # crossed at layers 4 and 8 exactly.
    values = [2, 2, 2, 2, 6, 8, 10, 8, 6, 4, 2, 2]
    window = select_window(values, rule="phase")
    assert (window.first, window.last) == (4, 8)
    assert window.numbers["prominence"] == pytest.approx(8.0)
    assert window.numbers["onset"] == pytest.approx(4.0)
    assert window.numbers["end"] == pytest.approx(8.0)


def test_phase_rule_rounds_fractional_crossings_inwards():
    values = [2, 2, 2, 5, 7, 10, 7, 5, 2, 2]  # half level 6 crossed at 3.5 and 6.5
    window = select_window(values, rule="phase")
    assert (window.first, window.last) == (4, 6)


def test_threshold_rule_on_a_rising_then_falling_alignment_curve():
    layers = np.arange(17)
    alignment = 0.2 + 0.6 / (1 + np.exp(-(layers - 6.0))) - 0.5 * (layers >= 14)
    window = select_window(alignment, rule="threshold", threshold=0.5)
    level = window.numbers["level"]
    assert level == pytest.approx(alignment.min() + 0.5 * (alignment.max() - alignment.min()))
    inside = alignment[window.first : window.last + 1]
    assert np.all(inside >= level)
    assert alignment[window.first - 1] < level
    assert window.last == 13
    assert alignment[14] < level


def test_threshold_run_is_the_one_holding_the_maximum():
    values = [0, 9, 9, 0, 5, 10, 8, 0]  # two runs above 4.5; the maximum is in the second
    window = select_window(values, rule="threshold", threshold=0.45)
    assert (window.first, window.last) == (4, 6)


def test_subsampled_layers_give_windows_in_real_layer_numbers():
    layers = np.arange(0, 33, 4)
    profile = bump(32, 16.0, spread=6.0)[layers]
    window = select_window(profile, layers=layers, width=9)
    assert window.numbers["peak_layer"] == 16
    assert (window.first, window.last) == (12, 20)
    phase = select_window(profile, layers=layers, rule="phase")
    assert phase.first < 16 < phase.last
    assert phase.first >= phase.numbers["onset"]
    assert phase.last <= phase.numbers["end"]


def test_window_never_starts_at_the_embedding_output():
    values = [9.0, 8.0, 1.0, 0.5, 0.2]  # the threshold run is layers 0-1
    window = select_window(values, rule="threshold")
    assert (window.first, window.last) == (1, 1)
    assert window.blocks == range(0, 1)
    with pytest.raises(ValueError, match="only layer 0"):
        select_window([9.0, 1.0, 0.5], rule="threshold")


def test_window_is_a_frozen_record_of_the_rule():
    window = select_window(bump(8, 4.0), width=3)
    assert isinstance(window, LayerWindow)
    assert window.rule == "peak"
    assert list(window.layers) == [3, 4, 5]
    with pytest.raises(AttributeError):
        window.first = 0  # type: ignore[misc]


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"values": [1.0, 2.0, 3.0, 4.0]}, ValueError, "needs an interior peak.*threshold"),
        ({"values": [1.0, 2.0, 1.0], "rule": "best"}, ValueError, "rule must be one of"),
        ({"values": [1.0, np.nan, 1.0]}, ValueError, "NaN/Inf at layers \\[1\\]"),
        ({"values": [[1.0, 2.0]]}, ValueError, "1-D curve"),
        ({"values": [1.0, 2.0, 1.0], "layers": [0, 2, 1]}, ValueError, "strictly increasing"),
        ({"values": [1.0, 2.0, 1.0], "layers": [0, 1]}, ValueError, "one entry per value"),
        ({"values": [1.0, 2.0, 1.0], "layers": [0.0, 1.0, 2.0]}, TypeError, "integers"),
        ({"values": [1.0, 2.0, 1.0], "width": 0}, ValueError, "width must be a positive"),
        (
            {"values": [1.0, 2.0, 1.0], "rule": "threshold", "threshold": 1.5},
            ValueError,
            "threshold must be a float in \\[0, 1\\]",
        ),
        (
            {"values": [1.0, 2.0, 1.5, 3.0, 2.5], "min_prominence": 5.0},
            ValueError,
            "prominence >= 5.0",
        ),
    ],
)
def test_bad_inputs_are_rejected(kwargs, error, match):
    with pytest.raises(error, match=match):
        select_window(**kwargs)


def test_reference_windows_have_the_size_and_place_asked_for():
    windows = reference_windows(3, 10, avoid=range(4, 7))
    assert windows["early"] == range(0, 3)
    assert windows["late"] == range(7, 10)
    assert len(windows["random"]) == 3
    assert windows["random"].start not in (0, 4, 7)


def test_random_reference_window_follows_its_seed():
    draws = {
        reference_windows(2, 12, kinds=("random",), random_state=s)["random"].start
        for s in range(30)
    }
    assert len(draws) > 3
    assert reference_windows(2, 12, random_state=5) == reference_windows(2, 12, random_state=5)


def test_random_reference_window_when_few_starts_exist():
    assert reference_windows(2, 3, kinds=("random",), avoid=range(0, 2))["random"] == range(1, 3)
    assert reference_windows(3, 3, kinds=("random",), avoid=range(0, 3))["random"] == range(0, 3)


@pytest.mark.parametrize(
    ("args", "kwargs", "match"),
    [
        ((4, 3), {}, "size must be <= n_blocks"),
        ((0, 3), {}, "size must be a positive integer"),
        ((2, 6), {"kinds": ("middle",)}, "kinds must be among"),
    ],
)
def test_reference_windows_reject_bad_inputs(args, kwargs, match):
    with pytest.raises(ValueError, match=match):
        reference_windows(*args, **kwargs)


def _profile_rows(checkpoint: str, values: np.ndarray) -> list[Result]:
    return [
        Result(
            analysis="id-profile",
            measure="id-gride",
            checkpoint=checkpoint,
            view="image/mean",
            layer=layer,
            value=float(v),
            kind="dimension",
        )
        for layer, v in enumerate(values)
    ]


def test_curve_from_table_feeds_select_window(tmp_path):
    table = ResultsTable(_profile_rows("base", bump(6, 3.0)) + _profile_rows("tuned", bump(6, 4.0)))
    table.append(
        Result(
            analysis="abstraction-phase",
            measure="id-gride",
            checkpoint="base",
            view="image/mean",
            layer=3,
            value=3.0,
            statistic="peak_layer",
        )
    )
    reloaded = ResultsTable.from_csv(table.to_csv(tmp_path / "results.csv"))
    layers, values = curve_from_table(reloaded, checkpoint="tuned")
    np.testing.assert_array_equal(layers, np.arange(7))
    np.testing.assert_allclose(values, bump(6, 4.0))
    assert select_window(values, layers=layers, width=1).first == 4
    with pytest.raises(ValueError, match=r"2 curves.*choose one"):
        curve_from_table(reloaded)
    with pytest.raises(ValueError, match="no 'cross-modal' rows"):
        curve_from_table(reloaded, analysis="cross-modal")
