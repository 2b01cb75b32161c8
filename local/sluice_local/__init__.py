"""Sluice's embedded local cloud: a LocalStack host-mode extension that needs no Docker.

Registered through LocalStack's plugin entry points (see ``plugins.py`` and ``pyproject.toml``).
"""
