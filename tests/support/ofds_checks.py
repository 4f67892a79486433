"""The Open Fibre Data Standard's own validator (libcoveofds), as the OFDS tests call it."""

from __future__ import annotations

from libcoveofds.additionalfields import AdditionalFields
from libcoveofds.jsonschemavalidate import JSONSchemaValidator
from libcoveofds.python_validate import PythonValidate
from libcoveofds.schema import OFDSSchema


def validation_problems(package: dict) -> tuple[list, list, dict]:
    """What libcoveofds finds: schema errors, its additional checks, fields outside the schema."""
    schema = OFDSSchema()
    return (
        [e.json()["message"] for e in JSONSchemaValidator(schema).validate(package)],
        PythonValidate(schema).validate(package),
        AdditionalFields(schema).process(package),
    )
