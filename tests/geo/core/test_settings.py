import re

import pytest
from pydantic import ValidationError

from geo.core.settings import PROJECT_ROOT, DatabaseSettings, Settings, env_names


def documented_names():
    readme = (PROJECT_ROOT / "README.md").read_text()
    section = readme.split("## Configuration", 1)[1].split("\n## ", 1)[0]
    return set(re.findall(r"^\| `([A-Z_]+)` \|", section, flags=re.M))


def test_every_setting_is_documented_once_and_every_documented_name_exists():
    assert documented_names() == env_names()


def test_settings_are_read_from_the_environment(monkeypatch):
    monkeypatch.setenv("CONNECTIVITY_API_PORT", "8123")
    monkeypatch.setenv("CONNECTIVITY_API_ANONYMOUS_READ", "false")
    monkeypatch.setenv("DATABASE_URL", "postgresql://u@h/db")
    settings = Settings()
    assert settings.api.port == 8123 and settings.api.anonymous_read is False
    assert settings.db.url == "postgresql://u@h/db"


def test_cross_field_rules_are_checked_in_the_settings(monkeypatch):
    monkeypatch.setenv("CONNECTIVITY_DB_POOL_MIN_SIZE", "5")
    monkeypatch.setenv("CONNECTIVITY_DB_POOL_MAX_SIZE", "2")
    with pytest.raises(ValidationError, match="must not exceed"):
        DatabaseSettings()
