"""The local ledger (SQLite): schema, sessions and runs, and the import engine that
reads the tools' local files into it."""
