"""Marker for tests that need real converted assets (`make assets`); they skip, saying so, where those are missing."""

import pytest

from benchmarks.assets import assets_dir, is_converted


def requires_asset(*names: str):
    """Skip the test unless every named asset is converted, with a message that says to run `make assets`."""
    missing = [name for name in names if not is_converted(name)]
    return pytest.mark.skipif(
        bool(missing), reason=f"needs the real asset(s) {', '.join(missing)} in {assets_dir()}: run `make assets`"
    )
