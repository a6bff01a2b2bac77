import pytest

from app.config import Config, ConfigError


def test_production_without_secrets_refuses_to_start_and_names_what_is_missing():
    with pytest.raises(ConfigError) as info:
        Config.from_env(env={"HUIYUAN_ENV": "production"})
    message = str(info.value)
    for name in ("SECRET_KEY", "DATABASE_URL", "REDIS_URL"):
        assert name in message


def test_production_with_everything_set_starts():
    config = Config.from_env(
        env={
            "HUIYUAN_ENV": "production",
            "SECRET_KEY": "prod-secret-0123456789-abcdefghijklmnop",
            "DATABASE_URL": "postgresql+psycopg://u@db/huiyuan",
            "REDIS_URL": "redis://cache:6379/0",
        }
    )
    assert config.is_production
    assert config.flask_mapping()["SQLALCHEMY_DATABASE_URI"].startswith("postgresql")


def test_development_defaults_are_sqlite_under_instance_and_no_redis():
    config = Config.from_env(env={})
    mapping = config.flask_mapping()
    assert mapping["SQLALCHEMY_DATABASE_URI"].startswith("sqlite:///")
    assert "instance" in mapping["SQLALCHEMY_DATABASE_URI"]
    assert config.REDIS_URL is None
    assert config.POINTS_PER_YUAN == 1


def test_integer_settings_are_checked():
    with pytest.raises(ConfigError, match="POINTS_PER_YUAN"):
        Config.from_env(env={"POINTS_PER_YUAN": "one"})
    with pytest.raises(ConfigError, match="ENGINE_APPLY_GATHER_MS"):
        Config.from_env(env={"ENGINE_APPLY_GATHER_MS": "5000"})
    assert Config.from_env(env={}).ENGINE_APPLY_GATHER_MS == 250


def test_pem_keys_may_be_given_as_a_file_path(tmp_path):
    pem = "-----BEGIN PUBLIC KEY-----\nABC\n-----END PUBLIC KEY-----\n"
    path = tmp_path / "key.pem"
    path.write_text(pem)
    config = Config.from_env(env={"ALIPAY_PUBLIC_KEY": str(path)})
    assert config.ALIPAY_PUBLIC_KEY == pem
