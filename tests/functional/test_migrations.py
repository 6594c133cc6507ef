"""The migrations create exactly what the models describe, in one shared database."""

from __future__ import annotations

import pytest
from alembic import command

from rempart.services import Services
from rempart.store.migrate import Schema, alembic_config


@pytest.mark.parametrize("schema", ["data", "audit"])
def test_models_and_migrations_agree(services: Services, schema: Schema) -> None:
    # `services` has run both histories; each must see no change to make, and must not
    # mistake the other history's tables for tables to drop.
    url = services.engine.url.render_as_string(hide_password=False)
    command.check(alembic_config(url, schema=schema))
