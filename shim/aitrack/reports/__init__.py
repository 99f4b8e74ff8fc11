"""What the developer sees of the ledger: report figures, terminal tables, the
dashboard."""
