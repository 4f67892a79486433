"""The API describes itself: every body and JSON response is typed, and the document is reviewed.

``tests/api/openapi.json`` is the committed OpenAPI document. A change to the API changes it,
so the change shows in review; after checking the difference, write the new one with
``UPDATE_OPENAPI=1 .venv/bin/pytest tests/api/test_openapi.py``.
"""

import json
import os
from pathlib import Path

from fastapi.testclient import TestClient

SNAPSHOT = Path(__file__).with_name("openapi.json")


def _document(client: TestClient) -> str:
    return json.dumps(client.get("/openapi.json").json(), indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def test_the_openapi_document_is_the_committed_one(client):
    document = _document(client)
    if os.environ.get("UPDATE_OPENAPI"):
        SNAPSHOT.write_text(document)
    assert document == SNAPSHOT.read_text(), (
        "the API changed: review the difference, then run UPDATE_OPENAPI=1 .venv/bin/pytest tests/api/test_openapi.py"
    )


def test_every_body_is_a_model_with_described_fields(client):
    spec = client.get("/openapi.json").json()
    schemas = spec["components"]["schemas"]
    bodies = []
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            content = operation.get("requestBody", {}).get("content", {})
            if "application/json" not in content:
                continue
            schema = content["application/json"]["schema"]
            # An optional body (null clears, as a Pipeline location does): the model is the other choice.
            choices = [s for s in schema.get("anyOf", []) if s.get("type") != "null"]
            if len(choices) == 1:
                schema = choices[0]
            assert "$ref" in schema, f"{method.upper()} {path}: the JSON body is not a model: {schema}"
            model = schemas[schema["$ref"].rsplit("/", 1)[-1]]
            assert model.get("properties"), f"{method.upper()} {path}: the body model has no fields"
            undescribed = [
                name for name, field in model["properties"].items() if not field.get("description")
            ]
            where = f"{method.upper()} {path}"
            assert not undescribed, f"{where}: fields without a description: {undescribed}"
            bodies.append(where)
    assert {
        "POST /coverage/reports",
        "PATCH /assets/{asset_id}",
        "POST /wayleaves/{wayleave_id}/transitions",
    } <= set(bodies)


def test_every_json_response_has_a_model(client):
    spec = client.get("/openapi.json").json()
    untyped = []
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            for status, answer in operation.get("responses", {}).items():
                schema = answer.get("content", {}).get("application/json", {}).get("schema")
                if status.startswith("2") and schema is not None and not schema:
                    untyped.append(f"{method.upper()} {path}")
    assert not untyped, f"JSON routes without a response model: {sorted(set(untyped))}"


def test_every_error_answer_is_a_problem_document(client):
    spec = client.get("/openapi.json").json()
    missing = []
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            answers = operation["responses"]
            assert "default" in answers, f"{method.upper()} {path}: no default (problem) answer"
            for status, answer in answers.items():
                if status == "default" or status[0] in "45":
                    schema = answer.get("content", {}).get("application/problem+json", {}).get("schema")
                    if schema != {"$ref": "#/components/schemas/Problem"}:
                        missing.append(f"{method.upper()} {path} {status}")
    assert not missing, f"error answers not documented as application/problem+json: {missing}"
    assert "HTTPValidationError" not in spec["components"]["schemas"]  # FastAPI's own 422, never answered


def test_every_field_of_every_schema_is_described(client):
    schemas = client.get("/openapi.json").json()["components"]["schemas"]
    undescribed = [
        f"{name}.{field}"
        for name, schema in schemas.items()
        for field, spec in schema.get("properties", {}).items()
        if not spec.get("description")
    ]
    assert not undescribed, f"fields without a description in /openapi.json: {undescribed}"
