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

  MARKERS              byte strings at least one of which is in every line that can count;
                       the other lines (most of them) are never parsed
  LAST_MARKERS         optional: markers of which only the last line of a read counts
                       (last-wins)
  roots(env)           the directories holding its files
  is_transcript(name)  whether a file name there is one
  order(path, stat)    the sort key of files within an import (path: a str)
  Reader(file, prices) one file's new lines (`file`: a FileRead: its path, and `context`, a
                       dict kept between imports); `line(raw, head)` parses a line (raising
                       BadLine; `head`: one of a file's first lines, always handed over),
                       optional `finish()` once the file is read, `keys()` the response keys
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

Sources that are not line files. opencode (`opencode.db`) and Copilot CLI
(`session-store.db`) keep their usage in SQLite databases. Their readers will declare
`SOURCE = "database"` (line files: "lines", the default) and the engine will branch in one
place, `files.read_file`: instead of splitting the file into lines for `Reader.line`, it
calls `Reader.query()` once. The reader opens the database read-only, reads the rows added
since the point it noted in `file.context` (kept between imports, as Codex keeps a
rollout's thread id), notes where it stopped, and keeps one record per request, keyed as a
line reader keys responses; `keys`, `count`, `finish`, `metrics`, the Book, the batches, the
worker pool and the merge stay as they are. Two things differ for the engine: a WAL
database's new rows sit in its `-wal` file until a checkpoint, so a database's change stamp
must cover `<name>-wal` too (size and mtime of both), or an unchanged main file hides new
rows; and the byte offset and head hash mean nothing there (0): a database is queried on,
never resumed by bytes.

Counting is idempotent: every counted response is a row keyed by a hash of its identity, a
row only ever grows (the largest line of a response wins), and a session's transcript
figures are the sums of its rows, merged with `ledger.record_transcripts`: each request
once, whichever sources saw it (the responses of a session telemetry reported request by
request meet its telemetry's; store/ledger/record.py). So re-reading a file (a compaction
rewrote it, a copy sits in an archive folder) counts nothing twice, and neither can two
imports at once: each batch is merged inside one write transaction.
"""
