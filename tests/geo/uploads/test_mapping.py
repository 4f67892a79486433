import json

import pyarrow as pa
import pytest

from geo.core.row_errors import UploadRejected
from geo.uploads.conversion import extra_json
from geo.uploads.mapping import build_mapping, load_mapping_file


@pytest.mark.parametrize(
    ("column", "field"),
    [
        ("UNITNO", "source_id"),
        ("Unit_No", "source_id"),
        ("Asset_ID", "source_id"),
        ("ASSETID", "source_id"),
        ("COLUMN_NO", "source_id"),
        ("REF", "source_id"),
        ("ID", "source_id"),
        ("HEIGHT", "height_m"),
        ("HGT_M", "height_m"),
        ("col height", "height_m"),
        ("TYPE", "subtype"),
        ("ASSET_TYPE", "subtype"),
        ("UNIT_TYPE", "subtype"),
        ("STATUS", "status"),
        ("OWNER", "owner"),
        ("NAME", "name"),
        ("STREET", "name"),
        ("POWER", "power_available"),
        ("HAS_POWER", "power_available"),
        ("Survey Quality", "survey_quality"),
        ("SURVEY_DATE", "last_surveyed"),
        ("Listed", "listed_building"),
    ],
)
def test_column_names_boroughs_use(column, field):
    assert build_mapping([column, "Ward"], "street_furniture").columns == {column: field}


def test_most_specific_column_wins_and_others_go_to_extra():
    m = build_mapping(["ID", "UNITNO", "NAME", "DESCRIPTION", "Ward"], "street_furniture")
    assert m.columns == {"UNITNO": "source_id", "NAME": "name"}
    assert m.extra == ["ID", "DESCRIPTION", "Ward"]
    assert m.report()["columns"]["Ward"] == "extra"


def test_duct_fields_only_for_ducts():
    assert build_mapping(["DIA_MM"], "duct").columns == {"DIA_MM": "duct_diameter_mm"}
    assert build_mapping(["DIA_MM"], "street_furniture").extra == ["DIA_MM"]


def apply(columns, kind="street_furniture", spec=None):
    table = pa.table(columns)
    return build_mapping(table.column_names, kind, spec).apply(table)


def test_values_are_converted():
    mapped = apply(
        {
            "UNITNO": ["1", "2", "3", "4"],
            "TYPE": ["Lamp Column", "street light", "SL", "Traffic Signal"],
            "STATUS": ["In Service", "Live", "Removed", "Planned"],
            "POWER": ["Y", "No", "true", "0"],
            "SURVEY_QUALITY": ["A", "QL-B", "qlc", "QL D"],
            "SURVEY_DATE": ["31/12/2020", "2021-03-04", "05-06-2019 10:00", "not a date"],
            "HEIGHT": ["8", "10 m", "6.5", "tall"],
        }
    ).values
    assert mapped["subtype"].tolist() == ["lamp_post", "lamp_post", "lamp_post", "traffic_signal"]
    assert mapped["status"].tolist() == ["in_service", "in_service", "removed", "proposed"]
    assert mapped["power_available"].tolist() == [True, False, True, False]
    assert mapped["survey_quality"].tolist() == ["QL-A", "QL-B", "QL-C", "QL-D"]
    dates = mapped["last_surveyed"].dt.strftime("%Y-%m-%d").tolist()
    assert dates[:3] == ["2020-12-31", "2021-03-04", "2019-06-05"] and mapped["last_surveyed"].isna()[3]
    assert mapped["height_m"].tolist()[:3] == [8.0, 10.0, 6.5]


def test_building_and_status_defaults():
    mapped = apply(
        {"REF": ["a", "b"], "TYPE": ["Library", "Primary School"], "STATUS": [None, "Active"]},
        "public_building",
    ).values
    assert mapped["subtype"].tolist() == ["library", "school"]
    assert mapped["status"].tolist() == ["unknown", "in_service"]


def test_float_identifiers_lose_their_decimal_point():
    assert apply({"UNITNO": [1234.0, 5.0]}).values["source_id"].tolist() == ["1234", "5"]


def test_no_subtype_column_defaults_to_other_with_a_note():
    m = build_mapping(["UNITNO"], "street_furniture")
    assert m.defaults["subtype"] == "other"
    assert "no column gives the subtype" in m.notes[0]


@pytest.mark.parametrize("suffix", [".yaml", ".json"])
def test_mapping_file_overrides(tmp_path, suffix):
    spec = {
        "columns": {"LAMP_REF": "source_id", "ID": None, "kind_of": "subtype"},
        "values": {"subtype": {"Lamp Col": "lamp_post"}, "status": {"L": "in_service"}},
        "defaults": {"owner": "Camden Council"},
    }
    path = tmp_path / f"mapping{suffix}"
    path.write_text(json.dumps(spec))
    table = pa.table(
        {"LAMP_REF": ["x"], "ID": ["9"], "KIND_OF": ["Lamp Col"], "STATUS": ["L"], "Ward": ["w"]}
    )
    m = build_mapping(table.column_names, "street_furniture", path)
    assert m.report()["columns"] == {
        "LAMP_REF": "source_id",
        "ID": "ignored",
        "KIND_OF": "subtype",
        "STATUS": "status",
        "Ward": "extra",
    }
    values = m.apply(table).values
    assert values.loc[0, ["source_id", "subtype", "status", "owner"]].tolist() == [
        "x",
        "lamp_post",
        "in_service",
        "Camden Council",
    ]


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"columns": {"NOPE": "source_id"}}, "the mapping names column 'NOPE', which the file does not have"),
        ({"columns": {"UNITNO": "colour"}}, "'colour', which is not a field of the model"),
        ({"columns": {"UNITNO": "duct_diameter_mm"}}, "does not apply to kind 'street_furniture'"),
        (
            {"defaults": {"subtype": "spaceship"}},
            "default subtype='spaceship' is not in the subtype vocabulary",
        ),
        ({"rename": {}}, "unknown mapping section"),
        ([1, 2], "must be an object"),
    ],
)
def test_bad_mappings_are_rejected(spec, message):
    with pytest.raises(UploadRejected, match=message):
        build_mapping(["UNITNO"], "street_furniture", spec)


def test_unreadable_mapping_file(tmp_path):
    path = tmp_path / "m.yaml"
    path.write_text("columns: [unclosed")
    with pytest.raises(UploadRejected, match="m.yaml: the mapping file cannot be read"):
        load_mapping_file(path)


def test_extra_json_keeps_values_as_sent():
    table = pa.table(
        {
            "s": ["a", 'q"u\\o\nte', None],
            "f": [1.5, float("nan"), 3.0],
            "i": [1, None, 3],
            "b": [True, False, None],
        }
    )
    rows = [json.loads(x) for x in extra_json(table, ["s", "f", "i", "b"]).to_pylist()]
    assert rows == [
        {"s": "a", "f": 1.5, "i": 1, "b": True},
        {"s": 'q"u\\o\nte', "f": None, "i": None, "b": False},
        {"s": None, "f": 3, "i": 3, "b": None},
    ]
    assert extra_json(table, []).to_pylist() == ["{}"] * 3
