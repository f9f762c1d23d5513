"""The ``cloud`` fixture (one for the whole session: starting a cloud and a broker is most of these tests' time;
each test enrols devices of its own): see ``cloud_rig``."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.provisioning.cloud_rig import Cloud, running_cloud


@pytest.fixture(scope="session")
def cloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cloud]:
    with running_cloud(tmp_path_factory.mktemp("cloud")) as c:
        yield c
