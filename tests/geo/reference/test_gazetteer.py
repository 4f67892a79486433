"""The gazetteer: every listed form finds its authority; variants normalise; the rest is unplaced with a reason."""

import pytest
import yaml

from geo.reference.boroughs import GSS_CODES
from geo.reference.gazetteer import GAZETTEER_FILE, LONDON_WIDE, gazetteer, normalise, place, read_gazetteer

RAW = yaml.safe_load(GAZETTEER_FILE.read_text(encoding="utf-8"))
FORMS = [
    (code, form) for code, entry in RAW["authorities"].items() for form in [entry["name"], *entry["forms"]]
]


def test_the_gazetteer_covers_the_33_authorities():
    assert set(RAW["authorities"]) == set(GSS_CODES)
    assert set(gazetteer().forms) == {*GSS_CODES, LONDON_WIDE}


@pytest.mark.parametrize(("code", "form"), FORMS, ids=[f for _, f in FORMS])
def test_every_form_resolves_to_its_code(code, form):
    placed = place(form)
    assert (placed.borough_code, placed.london_wide, placed.reason) == (code, False, None)


@pytest.mark.parametrize("form", RAW["london_wide"])
def test_every_london_wide_form_is_london_wide(form):
    placed = place(form)
    assert placed.london_wide and placed.borough_code is None and placed.reason is None


@pytest.mark.parametrize(
    ("name", "code"),
    [
        ("london borough of camden", "E09000007"),
        ("  LONDON BOROUGH OF CAMDEN  ", "E09000007"),
        ("The London Borough of Camden", "E09000007"),
        ("Camden London Borough Council", "E09000007"),
        ("London Borough of Camden Council", "E09000007"),
        ("Camden Borough Council", "E09000007"),
        ("L.B. Camden", None),  # "l b camden": not an abbreviation we strip
        ("The London Borough of Barking & Dagenham Council", "E09000002"),
        ("Barking and Dagenham", "E09000002"),
        ("LB Barking + Dagenham", "E09000002"),
        ("Kensington & Chelsea", "E09000020"),
        ("The Royal Borough of Kensington and Chelsea", "E09000020"),
        ("Royal Borough of Greenwich", "E09000011"),
        ("Hammersmith and Fulham Council", "E09000013"),
        ("Kingston-upon-Thames", "E09000021"),
        ("Richmond-upon-Thames Council", "E09000027"),
        ("City of London", "E09000001"),
        ("Corporation of London", "E09000001"),
        ("City of Westminster", "E09000033"),
        ("Westminster City Council", "E09000033"),
        ("Tower Hamlets", "E09000030"),
        ("Waltham Forest Council", "E09000031"),
    ],
)
def test_normalisation(name, code):
    assert place(name).borough_code == code


def test_normalise_keeps_the_name_and_drops_what_kind_of_body_it_is():
    assert normalise("The London Borough of Barking & Dagenham Council") == "barking and dagenham"
    assert normalise("Westminster City Council") == "westminster"
    assert normalise("City of London Corporation") == "city of london corporation"
    assert normalise("Hammersmith & Fulham") == normalise("hammersmith and fulham")


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("Leeds City Council", "'Leeds City Council' is not a London organisation"),
        ("Surrey County Council", "'Surrey County Council' is not a London organisation"),
        (
            "Royal Borough of Windsor and Maidenhead",
            "'Royal Borough of Windsor and Maidenhead' is not a London organisation",
        ),
        ("Acme", "'Acme' not recognised"),
        ("London", "'London' not recognised"),
        ("London Borough of Nowhere", "'London Borough of Nowhere' not recognised"),
        ("", "no organisation given"),
        (None, "no organisation given"),
    ],
)
def test_unplaced_reasons(name, reason):
    placed = place(name)
    assert placed.borough_code is None and not placed.london_wide and not placed.placed
    assert placed.reason == reason


def test_a_form_claimed_by_two_entries_is_refused(tmp_path):
    raw = yaml.safe_load(GAZETTEER_FILE.read_text(encoding="utf-8"))
    raw["authorities"]["E09000012"]["forms"].append("Camden Council")
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(raw), encoding="utf-8")
    with pytest.raises(ValueError, match="matches E09000007 too"):
        read_gazetteer(path)
