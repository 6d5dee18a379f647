import pytest


@pytest.fixture(autouse=True)
def _own_cache(own_cache):
    """Every accounts test signs people in or out: none may see another's attempts."""
