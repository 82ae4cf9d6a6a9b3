"""The keys that open every stored credential are not in the settings' repr (which an
exception, a debugger or a log line with %r shows): only ``settings_in_force`` showed
them masked; ``repr(settings)`` printed them whole."""

from __future__ import annotations

from taphouse.secrets import generate_key
from taphouse.settings import Settings


def test_secret_keys_are_not_in_the_settings_repr() -> None:
    key = generate_key()
    settings = Settings.from_env({"TAPHOUSE_SECRET_KEYS": key})
    assert settings.secret_keys == (key,)
    assert key not in repr(settings) and key not in str(settings)
