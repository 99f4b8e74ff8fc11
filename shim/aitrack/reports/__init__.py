"""What the developer sees of the ledger: `aitrack report` and `aitrack dashboard`.

Bottom up: periods (options, time zones, period labels); rows (Figures and their cost of
record); queries and summaries (the SQL, exact or over migration m002's summaries); sessions
(a row per session); figures (`build`: any report). Then, laid out: text (figures as
words), exports (JSON, CSV), layout and tables (the terminal table), readonly (opening the
ledger); charts, sections and dashboard (the HTML page, with dashboard.css and .js).
"""
