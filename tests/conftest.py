"""pytest only (trial ignores this file): run the suite in a temporary
directory, as trial runs it in ``_trial_temp``, so that ``TestCase.mktemp()``
and anything else written relative to the working directory stays out of
the checkout."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest


@pytest.fixture(autouse=True, scope="session")
def _work_in_a_temporary_directory(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[None]:
    previous = os.getcwd()
    os.chdir(tmp_path_factory.mktemp("trial_temp"))
    try:
        yield
    finally:
        os.chdir(previous)
