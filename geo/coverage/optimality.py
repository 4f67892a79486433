"""Choosing candidate sites with a certificate: greedy, cost-aware greedy, exact MILP and the LP bound.

Maximum coverage over a reach matrix (candidates x demand points, 1 where a candidate reaches a
point) and the households of the points. Pure numpy / scipy: the engine
(:func:`geo.coverage.engine.prioritise`) builds the matrix, and anything holding a matrix (a
partitioned computation combining its parts) can call :func:`choose` directly.

- :func:`greedy_choice`: the site adding the most households, ``k`` times (within 1 - 1/e of the
  optimum in theory). On the way it keeps the classic data-dependent bound: for any chosen set
  ``S``, no ``k`` sites cover more than ``f(S)`` plus the ``k`` largest gains left (submodularity).
- :func:`budgeted_choice`: Khuller, Moss and Naor (1999): greedy by gain per unit of cost among the
  affordable sites, compared with the best single affordable site; the better of the two.
- :func:`lp_bound`: the LP relaxation (``x_j, y_i`` in [0, 1], ``y_i <= sum x_j`` over the sites
  reaching ``i``, ``sum x_j <= k``, ``sum c_j x_j <= B``), solved by HiGHS: an upper bound on what
  any choice could cover. Demand points reached by the same set of sites are one weighted row, and
  points no site reaches are dropped, so the LP is far smaller than the demand.
- :func:`exact_choice`: the same model with integral ``x`` (``scipy.optimize.milp``), for small
  instances; at its time limit the answer says so, with its MIP gap.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np
from scipy import optimize, sparse

Method = Literal["greedy", "exact"]
#: The limits of the exact method (the issue's "small instances").
EXACT_MAX_K = 20
EXACT_MAX_CANDIDATES = 5_000
DEFAULT_TIME_LIMIT = 5.0
_REL = 1e-9  # relative slack when comparing a value with its bound (floating point)


@dataclass
class Certificate:
    """How good a choice is: its value, an upper bound on any choice's and the proven gap.

    ``gap`` is ``(bound - value) / bound`` (0 when the bound is 0): the choice covers at least
    ``1 - gap`` of the best possible. ``bound_source`` says where the bound comes from: ``lp``
    (the LP relaxation, solved), ``milp`` (the exact method's dual bound), ``greedy`` (the
    submodular bound kept by the greedy; used when it is tighter or the LP hit its time limit) or
    None (no bound: a budgeted LP that hit its time limit).
    """

    method: str
    k: int
    value: float
    bound: float | None
    gap: float | None
    bound_source: str | None
    lp_status: str
    seconds: float
    budget: float | None = None
    spent: float | None = None
    exact_status: str | None = None
    mip_gap: float | None = None
    candidates: int = 0
    demand_rows: int = 0

    def as_dict(self) -> dict[str, Any]:
        """The certificate as JSON values (what the report's summary stores as ``priorities``)."""
        return {key: _plain(v) for key, v in asdict(self).items()}


def _plain(value: Any) -> Any:
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, float | np.floating):
        return None if not np.isfinite(value) else float(value)
    return value


# The instance ----------------------------------------------------------------------------------
def aggregate(reach: sparse.spmatrix, weight: np.ndarray) -> tuple[sparse.csc_matrix, np.ndarray]:
    """Demand points reached by the same set of candidates merged into one column, weights added.

    Points with no weight or reached by no candidate are dropped (they change neither the
    objective nor any choice). Columns are grouped by two 64-bit hashes of their row sets and
    their size, then checked exactly against their group's first column; should two differing
    columns ever share the hashes, nothing is merged (never a wrong bound).

    Returns
    -------
    (scipy.sparse.csc_matrix, numpy.ndarray)
        The (candidates x groups) matrix, 0/1, and the weight of each group.
    """
    csc = sparse.csc_matrix(reach, dtype=np.float64)
    csc.sum_duplicates()
    csc.sort_indices()
    weight = np.asarray(weight, dtype=float)
    keep = np.flatnonzero((np.diff(csc.indptr) > 0) & (weight > 0))
    csc, weight = csc[:, keep], weight[keep]
    csc.sort_indices()
    if csc.shape[1] < 2:
        return csc, weight
    rng = np.random.default_rng(20261203)
    nnz = np.diff(csc.indptr)
    starts = csc.indptr[:-1]
    keys = [nnz.astype(np.uint64)]
    for _ in range(2):
        salt = rng.integers(1, 2**63, size=csc.shape[0], dtype=np.uint64)
        with np.errstate(over="ignore"):
            keys.append(np.add.reduceat(salt[csc.indices], starts).astype(np.uint64))
    order = np.lexsort(keys[::-1])
    stacked = np.column_stack(keys)[order]
    new = np.ones(len(order), dtype=bool)
    new[1:] = (stacked[1:] != stacked[:-1]).any(axis=1)
    group_sorted = np.cumsum(new) - 1
    group = np.empty_like(group_sorted)
    group[order] = group_sorted
    first = order[new]  # the first column of each group
    # Exact check: every column's row indices equal those of its group's first column.
    rep = first[group]
    offsets = np.arange(csc.nnz) - np.repeat(starts, nnz)
    if not np.array_equal(csc.indices, csc.indices[np.repeat(csc.indptr[rep], nnz) + offsets]):
        return csc, weight
    return csc[:, first], np.bincount(group, weights=weight, minlength=len(first))


def _marginals(reach: sparse.csr_matrix, weight: np.ndarray) -> np.ndarray:
    return np.asarray(reach @ weight, dtype=float).reshape(-1)


def _top_sum(values: np.ndarray, k: int) -> float:
    if k <= 0 or values.size == 0:
        return 0.0
    if k >= values.size:
        return float(values[values > 0].sum())
    top = np.partition(values, values.size - k)[values.size - k :]
    return float(top[top > 0].sum())


# Greedy choices --------------------------------------------------------------------------------
def greedy_choice(
    reach: sparse.spmatrix,
    weight: np.ndarray,
    asset_ids: np.ndarray,
    k: int,
    *,
    costs: np.ndarray | None = None,
    budget: float | None = None,
) -> tuple[list[tuple[Any, float]], float]:
    """Up to ``k`` ``(asset id, gain)`` in the order chosen, and an upper bound on any ``k`` sites.

    Each step takes the site adding the most weight (with ``costs`` and ``budget``: the most
    weight per unit of cost among the sites still affordable). Ties go to the first row (the
    smallest id, as ids are sorted). Stops early when no (affordable) site adds anything.

    The bound returned is ``min over steps of f(S) + the k largest gains given S``, valid for
    the cardinality problem only (``inf`` with a budget).
    """
    reach = sparse.csr_matrix(reach, dtype=np.float64)
    reach_csc = reach.tocsc()
    weight = np.asarray(weight, dtype=float).copy()
    gains = _marginals(reach, weight)
    budgeted = budget is not None and costs is not None
    cost = np.asarray(costs, dtype=float) if budgeted else None
    left = float(budget) if budget is not None and budgeted else np.inf
    chosen: list[tuple[Any, float]] = []
    value, bound = 0.0, np.inf
    for _ in range(max(k, 0)):
        if gains.size == 0:
            break
        if not budgeted:
            bound = min(bound, value + _top_sum(gains, k))
            best = int(np.argmax(gains))  # first maximum: the smallest id
        else:
            assert cost is not None
            ratio = np.where(cost <= left * (1 + _REL), gains / np.maximum(cost, 1e-300), -1.0)
            best = int(np.argmax(ratio))
            if ratio[best] <= 0:
                break
        if gains[best] <= 0:
            break
        chosen.append((asset_ids[best], float(gains[best])))
        value += float(gains[best])
        if cost is not None:
            left -= float(cost[best])
        newly = reach.indices[reach.indptr[best] : reach.indptr[best + 1]]
        newly = newly[weight[newly] > 0]
        weight[newly] = 0.0
        # Only candidates sharing a newly covered point change; recompute theirs exactly.
        affected = np.unique(reach_csc[:, newly].indices)
        gains[affected] = reach[affected] @ weight
    if not budgeted:
        bound = min(bound, value + _top_sum(gains, k))
    return chosen, float(bound)


def budgeted_choice(
    reach: sparse.spmatrix,
    weight: np.ndarray,
    asset_ids: np.ndarray,
    costs: np.ndarray,
    budget: float,
    k: int,
) -> list[tuple[Any, float]]:
    """Khuller, Moss and Naor (1999): the ratio greedy or the best single affordable site, the better.

    At most ``k`` sites, their costs adding up to at most ``budget``. The better of the two
    covers at least (1 - 1/e) / 2 of the best possible within the budget (without a limit on
    the number of sites).
    """
    chosen, _ = greedy_choice(reach, weight, asset_ids, k, costs=costs, budget=budget)
    singles = _marginals(sparse.csr_matrix(reach, dtype=np.float64), np.asarray(weight, dtype=float))
    affordable = np.asarray(costs, dtype=float) <= budget * (1 + _REL)
    if k >= 1 and affordable.any():
        best = int(np.argmax(np.where(affordable, singles, -1.0)))
        if singles[best] > sum(g for _, g in chosen):
            return [(asset_ids[best], float(singles[best]))]
    return chosen


# The LP bound and the exact choice -------------------------------------------------------------
def _model(
    reach: sparse.csc_matrix, weight: np.ndarray, k: int, costs: np.ndarray | None, budget: float | None
) -> tuple[np.ndarray, list[optimize.LinearConstraint], int]:
    """Objective and constraints over ``[x (candidates), y (groups)]``, minimising ``-w . y``."""
    m, g = reach.shape
    c = np.concatenate([np.zeros(m), -weight])
    # y_i - sum_j a_ji x_j <= 0, one row per group.
    cover = sparse.hstack([-reach.T.tocsr(), sparse.identity(g, format="csr")], format="csr")
    rows = [optimize.LinearConstraint(cover, -np.inf, 0.0)]
    count = sparse.csr_matrix(np.concatenate([np.ones(m), np.zeros(g)]))
    rows.append(optimize.LinearConstraint(count, -np.inf, float(k)))
    if budget is not None and costs is not None:
        spend = sparse.csr_matrix(np.concatenate([np.asarray(costs, dtype=float), np.zeros(g)]))
        rows.append(optimize.LinearConstraint(spend, -np.inf, float(budget)))
    return c, rows, m


def _shrink(
    reach: sparse.spmatrix, weight: np.ndarray, costs: np.ndarray | None
) -> tuple[sparse.csc_matrix, np.ndarray, np.ndarray, np.ndarray | None]:
    """The aggregated instance over the candidates that reach something; their rows in ``reach``."""
    matrix, w = aggregate(reach, weight)
    rows = np.flatnonzero(np.diff(matrix.tocsr().indptr) > 0)
    matrix = sparse.csc_matrix(matrix.tocsr()[rows])
    return matrix, w, rows, None if costs is None else np.asarray(costs, dtype=float)[rows]


def lp_bound(
    reach: sparse.spmatrix,
    weight: np.ndarray,
    k: int,
    *,
    costs: np.ndarray | None = None,
    budget: float | None = None,
    time_limit: float = DEFAULT_TIME_LIMIT,
) -> tuple[float | None, str, int, int]:
    """The LP-relaxation bound on the weight any ``k`` sites (within ``budget``) could cover.

    Returns
    -------
    (float or None, str, int, int)
        The bound (None unless HiGHS proved the LP optimal within ``time_limit`` seconds: an
        interrupted LP's objective is not a valid bound), HiGHS's status (``optimal``,
        ``time_limit`` or its message), and the candidates and demand rows of the LP.

    Examples
    --------
    >>> reach = sparse.csr_matrix(np.array([[1, 1, 0], [0, 1, 1]]))
    >>> round(lp_bound(reach, np.array([1.0, 1.0, 1.0]), 1)[0], 3)
    2.0
    """
    matrix, w, _, cost = _shrink(reach, weight, costs)
    if matrix.shape[1] == 0 or k <= 0:
        return 0.0, "optimal", matrix.shape[0], matrix.shape[1]
    c, constraints, _ = _model(matrix, w, k, cost, budget)
    a = sparse.vstack([con.A for con in constraints], format="csr")
    ub = np.concatenate([np.atleast_1d(con.ub) for con in constraints])
    result = optimize.linprog(
        c, A_ub=a, b_ub=ub, bounds=(0.0, 1.0), method="highs",
        options={"time_limit": float(time_limit), "presolve": True},
    )  # fmt: skip
    if result.status == 0:
        # HiGHS's optimum is within its tolerances; widen by them so the bound stays a bound.
        bound = -float(result.fun)
        return bound * (1 + 1e-7) + 1e-7, "optimal", matrix.shape[0], matrix.shape[1]
    status = "time_limit" if result.status == 1 else str(result.message)
    return None, status, matrix.shape[0], matrix.shape[1]


@dataclass
class Exact:
    """What :func:`exact_choice` found: the rows chosen, HiGHS's status, its dual bound and MIP gap."""

    rows: np.ndarray
    status: str
    bound: float | None
    mip_gap: float | None


def exact_choice(
    reach: sparse.spmatrix,
    weight: np.ndarray,
    k: int,
    *,
    costs: np.ndarray | None = None,
    budget: float | None = None,
    time_limit: float = DEFAULT_TIME_LIMIT,
) -> Exact:
    """The best ``k`` sites (within ``budget``): the MILP of :func:`lp_bound` with integral ``x``.

    ``rows`` are rows of ``reach`` (empty when HiGHS found no solution in time). ``status`` is
    ``optimal`` or ``time_limit`` (then ``mip_gap`` says how far from proven the answer is).
    """
    matrix, w, rows, cost = _shrink(reach, weight, costs)
    if matrix.shape[1] == 0 or k <= 0:
        return Exact(np.empty(0, np.intp), "optimal", 0.0, 0.0)
    c, constraints, m = _model(matrix, w, k, cost, budget)
    integrality = np.concatenate([np.ones(m), np.zeros(matrix.shape[1])])
    result = optimize.milp(
        c, constraints=constraints, integrality=integrality, bounds=optimize.Bounds(0.0, 1.0),
        options={"time_limit": float(time_limit), "mip_rel_gap": 0.0, "presolve": True},
    )  # fmt: skip
    dual = getattr(result, "mip_dual_bound", None)
    bound = None if dual is None or not np.isfinite(dual) else -float(dual) * (1 + 1e-7) + 1e-7
    gap = getattr(result, "mip_gap", None)
    if result.x is None:
        return Exact(
            np.empty(0, np.intp), "time_limit" if result.status == 1 else str(result.message), bound, None
        )
    picked = rows[np.flatnonzero(result.x[:m] > 0.5)]
    status = "optimal" if result.status == 0 else "time_limit" if result.status == 1 else str(result.message)
    return Exact(picked, status, bound, None if gap is None or not np.isfinite(gap) else float(gap))


def _ordered(
    reach: sparse.csr_matrix, weight: np.ndarray, asset_ids: np.ndarray, rows: np.ndarray
) -> list[tuple[Any, float]]:
    """The rows chosen ranked greedily among themselves: what each adds given the ones before it."""
    sub = reach[rows]
    order, _ = greedy_choice(sub, weight, np.arange(len(rows)), len(rows))
    return [(asset_ids[rows[i]], g) for i, g in order]


# Everything together ---------------------------------------------------------------------------
def choose(
    reach: sparse.spmatrix,
    weight: np.ndarray,
    asset_ids: np.ndarray,
    k: int,
    *,
    method: Method = "greedy",
    costs: np.ndarray | None = None,
    budget: float | None = None,
    time_limit: float = DEFAULT_TIME_LIMIT,
) -> tuple[list[tuple[Any, float]], Certificate]:
    """The sites to open first and their certificate.

    Parameters
    ----------
    reach : scipy.sparse matrix, shape (candidates, demand)
        1 where a candidate reaches a demand point (the engine's ``_reach_matrix``).
    weight : numpy.ndarray, shape (demand,)
        Households of each demand point (0 for those already covered).
    asset_ids : numpy.ndarray, shape (candidates,)
        The id of each row, ascending (ties go to the smaller id).
    k : int
        At most this many sites.
    method : {"greedy", "exact"}, default "greedy"
        ``exact``: the MILP (:func:`exact_choice`), for ``k <= 20`` and <= 5,000 candidates.
    costs : numpy.ndarray, shape (candidates,), optional
        The cost of each site; with ``budget``, Khuller, Moss and Naor for the greedy.
    budget : float, optional
        The most the chosen sites may cost together.
    time_limit : float, default 5
        Seconds HiGHS may spend on the LP bound (and again on the exact MILP).

    Returns
    -------
    (list of (asset id, gain), Certificate)
        The sites in the order chosen with what each adds, and the certificate.

    Performance: ``bench/bench_priorities.py`` (London, k = 50: the LP dominates).

    Examples
    --------
    >>> reach = sparse.csr_matrix(np.array([[1, 1, 0, 0], [0, 1, 1, 0], [0, 0, 1, 1]]))
    >>> chosen, cert = choose(reach, np.ones(4), np.array([10, 20, 30]), 2)
    >>> [int(a) for a, _ in chosen], cert.value, round(cert.bound, 3), round(cert.gap, 3)
    ([10, 30], 4.0, 4.0, 0.0)
    """
    start = time.perf_counter()
    reach = sparse.csr_matrix(reach, dtype=np.float64)
    weight = np.asarray(weight, dtype=float)
    if budget is not None and costs is None:
        raise ValueError("budget: needs the cost of each candidate")
    cost = None if costs is None else np.asarray(costs, dtype=float)
    chosen, greedy_bound, exact = _pick(reach, weight, asset_ids, k, method, cost, budget, time_limit)
    bound, lp_status, n_cands, n_rows = lp_bound(
        reach, weight, k, costs=cost, budget=budget, time_limit=time_limit
    )
    value = float(sum(g for _, g in chosen))
    best, source = _best_bound(
        [(bound, "lp"), (greedy_bound, "greedy"), (None if exact is None else exact.bound, "milp")]
    )
    spent = None
    if cost is not None and budget is not None:
        row_of = {a: i for i, a in enumerate(asset_ids)}
        spent = float(sum(cost[row_of[a]] for a, _ in chosen))
    return chosen, Certificate(
        method=method,
        k=k,
        value=value,
        bound=best,
        gap=None if best is None else (max(best - value, 0.0) / best if best > 0 else 0.0),
        bound_source=source,
        lp_status=lp_status,
        seconds=round(time.perf_counter() - start, 4),
        budget=budget,
        spent=spent,
        exact_status=None if exact is None else exact.status,
        mip_gap=None if exact is None else exact.mip_gap,
        candidates=n_cands,
        demand_rows=n_rows,
    )


def _pick(
    reach: sparse.csr_matrix,
    weight: np.ndarray,
    asset_ids: np.ndarray,
    k: int,
    method: Method,
    cost: np.ndarray | None,
    budget: float | None,
    time_limit: float,
) -> tuple[list[tuple[Any, float]], float, Exact | None]:
    """The choice of :func:`choose`, the greedy's own bound (``inf`` with a budget) and the MILP's answer."""
    exact: Exact | None = None
    if method == "exact":
        active = int((np.diff(reach.indptr) > 0).sum())
        if k > EXACT_MAX_K or active > EXACT_MAX_CANDIDATES:
            raise ValueError(
                f"priorities_method: exact is for k <= {EXACT_MAX_K} and at most "
                f"{EXACT_MAX_CANDIDATES:,} candidates reaching demand (k {k}, {active:,} candidates)"
            )
        exact = exact_choice(reach, weight, k, costs=cost, budget=budget, time_limit=time_limit)
    if cost is not None and budget is not None:
        chosen, greedy_bound = budgeted_choice(reach, weight, asset_ids, cost, budget, k), np.inf
    else:
        chosen, greedy_bound = greedy_choice(reach, weight, asset_ids, k)
    if exact is not None and len(exact.rows):
        picked = _ordered(reach, weight, asset_ids, exact.rows)
        if sum(g for _, g in picked) >= sum(g for _, g in chosen) - 1e-9:
            chosen = picked
    return chosen, greedy_bound, exact


def _best_bound(bounds: list[tuple[float | None, str]]) -> tuple[float | None, str | None]:
    """The smallest finite bound and where it comes from."""
    valid = [(b, s) for b, s in bounds if b is not None and np.isfinite(b)]
    if not valid:
        return None, None
    b, s = min(valid, key=lambda item: item[0])
    return float(b), s


__all__ = [
    "EXACT_MAX_CANDIDATES",
    "EXACT_MAX_K",
    "Certificate",
    "aggregate",
    "budgeted_choice",
    "choose",
    "exact_choice",
    "greedy_choice",
    "lp_bound",
]
