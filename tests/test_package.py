"""The public names that notebooks and tests rely on."""

from __future__ import annotations

import wsteach


def test_public_names():
    """wsteach exports exactly the documented API."""
    assert set(wsteach.__all__) == {
        "Client",
        "Limits",
        "PortInUseError",
        "Room",
        "Running",
        "Script",
        "ScriptExited",
        "Trace",
        "connect",
        "crowd",
        "echo",
        "run_script",
        "running_servers",
        "start",
        "stop_all",
    }
    for name in wsteach.__all__:
        assert getattr(wsteach, name) is not None


def test_modules_declare_all():
    """Every module lists its public names in __all__."""
    import importlib
    import pkgutil

    for module in pkgutil.walk_packages(wsteach.__path__, "wsteach."):
        if module.name.endswith("__main__"):
            continue
        imported = importlib.import_module(module.name)
        assert hasattr(imported, "__all__"), module.name
        for name in imported.__all__:
            assert hasattr(imported, name), f"{module.name}.{name}"
