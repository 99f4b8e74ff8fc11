"""The vocabulary every layer shares: usage records, token types, prices."""
