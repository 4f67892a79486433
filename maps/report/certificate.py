"""How good the chosen candidates are, in words: the bound on any choice and the proven gap."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from maps.report.format import count, e, num


def gap_text(gap: float) -> str:
    """A proven gap as a person reads it: "within 0.4% of the best possible", "the best possible"."""
    if gap <= 5e-5:
        return "the best possible"
    digits = 1 if gap >= 0.001 else 2
    return f"within {100 * gap:.{digits}f}% of the best possible"


def certificate_text(cert: Mapping[str, Any] | None, k: int) -> str:
    """One paragraph: the method, the budget and what it spent, the bound and the proven gap."""
    if not cert:
        return ""
    budget = cert.get("budget")
    if cert.get("method") == "exact":
        how = "Chosen exactly (a mixed-integer program, solved by HiGHS)"
        if cert.get("exact_status") == "time_limit":
            how += " until its time limit, so not proven best"
            if cert.get("mip_gap") is not None:
                how += f" (its own gap then {100 * float(cert['mip_gap']):.2f}%)"
    elif budget is not None:
        how = (
            "Chosen within the budget by the cost-aware greedy of Khuller, Moss and Naor (the most "
            "households per unit of cost, or the best single site if that adds more)"
        )
    else:
        how = "Chosen greedily (each the one adding the most households)"
    parts = [how + "."]
    if budget is not None:
        parts.append(f"Budget {num(budget, 2)}; the chosen cost {num(cert.get('spent'), 2)} together.")
    bound, gap = cert.get("bound"), cert.get("gap")
    limit = f"{count(k, 'candidate')}" + (" within the budget" if budget is not None else "")
    if bound is None or gap is None:
        parts.append(
            f"No bound on the best possible was proven in the time allowed (HiGHS: {e(cert.get('lp_status'))})."
        )
    else:
        source = {"lp": "the LP relaxation", "greedy": "the greedy's own steps", "milp": "the exact solver"}
        where = source.get(str(cert.get("bound_source")), "a bound")
        parts.append(
            f"No {limit} could add more than {num(bound)} households ({where}): "
            f"these add {num(cert.get('value'))}, <strong>{gap_text(float(gap))}</strong>."
        )
    return f'<p class="certificate">{" ".join(parts)}</p>'


__all__ = ["certificate_text", "gap_text"]
