"""pytest configuration: fixtures only.

Shared helpers (parity data, reduced models, stage comparisons) live in tests/helpers.py and
are imported as ``from helpers import ...``; test files never import from conftest.
"""
