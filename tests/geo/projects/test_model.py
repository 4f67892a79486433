"""The personal-data rule: one function removes owners and authors for everyone but admins."""

from geo import projects as pipeline
from geo.access.principals import Principal

ADMIN = Principal(role="admin", label="test")
OPERATOR = Principal(role="operator", label="op", key_id=None)


def test_redact_is_the_one_rule():
    row = {
        "title": "t",
        "owner": "o",
        "owner_email": "e",
        "created_by": "c",
        "modified_by": "m",
        "changed_by": "k",
    }
    assert pipeline.redact(row, ADMIN) == row
    for who in (OPERATOR, Principal("borough", "E09000007"), Principal(None)):
        assert pipeline.redact(row, who) == {"title": "t"}
