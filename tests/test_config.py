"""Settings from the environment, with safe defaults for the embedded mode."""
import pytest

from config import ConfigurationError, build_config


def test_embedded_defaults(tmp_path):
    config = build_config(str(tmp_path), env={})
    assert config["SQLALCHEMY_DATABASE_URI"] == f"sqlite:///{tmp_path / 'houtai.db'}"
    assert config["REDIS_URL"] is None
    assert config["HOUTAI_TIMEZONE"] == "Asia/Shanghai"
    assert config["MAX_UPLOAD_MB"] == 5


def test_secret_key_is_generated_once_and_kept(tmp_path):
    first = build_config(str(tmp_path), env={})["SECRET_KEY"]
    second = build_config(str(tmp_path), env={})["SECRET_KEY"]
    assert first == second and len(first) >= 32
    assert (tmp_path / "secret_key").read_text() == first


def test_production_refuses_to_start_without_a_secret_key(tmp_path):
    with pytest.raises(ConfigurationError):
        build_config(str(tmp_path), env={"HOUTAI_ENV": "production"})
    config = build_config(str(tmp_path), env={"HOUTAI_ENV": "production", "SECRET_KEY": "s" * 40})
    assert config["SESSION_COOKIE_SECURE"] is True


def test_urls_from_the_environment(tmp_path):
    config = build_config(str(tmp_path), env={"DATABASE_URL": "postgresql://u@h/db",
                                              "REDIS_URL": "redis://h:6379/2",
                                              "MAX_UPLOAD_MB": "2"})
    assert config["SQLALCHEMY_DATABASE_URI"] == "postgresql+psycopg://u@h/db"
    assert config["RATELIMIT_STORAGE_URI"] == "redis://h:6379/2"
    assert config["MAX_CONTENT_LENGTH"] > 2 * 1024 * 1024


def test_app_refuses_to_start_in_production_without_secret(tmp_path, monkeypatch):
    from app import create_app

    monkeypatch.setenv("HOUTAI_ENV", "production")
    monkeypatch.delenv("SECRET_KEY", raising=False)
    with pytest.raises(ConfigurationError):
        create_app(instance_path=str(tmp_path))
