"""The prioritisation's certificate through the API: the bound and gap in the JSON, the CSV and the page."""

from __future__ import annotations

import csv
import io
import re

import pytest

CAMDEN = {"area": {"boroughs": ["E09000007"]}, "k": 5}


def _post(client, auth, body):
    answer = client.post("/coverage/reports", json=body, headers=auth("operator"))
    assert answer.status_code == 201, answer.text
    report = answer.json()
    assert report["state"] == "done", report["message"]
    return report


def _csv(client, auth, report):
    text = client.get(f"/coverage/reports/{report['id']}/priorities.csv", headers=auth("operator")).text
    return list(csv.DictReader(io.StringIO(text)))


def _html(client, auth, report):
    return client.get(f"/coverage/reports/{report['id']}/report.html", headers=auth("operator")).text


@pytest.fixture(scope="module")
def greedy(client, auth):
    return _post(client, auth, CAMDEN)


def test_the_report_proves_the_greedy_gap(client, auth, greedy):
    cert = greedy["summary"]["priorities"]
    gains = _csv(client, auth, greedy)
    assert cert["method"] == "greedy" and cert["k"] == 5 and cert["lp_status"] == "optimal"
    assert cert["value"] == pytest.approx(sum(float(r["gain"]) for r in gains))
    assert cert["bound"] >= cert["value"] > 0 and cert["bound_source"] in ("lp", "greedy")
    assert cert["gap"] == pytest.approx((cert["bound"] - cert["value"]) / cert["bound"])
    assert 0 <= cert["gap"] <= 1 / 2.718281828  # never worse than greedy's 1 - 1/e guarantee
    assert cert["candidates"] > 0 and cert["demand_rows"] > 0 and cert["budget"] is None


def test_the_csv_carries_the_bound_and_gap_on_every_row(client, auth, greedy):
    cert = greedy["summary"]["priorities"]
    rows = _csv(client, auth, greedy)
    assert rows and list(rows[0])[-6:] == [
        "cost",
        "method",
        "budget",
        "spent",
        "bound_households",
        "proven_gap",
    ]
    for row in rows:
        assert row["method"] == "greedy" and row["cost"] == "" and row["budget"] == ""
        assert float(row["bound_households"]) == pytest.approx(cert["bound"])
        assert float(row["proven_gap"]) == pytest.approx(cert["gap"])


def test_the_page_says_how_close_to_the_best_possible(client, auth, greedy):
    cert = greedy["summary"]["priorities"]
    html = _html(client, auth, greedy)
    paragraph = re.search(r'<p class="certificate">(.*?)</p>', html, re.S).group(1)
    assert "Chosen greedily" in paragraph
    assert f"could add more than {cert['bound']:,.0f} households" in paragraph
    assert f"these add {cert['value']:,.0f}" in paragraph
    gap = cert["gap"]
    words = (
        "the best possible"
        if gap <= 5e-5
        else f"within {100 * gap:.{1 if gap >= 0.001 else 2}f}% of the best"
    )
    assert words in paragraph


def test_exact_matches_or_beats_the_greedy_and_proves_it(client, auth, greedy):
    exact = _post(client, auth, {**CAMDEN, "priorities_method": "exact"})
    cert = exact["summary"]["priorities"]
    assert exact["parameters"]["priorities_method"] == "exact"
    assert cert["method"] == "exact" and cert["exact_status"] == "optimal"
    assert cert["value"] >= greedy["summary"]["priorities"]["value"] - 1e-6
    assert cert["gap"] == pytest.approx(0.0, abs=1e-5)
    assert "Chosen exactly" in _html(client, auth, exact)
    assert {r["method"] for r in _csv(client, auth, exact)} == {"exact"}


def test_a_budget_is_kept_and_the_costs_shown(client, auth):
    body = {**CAMDEN, "k": 20, "budget": 4.5, "costs": {"by_kind": {"street_furniture": 1.5}}}
    report = _post(client, auth, body)
    cert = report["summary"]["priorities"]
    assert report["parameters"]["budget"] == 4.5
    assert report["parameters"]["costs"]["by_kind"]["street_furniture"] == 1.5
    rows = _csv(client, auth, report)
    costs = [float(r["cost"]) for r in rows]
    assert rows and cert["spent"] == pytest.approx(sum(costs)) and sum(costs) <= 4.5
    assert all(c >= 1.5 for c in costs)  # the cheapest kind costs 1.5, no wayleave costs less than 0
    assert cert["bound"] >= cert["value"] and float(rows[0]["budget"]) == 4.5
    html = _html(client, auth, report)
    assert "Khuller, Moss and Naor" in html and "Budget 4.50" in html and '<th scope="col"' in html
    table = html.split('<table class="priorities">')[1].split("</table>")[0]
    assert ">Cost<" in table


@pytest.mark.parametrize(
    ("body", "where", "words"),
    [
        ({"priorities_method": "exact", "k": 21}, "body", "priorities_method: exact is for k <= 20"),
        ({"costs": {"by_kind": {"duct": 1.0}}}, "body", "costs: given without a budget"),
        ({"budget": 5, "costs": {"by_kind": {"tower": 1.0}}}, "body.costs.by_kind", "'tower' not one of"),
        (
            {"budget": 5, "costs": {"by_kind": {"duct": -2}}},
            "body.costs.by_kind.duct",
            "greater than or equal",
        ),
        ({"budget": -1}, "body.budget", "greater than 0"),
        ({"priorities_method": "best"}, "body.priorities_method", "'greedy' or 'exact'"),
    ],
)
def test_bad_methods_budgets_and_costs_are_problems_naming_the_field(client, auth, body, where, words):
    answer = client.post("/coverage/reports", json={**CAMDEN, **body}, headers=auth("operator"))
    assert answer.status_code == 422 and answer.headers["content-type"] == "application/problem+json"
    errors = answer.json()["errors"]
    assert any(e["where"].startswith(where) and words in e["message"] for e in errors), errors
