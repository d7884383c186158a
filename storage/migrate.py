"""``python -m storage.migrate``: bring the read model's schema to the newest revision."""
from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config

__all__ = ["upgrade"]


def upgrade(database_url: str | None = None, revision: str = "head") -> None:
    config = Config(str(Path(__file__).with_name("alembic.ini")))
    if database_url:
        config.attributes["database_url"] = database_url
    command.upgrade(config, revision)


if __name__ == "__main__":
    upgrade()
    print("[migrate] read model at head")
