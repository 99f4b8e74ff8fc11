"""The import engine: the tools' own files into the ledger, each API response once.

The engine knows no tool. It takes the tools from the adapters registry
(`adapters.TOOLS`) and each one's reader from its adapter's `transcripts` part
(`readers.of`); a tool without one has nothing to import. Its parts:

  readers  the tools with a reader, and each one's (the only place the engine finds them)
  files    walking a tool's folders; reading what is new in a file since the last import
           (per-file state in the ledger's transcript_files, migration m005)
  lines    a line file's new bytes split into lines, only those that can count parsed
  book     the sessions and response rows of an import, which readers count into
  workers  the process pool that reads a big import while this process merges
  merge    one import: which files to read, and batches merged into the ledger
  result   ImportResult: what an import read and counted
The entry points (`run`, `import_files`, `before_report`, `open_ledger`) are in
`aitrack.store.importer`. A worker process imports `workers` and what reading needs, so only
`merge` imports the ledger (and nothing imports `merge` but the entry points).

The reader contract: what `aitrack/adapters/<tool>/transcripts.py` provides

  SOURCE               optional, "lines" (default): line files the engine splits, or
                       "whole": files the reader reads itself, whole (a SQLite database, a
                       JSON document), through `Reader.query()`
  MARKERS              (lines) byte strings at least one of which is in every line that can
                       count; the other lines (most of them) are never parsed
  LAST_MARKERS         (lines) optional: markers of which only the last line of a read
                       counts (last-wins)
  roots(env)           the directories holding its files; a root may be a file itself
  DEPTH                optional: how many folders deep below a root its files are (default:
                       any), so a walk does not descend into a tool's other folders
  is_transcript(name)  whether a file name there is one
  order(path, stat)    the sort key of files within an import (path: a str)
  Reader(file, prices) one file's new content (`file`: a FileRead: its path, and `context`, a
                       dict kept between imports). A line reader's `line(raw, head)` parses a
                       line (raising BadLine; `head`: one of a file's first lines, always
                       handed over); a whole reader's `query()` reads the file itself, from
                       the point it noted in `file.context`, opening a database read-only
                       (raising OSError when it cannot, BadLine for a bad document).
                       Optional `finish()` once the file is read, `keys()` the response keys
                       it will ask about, `count(book)` counts them in order into the Book:
                       `book.count(key, rid, session, model, figures)` per response, `rid`
                       being reading.request_number of the request's own id (what a
                       telemetry event of it names; 0 when the file gives none), `model` the
                       model that answered; the name it was requested under, where the file
                       says and it differs, in the session's state as
                       `state["requested"][model]` (`session.set_state`).
                       Its `prices` (the PriceTable) is None while it travels from a worker
                       process, which parses big imports: a Reader must pickle
  totals(state)        optional: what a session's files state as its totals besides its
                       requests, per model as requested (token types, `cost_usd`): a floor
                       under its requests (Claude's cost-state). `metrics(state)`, the older
                       name, gives costs only
  notes(state)         optional: kind -> one line for `report session` saying what the
                       files cannot show (a request only telemetry sees), shown unless
                       telemetry saw the session
  PARALLEL             optional, default True: a big import may parse in worker processes
                       (worth it where parsing costs more than counting)
The reader kit both sides share (BadLine, decode, identity, FileRead, the order of a
response's figures) is `aitrack.adapters.reading`.

A file read whole is never resumed by bytes (its offset and head hash are 0): its change
stamp (files.stamp) is its size and time, with a database's `<name>-wal` added, since a WAL
database's new rows sit there until a checkpoint and an unchanged main file would hide them.
opencode (`opencode.db`, and its older `storage/message/**.json` documents) is read so.

Counting is idempotent: every counted response is a row keyed by a hash of its identity, a
row only ever grows (the largest line of a response wins), and a session's transcript
figures are the sums of its rows, merged with `ledger.record_transcripts`: each request
once, whichever sources saw it (the responses of a session telemetry reported request by
request meet its telemetry's; store/ledger/record.py). So re-reading a file (a compaction
rewrote it, a copy sits in an archive folder) counts nothing twice, and neither can two
imports at once: each batch is merged inside one write transaction.
"""
