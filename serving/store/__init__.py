"""The live lead store: the contract's tables, the score ledger, and what writes them.

Events come in (`intake`), the contacts whose features they change are rescored with
the champion (`live`), every score that changed is appended to the ledger, and reads
answer from it (`reads`). `load` seeds the store from a CRM export, `rescore` moves
every active lead's score forward in time. The schema is migrated with Alembic
(`schema`); the engine (`engine`) makes SQLite durable and serial, PostgreSQL locked
per account.
"""
