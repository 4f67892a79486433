"""The prioritisation's certificate: greedy <= optimum <= LP bound, exact == brute force, budgeted KMN."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import optimize, sparse

from geo.core.settings import CoverageSettings
from geo.coverage.engine import prioritise
from geo.coverage.errors import InvalidCoverageRequest
from geo.coverage.optimality import aggregate, budgeted_choice, choose, exact_choice, greedy_choice, lp_bound
from geo.coverage.request import parse_request


def _covered(reach: np.ndarray, weight: np.ndarray, rows) -> float:
    return float(weight[reach[list(rows)].any(axis=0)].sum()) if len(rows) else 0.0


def _brute(reach: np.ndarray, weight: np.ndarray, k: int, costs=None, budget=None) -> float:
    """The true optimum: every subset of at most k sites (within the budget)."""
    best = 0.0
    for size in range(1, k + 1):
        for rows in itertools.combinations(range(reach.shape[0]), size):
            if budget is not None and sum(costs[list(rows)]) > budget + 1e-9:
                continue
            best = max(best, _covered(reach, weight, rows))
    return best


@st.composite
def instances(draw):
    m = draw(st.integers(1, 7))
    n = draw(st.integers(1, 25))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    reach = rng.random((m, n)) < draw(st.floats(0.05, 0.6))
    weight = rng.integers(0, 6, n).astype(float)
    return reach, weight, draw(st.integers(1, m))


@settings(max_examples=60, deadline=None)
@given(instances())
def test_greedy_at_most_the_optimum_at_most_the_bound(instance):
    reach, weight, k = instance
    ids = np.arange(reach.shape[0]) * 10
    chosen, cert = choose(sparse.csr_matrix(reach.astype(float)), weight, ids, k)
    optimum = _brute(reach, weight, k)
    assert cert.value == pytest.approx(_covered(reach, weight, [int(a) // 10 for a, _ in chosen]))
    assert cert.value <= optimum + 1e-9 <= cert.bound + 2e-6
    assert cert.gap == pytest.approx(max(cert.bound - cert.value, 0) / cert.bound if cert.bound else 0.0)
    # The greedy is at least 1 - 1/e of the optimum, and so its proven gap never says worse than the LP's.
    assert cert.value >= (1 - 1 / np.e) * optimum - 1e-9
    bound, status, _, _ = lp_bound(sparse.csr_matrix(reach.astype(float)), weight, k)
    assert status == "optimal" and optimum <= bound + 2e-6


@settings(max_examples=60, deadline=None)
@given(instances())
def test_exact_equals_brute_force(instance):
    reach, weight, k = instance
    ids = np.arange(reach.shape[0])
    exact = exact_choice(sparse.csr_matrix(reach.astype(float)), weight, k)
    assert exact.status == "optimal" and len(exact.rows) <= k
    assert _covered(reach, weight, exact.rows) == pytest.approx(_brute(reach, weight, k))
    chosen, cert = choose(sparse.csr_matrix(reach.astype(float)), weight, ids, k, method="exact")
    assert cert.value == pytest.approx(_brute(reach, weight, k))
    assert cert.exact_status == "optimal" and cert.gap == pytest.approx(0.0, abs=1e-6)


@settings(max_examples=40, deadline=None)
@given(instances(), st.integers(0, 2**32 - 1))
def test_budgeted_choice_within_budget_and_bounded(instance, seed):
    reach, weight, k = instance
    rng = np.random.default_rng(seed)
    costs = rng.integers(1, 6, reach.shape[0]).astype(float)
    budget = float(rng.integers(1, 10))
    ids = np.arange(reach.shape[0])
    chosen, cert = choose(sparse.csr_matrix(reach.astype(float)), weight, ids, k, costs=costs, budget=budget)
    rows = [int(a) for a, _ in chosen]
    assert len(rows) <= k and costs[rows].sum() <= budget and cert.spent == pytest.approx(costs[rows].sum())
    optimum = _brute(reach, weight, k, costs, budget)
    assert cert.value <= optimum + 1e-9 <= cert.bound + 2e-6
    exact, exact_cert = choose(
        sparse.csr_matrix(reach.astype(float)), weight, ids, k, method="exact", costs=costs, budget=budget
    )
    assert exact_cert.value == pytest.approx(optimum)


def test_kmn_takes_the_best_single_site_when_the_ratio_greedy_is_bad():
    # Site 0: cost 1, reaches 2 households (ratio 2); site 1: cost 100, reaches 100 (ratio 1).
    # The ratio greedy takes site 0 and cannot afford site 1 any more: 2 of the 100 possible.
    reach = sparse.csr_matrix(np.array([[1, 0], [0, 1]], dtype=float))
    weight = np.array([2.0, 100.0])
    costs = np.array([1.0, 100.0])
    ratio_only, _ = greedy_choice(reach, weight, np.array([7, 8]), 5, costs=costs, budget=100.0)
    assert ratio_only == [(7, 2.0)]
    assert budgeted_choice(reach, weight, np.array([7, 8]), costs, 100.0, 5) == [(8, 100.0)]
    chosen, cert = choose(reach, weight, np.array([7, 8]), 5, costs=costs, budget=100.0)
    assert chosen == [(8, 100.0)] and cert.value == 100.0 and cert.spent == 100.0
    # The budgeted LP: x_0 = 1, x_1 = 0.99 adds 2 + 99; no choice could beat 101.
    assert cert.bound == pytest.approx(101.0, rel=1e-6) and cert.bound_source == "lp"
    assert cert.gap == pytest.approx(1 / 101, rel=1e-4)


def test_aggregation_keeps_the_lp_value():
    rng = np.random.default_rng(3)
    base = rng.random((12, 15)) < 0.3
    reach = np.hstack([base, base[:, :5], np.zeros((12, 3), bool)])  # repeated and unreached points
    weight = rng.integers(1, 5, reach.shape[1]).astype(float)
    merged, w = aggregate(sparse.csr_matrix(reach.astype(float)), weight)
    distinct = {tuple(np.flatnonzero(c)) for c in reach.T if c.any()}
    assert merged.shape == (12, len(distinct)) and w.sum() == pytest.approx(weight[reach.any(axis=0)].sum())
    # The LP over every point as its own row, written out densely.
    m, n = reach.shape
    a = np.hstack([-reach.T.astype(float), np.eye(n)])
    a = np.vstack([a, np.concatenate([np.ones(m), np.zeros(n)])])
    direct = optimize.linprog(
        np.concatenate([np.zeros(m), -weight]), A_ub=a, b_ub=np.concatenate([np.zeros(n), [4]]), bounds=(0, 1)
    )
    bound, *_ = lp_bound(sparse.csr_matrix(reach.astype(float)), weight, 4)
    assert bound == pytest.approx(-direct.fun, rel=1e-6)


def test_the_greedy_bound_stands_in_when_the_lp_is_cut_short():
    rng = np.random.default_rng(5)
    reach = sparse.csr_matrix((rng.random((400, 3000)) < 0.01).astype(float))
    weight = rng.integers(1, 4, 3000).astype(float)
    chosen, cert = choose(reach, weight, np.arange(400), 20, time_limit=1e-6)
    if cert.lp_status != "optimal":
        assert cert.bound_source == "greedy"
    assert cert.bound is not None and cert.bound >= cert.value and 0 <= cert.gap < 1


def test_exact_refuses_large_instances():
    reach = sparse.csr_matrix(np.ones((3, 4)))
    with pytest.raises(ValueError, match="priorities_method: exact is for k <= 20"):
        choose(reach, np.ones(4), np.arange(3), 21, method="exact")


def test_prioritise_keeps_its_signature_and_adds_the_certificate():
    demand = np.array([[0.0, 0.0], [10.0, 0.0], [500.0, 0.0]])
    args = (demand, np.array([1.0, 1.0, 5.0]), np.array([False, False, False]))
    cands = (np.array([[5.0, 0.0], [500.0, 50.0]]), np.array([1, 2]))
    plain = prioritise(*args, *cands, radius=100, k=2)
    assert plain["asset_id"].tolist() == [2, 1] and "certificate" not in plain.attrs
    certified = prioritise(*args, *cands, radius=100, k=1, certify=True)
    cert = certified.attrs["certificate"]
    assert cert["value"] == 5.0 and cert["bound"] == pytest.approx(5.0) and cert["gap"] == pytest.approx(0.0)
    budgeted = prioritise(
        *args, *cands, radius=100, k=2, costs=pd.Series([1.0, 9.0], index=[1, 2]), budget=2.0
    )
    assert budgeted["asset_id"].tolist() == [1] and budgeted["cost"].tolist() == [1.0]
    assert budgeted.attrs["certificate"]["spent"] == 1.0 and budgeted.attrs["certificate"]["budget"] == 2.0


AREA = {"bbox": [529000, 181000, 530000, 182000], "crs": "EPSG:27700"}


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"priorities_method": "exact", "k": 21}, "priorities_method: exact is for k <= 20"),
        ({"priorities_method": "fastest"}, "priorities_method"),
        ({"costs": {"by_kind": {"duct": 1.0}}}, "costs: given without a budget"),
        ({"budget": 10, "costs": {"by_kind": {"tower": 1.0}}}, "costs.by_kind: 'tower' not one of"),
        ({"budget": 10, "costs": {"by_wayleave_status": {"sign": 0}}}, "costs.by_wayleave_status: 'sign'"),
        ({"budget": 10, "costs": {"by_kind": {"duct": -1.0}}}, "costs.by_kind.duct"),
        ({"budget": 10, "costs": {"colour": {}}}, "costs.colour"),
        ({"budget": 0}, "budget"),
        ({"budget": 10, "costs": {"by_kind": {"duct": 0.0}}}, "every candidate must cost more than 0"),
    ],
)
def test_bad_method_budget_and_costs_are_refused_naming_the_field(body, message):
    with pytest.raises(InvalidCoverageRequest, match=message.replace("(", r"\(")):
        parse_request({"area": AREA, **body}, CoverageSettings())


def test_the_request_keeps_the_costs_it_was_given_over_the_settings():
    request = parse_request(
        {
            "area": AREA,
            "budget": 12.5,
            "costs": {"by_kind": {"duct": 7.0}, "by_wayleave_status": {"none": 4.0}},
        },
        CoverageSettings(),
    )
    params = request.parameters()
    assert params["budget"] == 12.5
    assert params["costs"]["by_kind"] == {"duct": 7.0, "public_building": 3.0, "street_furniture": 1.0}
    assert params["costs"]["by_wayleave_status"]["none"] == 4.0
    assert params["costs"]["by_wayleave_status"]["signed"] == 0.0
    assert "priorities_method" not in params  # greedy: the parameters of earlier reports stay the same
    assert (
        parse_request({"area": AREA, "priorities_method": "exact", "k": 3}, CoverageSettings()).parameters()[
            "priorities_method"
        ]
        == "exact"
    )
