"""Alembic environment: the URL comes from ``config.attributes["url"]`` (set
by :func:`app.db.migrate`) or, when run through the ``alembic`` CLI, from the
Retouch settings."""
from alembic import context

from app import models  # noqa: F401  (registers the tables)
from app.db import Base, make_engine

config = context.config


def run_migrations_online() -> None:
    url = config.attributes.get("url")
    if url is None:
        from app.config import get_settings

        url = get_settings().sqlalchemy_url
    engine = make_engine(url)
    with engine.connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=Base.metadata,
            render_as_batch=connection.dialect.name == "sqlite",
        )
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


run_migrations_online()
