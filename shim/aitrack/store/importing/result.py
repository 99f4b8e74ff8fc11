"""What an import read and counted, for people (`summary`) and machines (`as_dict`)."""

from __future__ import annotations

from dataclasses import dataclass, field

from aitrack.adapters.reading import SKIP_REASONS


@dataclass
class ImportResult:
    """What an import read and counted; `skipped` counts lines and files by reason."""

    files_seen: int = 0
    files_read: int = 0
    bytes: int = 0
    sessions_new: int = 0
    sessions_updated: int = 0
    responses: int = 0
    duplicates: int = 0
    not_billed: int = 0
    incomplete: int = 0
    skipped: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    dry_run: bool = False

    def skip(self, reason: str, n: int = 1) -> None:
        self.skipped[reason] = self.skipped.get(reason, 0) + n

    def as_dict(self) -> dict:
        out = dict(self.__dict__)
        out["skipped"] = dict(sorted(self.skipped.items()))
        out["seconds"] = round(self.seconds, 3)
        return out

    def summary(self) -> str:
        """One line for people."""
        verb = "would import" if self.dry_run else "imported"
        if self.files_read == 0:
            line = f"nothing new in {self.files_seen:,} transcript files"
        else:
            line = (f"{verb} {self.responses:,} responses into {self.sessions_new:,} new and "
                    f"{self.sessions_updated:,} updated sessions from {self.files_read:,} of "
                    f"{self.files_seen:,} transcript files ({_size(self.bytes)})")
        line += f" in {self.seconds:.2f} s"
        if self.skipped:
            parts = ", ".join(f"{n:,} {SKIP_REASONS.get(r, r)}"
                              for r, n in sorted(self.skipped.items()))
            line += f"; skipped {parts}"
        if self.incomplete:
            line += f"; {self.incomplete:,} half-written last line(s) left for next time"
        return line


def _size(n: int) -> str:
    return f"{n / 1e6:.1f} MB" if n >= 100_000 else f"{n / 1e3:.1f} kB"
