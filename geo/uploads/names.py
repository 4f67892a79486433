"""The names boroughs use: for columns (``UNITNO``, ``Asset_ID``, ``HGT_M``...) and for the values of
vocabulary fields ("Street Light", "Live"), each matched to the standard asset model ignoring case,
spaces and underscores.
"""

from __future__ import annotations

import re

from geo.reference.model import load_model

_KEY = re.compile(r"[^0-9a-z]+")


def column_key(name: str) -> str:
    """A column name reduced for matching: lower case, letters and digits only (``Asset_ID`` -> ``assetid``)."""
    return _KEY.sub("", str(name).lower())


def value_key(value: str) -> str:
    """A value reduced for matching: lower case, runs of other characters as one space."""
    return _KEY.sub(" ", str(value).lower()).strip()


#: Field -> source column names boroughs use (as :func:`column_key`), most specific first. When several
#: columns of one file match a field, the one earliest in this list wins; the others go to ``extra``.
COLUMN_NAMES: dict[str, tuple[str, ...]] = {
    "source_id": (
        "sourceid",
        "unitno",
        "unitnumber",
        "unitid",
        "unitref",
        "assetid",
        "assetno",
        "assetnumber",
        "assetref",
        "assetreference",
        "assetcode",
        "columnno",
        "columnnumber",
        "colno",
        "columnid",
        "lampno",
        "siteid",
        "siteref",
        "featureid",
        "ductid",
        "ductref",
        "sectionid",
        "routeid",
        "stopcodelbsl",
        "ref",
        "reference",
        "id",
        "fid",
        "objectid",
    ),
    "subtype": (
        "subtype",
        "assettype",
        "unittype",
        "columntype",
        "buildingtype",
        "featuretype",
        "type",
        "assetclass",
        "category",
        "class",
    ),
    "name": (
        "name",
        "sitename",
        "assetname",
        "buildingname",
        "stopname",
        "title",
        "description",
        "desc",
        "locationdescription",
        "location",
        "street",
        "streetname",
        "road",
        "roadname",
        "address",
    ),
    "owner": ("owner", "assetowner", "ownedby", "ownership", "organisation"),
    "status": ("status", "assetstatus", "operationalstatus", "unitstatus", "state"),
    "height_m": (
        "heightm",
        "height",
        "hgtm",
        "hgt",
        "colheight",
        "columnheight",
        "colhgt",
        "mountingheight",
        "buildingheight",
        "heightmetres",
    ),
    "power_available": ("poweravailable", "haspower", "power", "powered", "powersupply", "electricity"),
    "power_source": ("powersource", "supplytype", "supply"),
    "duct_diameter_mm": ("ductdiametermm", "diametermm", "diameter", "diamm", "dia", "ductdiameter", "bore"),
    "duct_spare_capacity_pct": (
        "ductsparecapacitypct",
        "sparecapacity",
        "sparecapacitypct",
        "spare",
        "sparepct",
    ),
    "rooftop_access": ("rooftopaccess", "roofaccess"),
    "listed_building": ("listedbuilding", "listed"),
    "conservation_area": ("conservationarea", "inconservationarea", "conservation"),
    "positional_accuracy_m": ("positionalaccuracym", "positionalaccuracy", "accuracym", "accuracy"),
    "survey_quality": ("surveyquality", "qualitylevel", "pas128", "ql", "quality"),
    "last_surveyed": (
        "lastsurveyed",
        "surveydate",
        "datesurveyed",
        "surveyed",
        "lastinspected",
        "inspectiondate",
        "lastinspection",
    ),
    "provenance": ("provenance", "datasource", "source"),
}

#: Vocabulary synonyms (as :func:`value_key`) beyond each code and its label.
VALUE_NAMES: dict[str, dict[str, str]] = {
    "subtype.street_furniture": {
        **dict.fromkeys(
            [
                "lamp column",
                "lamp col",
                "lamp",
                "lamppost",
                "street light",
                "streetlight",
                "street lighting column",
                "lighting column",
                "light column",
                "column",
                "lc",
                "sl",
                "slc",
            ],
            "lamp_post",
        ),
        **dict.fromkeys(["bus stop", "bus stop pole", "bus flag", "bus stop flag", "bs", "stop"], "bus_stop"),
        **dict.fromkeys(["bus shelter", "shelter", "bsh"], "bus_shelter"),
        **dict.fromkeys(
            ["cctv", "cctv column", "cctv pole", "cctv camera", "camera", "camera column"], "cctv_column"
        ),
        **dict.fromkeys(
            [
                "traffic signal",
                "traffic signals",
                "traffic light",
                "traffic lights",
                "signal",
                "signal pole",
                "ts",
                "signal controller",
                "traffic signal pole",
            ],
            "traffic_signal",
        ),
        **dict.fromkeys(["cabinet", "street cabinet", "comms cabinet", "telecoms cabinet"], "street_cabinet"),
        **dict.fromkeys(
            ["manhole", "access chamber", "chamber", "joint box", "jointbox", "inspection chamber"],
            "access_chamber",
        ),
        **dict.fromkeys(["feeder pillar", "pillar", "fp"], "feeder_pillar"),
        **dict.fromkeys(["sign", "sign post", "signpost", "sign pole"], "sign_post"),
    },
    "subtype.public_building": {
        **dict.fromkeys(["library", "public library"], "library"),
        **dict.fromkeys(
            [
                "school",
                "primary school",
                "secondary school",
                "academy",
                "nursery",
                "nursery school",
                "college",
            ],
            "school",
        ),
        **dict.fromkeys(["town hall", "civic centre", "civic center"], "town_hall"),
        **dict.fromkeys(
            ["housing block", "council housing", "tower block", "block of flats", "flats", "estate"],
            "housing_block",
        ),
        **dict.fromkeys(["leisure centre", "sports centre", "swimming pool", "leisure"], "leisure_centre"),
        **dict.fromkeys(["health centre", "gp surgery", "surgery", "clinic", "gp"], "health_centre"),
        **dict.fromkeys(["office", "council office", "offices"], "office"),
        **dict.fromkeys(
            ["community centre", "community hall", "youth centre", "community center"], "community_centre"
        ),
        **dict.fromkeys(["fire station"], "fire_station"),
        **dict.fromkeys(["police station"], "police_station"),
    },
    "subtype.duct": {
        **dict.fromkeys(["duct", "ducts", "main duct"], "duct"),
        **dict.fromkeys(["sub duct", "subduct", "microduct", "micro duct"], "sub_duct"),
        **dict.fromkeys(["trough", "cable trough"], "trough"),
    },
    "status": {
        **dict.fromkeys(
            [
                "in service",
                "live",
                "active",
                "operational",
                "in use",
                "working",
                "existing",
                "current",
                "in situ",
            ],
            "in_service",
        ),
        **dict.fromkeys(["planned", "proposed", "future"], "proposed"),
        **dict.fromkeys(["removed", "deleted", "gone"], "removed"),
        **dict.fromkeys(["under construction", "being built", "in construction"], "under_construction"),
        **dict.fromkeys(["decommissioned", "disused", "retired", "redundant"], "decommissioned"),
        **dict.fromkeys(
            ["out of service", "out of commission", "faulty", "not working", "inactive"], "out_of_commission"
        ),
        **dict.fromkeys(["unfit", "unsafe", "unfit for service"], "unfit_for_service"),
        **dict.fromkeys(["pending removal", "to be removed"], "pending_removal"),
        **dict.fromkeys(["unknown", "tbc", "n a", "na", "not known"], "unknown"),
    },
    "survey_quality": {
        **{key: f"QL-{q}" for q in "ABCD" for key in (q.lower(), f"ql {q.lower()}", f"ql{q.lower()}")},
    },
    "power_source": {
        **dict.fromkeys(["unmetered", "ums", "unmetered supply"], "unmetered_supply"),
        **dict.fromkeys(["metered", "metered supply"], "metered_supply"),
        **dict.fromkeys(["feeder pillar", "pillar"], "feeder_pillar"),
        **dict.fromkeys(["building", "building supply"], "building_supply"),
        **dict.fromkeys(["none", "no", "no power"], "none"),
    },
}


def vocabulary_name(field_name: str) -> str | None:
    """The vocabulary a model field takes its values from (None for a field of another type)."""
    spec = load_model().fields[field_name]
    return spec.vocabulary if spec.type == "vocabulary" else None


def vocabulary_lookup(field_name: str, kind: str) -> dict[str, str]:
    """``{value_key: code}`` for one vocabulary field: codes, labels and the synonyms boroughs use."""
    model = load_model()
    vocab = vocabulary_name(field_name)
    if vocab is None:
        return {}
    if vocab == "subtypes":
        labels: dict[str, str] = model.subtypes[kind]
        synonyms = VALUE_NAMES.get(f"subtype.{kind}", {})
    elif vocab == "statuses":
        labels = {code: s["label"] for code, s in model.statuses.items()}
        synonyms = VALUE_NAMES["status"]
    else:
        labels = model.vocabularies[vocab]
        synonyms = VALUE_NAMES.get(vocab, {})
    lookup = dict(synonyms)
    for code, label in labels.items():
        lookup[value_key(label)] = code
        lookup[value_key(code)] = code
    return lookup
