"""Alembic's environment: migrations run on the connection `serving.store.schema` hands
in (never on a URL read from a file: the store's URL comes from LEADSCORE_DATABASE_URL
or the command line)."""

from alembic import context

import serving.store.tables  # noqa: F401  (the ledger's tables join the metadata)
from features.crm.database import metadata
from serving.store.schema import VERSION_TABLE

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=metadata,
    version_table=VERSION_TABLE,
    render_as_batch=connection.dialect.name == "sqlite",  # SQLite alters by copying
)
with context.begin_transaction():
    context.run_migrations()
