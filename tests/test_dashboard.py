"""`aitrack dashboard`: one self-contained page, opened in a real headless Chromium.

The page must show what `aitrack report --json` says under the same filters, render its
charts, sort its sessions table from the keyboard, follow the system's dark theme and make
no request at all once opened. Screenshots land in each test's temporary directory.
"""

from __future__ import annotations

import fnmatch
import os
import re
import tomllib
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

import chromium
from aitrack.store import ledger
from test_report import SMALL, Ledger, at, report_json

UTC = ZoneInfo("UTC")


@pytest.fixture
def led(home) -> Ledger:
    return Ledger(home)


@pytest.fixture
def browser():
    if chromium.binary() is None:
        message = "no chromium: run the tests with `bash tests/run.sh` (it installs Debian's)"
        if os.environ.get("AITRACK_REQUIRE_CHROMIUM") == "1":
            pytest.fail(message)
        pytest.skip(message)
    b = chromium.Browser(width=1280, height=900)
    yield b
    b.close()


def populate(led: Ledger) -> None:
    """A fortnight of Claude and Codex sessions: reported and estimated costs, an unpriced
    model, commits, tool decisions, a failed run and a session seen only by telemetry."""
    for day in range(14):
        when = at("2026-03-01T09:00") + timedelta(days=day)
        led.session(when, usage={"claude-opus-5-5": {"input": 3000 + day, "output": 1400,
                                                     "cache_read": 7000, "cache_creation": 250},
                                 "claude-haiku-4-5": {"input": 900, "output": 300}},
                    cost={"claude-opus-5-5": 0.3 + day / 100, "claude-haiku-4-5": 0.01},
                    metrics={"commits": day % 3, "lines_added": 10 * day},
                    project="web" if day % 2 else "api", entrypoint="cli",
                    decisions={("Edit", "accept"): 4, ("Edit", "reject"): day % 2})
        if day % 3 == 0:
            led.session(when + timedelta(hours=2), tool="codex", project="api",
                        usage={"gpt-5-codex": {"input": 200_000, "cache_read": 50_000,
                                               "output": 20_000, "reasoning": 5_000}},
                        exit_code=1 if day == 3 else 0, entrypoint="codex_exec",
                        decisions={("shell", "accept"): 2})
    led.session(at("2026-03-05T18:00"), tool="codex", usage={"acme-coder-9": {"input": 500}},
                exit_code=None, duration=None, sources=ledger.TELEMETRY)


def dashboard(home, tmp_path: Path, *args: str) -> Path:
    out = tmp_path / "dashboard.html"
    proc = home.run("dashboard", "--out", str(out), "--timezone", "UTC", *args)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.startswith(f"aitrack: wrote {out} (") and proc.stdout == ""
    return out


def shown(html: str, element_id: str) -> str:
    """The value of the <data> element with that id."""
    return re.search(rf'<data id="{element_id}" value="([^"]*)"', html)[1]


def test_the_page_renders_the_reports_numbers_and_requests_nothing(home, led, tmp_path,
                                                                   browser):
    populate(led)
    page = dashboard(home, tmp_path)
    daily = report_json(home, "daily", "--breakdown", "--timezone", "UTC")
    models = report_json(home, "model", "--timezone", "UTC")
    sessions = report_json(home, "session", "--timezone", "UTC")
    browser.open(page.as_uri())

    # the totals in the page are the report's
    values = browser.evaluate("Object.fromEntries([...document.querySelectorAll('data')]"
                              ".map(d => [d.id, d.value]))")
    totals = daily["totals"]
    assert float(values["total-cost"]) == pytest.approx(totals["cost_usd"])
    assert int(values["total-sessions"]) == totals["sessions"] == 20
    assert int(values["total-tokens"]) == totals["total"]
    assert float(values["cost-per-commit"]) == pytest.approx(totals["cost_per_commit"])
    accepted = sum(t["accepted"] for t in models["acceptance"])
    rejected = sum(t["rejected"] for t in models["acceptance"])
    assert float(values["acceptance"]) == pytest.approx(accepted / (accepted + rejected), 1e-3)

    # the charts: a bar per day, a rectangle per day and model with a cost
    bars = browser.evaluate("[...document.querySelectorAll('#cost-chart g[data-period]')]"
                            ".map(g => [g.dataset.period, g.querySelectorAll('rect').length])")
    expected = [[row["period"], sum(1 for b in row["breakdown"] if b["cost_usd"])]
                for row in daily["daily"] if row["cost_usd"]]
    assert bars == expected and len(bars) == 14
    assert browser.evaluate("document.querySelectorAll('#tokens-chart g[data-period]')"
                            ".length") == len(daily["daily"])
    for chart in ("cost-chart", "tokens-chart", "cpc-chart"):
        assert browser.evaluate(f"document.getElementById('{chart}').getBBox().width") > 300
        assert browser.evaluate(  # named for a screen reader: <title> and <desc>
            f"document.getElementById('{chart}').getAttribute('aria-labelledby')"
            ".split(' ').map(id => document.getElementById(id).textContent).join('|')"
        ).count("|") == 1
    legend = browser.evaluate("[...document.querySelectorAll('.legend li')]"
                              ".map(li => li.textContent)")
    assert legend == [m["period"] for m in models["models"]]  # costliest first

    # the sessions table: every session, with exit status, duration and source
    rows = browser.evaluate("[...document.querySelectorAll('#sessions tbody tr')]"
                            ".map(tr => [...tr.cells].map(td => td.textContent))")
    assert len(rows) == len(sessions["sessions"])
    failed = next(r for r in rows if r[6] == "1")
    assert failed[1:6] == ["codex", "api", "gpt-5-codex", "codex_exec", "otel+wrapper"]
    assert failed[7] == "1m 00s"
    telemetry_only = next(r for r in rows if "acme-coder-9" in r[3])
    assert (telemetry_only[5], telemetry_only[6], telemetry_only[7], telemetry_only[9]) == (
        "otel", "—", "—", "unpriced")
    text = browser.evaluate("document.body.innerText")
    assert "acme-coder-9" in text and '[prices."acme-coder-9"]' in text  # how to price it
    assert f"Prices as of {daily['prices_as_of']}" in text

    # nothing left the page: one request (the file itself), no CSP or console complaint
    requests = [e["params"]["request"]["url"] for e in browser.named("Network.requestWillBeSent")]
    assert requests == [page.as_uri()]
    assert browser.named("Log.entryAdded") == []
    assert browser.named("Runtime.exceptionThrown") == []
    browser.screenshot(tmp_path / "dashboard.png")
    assert (tmp_path / "dashboard.png").stat().st_size > 20_000


def test_sorting_the_sessions_table_from_the_keyboard(home, led, tmp_path, browser):
    populate(led)
    browser.open(dashboard(home, tmp_path).as_uri())
    costs = "[...document.querySelectorAll('#sessions tbody tr')].map(tr => tr.cells[9].dataset.v)"
    before = browser.evaluate(costs)
    browser.evaluate("document.querySelectorAll('#sessions th button')[9].focus()")
    assert browser.evaluate("document.activeElement.textContent") == "Cost"
    browser.key("Enter", "Enter", 13, "\r")
    after = browser.evaluate(costs)
    numbers = [float(v) if v else float("-inf") for v in after]
    assert numbers == sorted(numbers, reverse=True) and sorted(before) == sorted(after)
    sorts = browser.evaluate("[...document.querySelectorAll('#sessions th')]"
                             ".map(th => th.getAttribute('aria-sort'))")
    assert sorts == [None] * 9 + ["descending"]
    assert browser.evaluate("document.getElementById('sort-status').textContent") == (
        "Sorted by Cost, descending")
    browser.key(" ", "Space", 32, " ")  # a button takes Space too: now ascending
    numbers = [float(v) if v else float("-inf") for v in browser.evaluate(costs)]
    assert numbers == sorted(numbers)


def test_dark_theme_follows_the_system(home, led, tmp_path, browser):
    populate(led)
    browser.open(dashboard(home, tmp_path).as_uri())
    background = "getComputedStyle(document.body).backgroundColor"
    light = browser.evaluate(background)
    browser.send("Emulation.setEmulatedMedia",
                 features=[{"name": "prefers-color-scheme", "value": "dark"}])
    dark = browser.evaluate(background)
    assert light == "rgb(246, 247, 249)" and dark == "rgb(15, 18, 22)"
    browser.screenshot(tmp_path / "dashboard-dark.png")


@pytest.mark.parametrize("args", [("--tool", "codex"), ("--project", "web"),
                                  ("--since", "2026-03-04", "--until", "2026-03-09"),
                                  ("--last", "3")])
def test_filters_give_the_reports_numbers(home, led, tmp_path, args):
    populate(led)
    led.session(datetime.now(UTC) - timedelta(hours=1), tool="codex",
                usage={"gpt-5": {"input": 1_000_000}})
    html = dashboard(home, tmp_path, *args).read_text()
    totals = report_json(home, "daily", "--timezone", "UTC", *args)["totals"]
    assert totals["sessions"] > 0
    assert int(shown(html, "total-sessions")) == totals["sessions"]
    assert int(shown(html, "total-tokens")) == totals["total"]
    assert float(shown(html, "total-cost")) == pytest.approx(totals["cost_usd"])


def test_a_heavy_ledger_is_summarised(home, led, tmp_path, monkeypatch):
    """Past the limits: the newest sessions listed and the rest summed, the costliest models
    coloured and the rest grouped, projects ranked by sessions."""
    from aitrack.domain import pricing
    from aitrack.reports import dashboard as dash
    from aitrack.reports import figures

    populate(led)
    monkeypatch.setattr(dash, "TABLE_SESSIONS", 5)
    monkeypatch.setattr(dash, "SERIES", 2)
    monkeypatch.setattr(dash, "PROJECT_COST_SESSIONS", 10)
    out = tmp_path / "page.html"
    opts = figures.Options(tz=UTC, tz_name="UTC")
    size = dash.write(home.ledger, opts, pricing.load(), out)
    html = out.read_text()
    assert size == len(html.encode())
    assert html.count("<tr><td data-v=") == 5
    assert "15 older sessions, not listed" in html
    assert re.search(r'<li><span class="swatch s2" aria-hidden="true"></span>other models</li>',
                     html)
    assert "Top projects <small>by sessions</small>" in html
    assert re.search(r"<th scope=row>api</th><td class=bar>.*?</td><td>12</td></tr>", html)


def test_days_without_sessions_keep_their_place_on_the_axis(home, led, tmp_path):
    for day in ("2026-03-01", "2026-03-02", "2026-03-11"):
        led.session(at(f"{day}T12:00"), tool="codex", usage={"gpt-5": {"input": 1_000_000}})
    html = dashboard(home, tmp_path).read_text()
    chart = html[html.index('id="cost-chart"'):html.index("</svg>", html.index('id="cost-chart"'))]
    xs = [float(x) for x in re.findall(r'<rect class="s0" x="([\d.]+)"', chart)]
    assert len(xs) == 3
    assert xs[2] - xs[1] == pytest.approx(9 * (xs[1] - xs[0]), abs=0.1)  # 9 days on, not 1


def test_a_long_stretch_without_sessions_collapses_into_a_marked_gap(home, led, tmp_path):
    """Issue 23 item 6: a winter of history and then today, no longer bars in a corner."""
    for day in range(30):
        led.session(at("2025-11-01T12:00") + timedelta(days=day), tool="codex",
                    usage={"gpt-5": {"input": 1_000_000}})
    led.session(at("2026-06-10T12:00"), tool="codex", usage={"gpt-5": {"input": 1_000_000}})
    html = dashboard(home, tmp_path).read_text()
    chart = html[html.index('id="cost-chart"'):html.index("</svg>", html.index('id="cost-chart"'))]
    xs = [float(x) for x in re.findall(r'<rect class="s0" x="([\d.]+)"', chart)]
    assert len(xs) == 31
    step = xs[1] - xs[0]
    assert xs[30] - xs[29] == pytest.approx(2 * step, abs=0.1)  # one slot for the gap
    gap = "no sessions from 2025-12-01 to 2026-06-09 (191 days)"
    assert f'<g class="gap"><title>{gap}</title>' in chart
    assert gap in re.search(r'<desc id="cost-chart-d">([^<]*)</desc>', html)[1]
    assert ">Jun 10 2026</text>" in chart  # the day after the gap is dated


def test_a_missing_out_folder_is_refused_not_created(home, led, tmp_path):
    populate(led)
    out = tmp_path / "nonexistent" / "dir" / "d.html"
    proc = home.run("dashboard", "--out", str(out))
    assert proc.returncode == 1
    assert proc.stderr == (f"aitrack: cannot write {out}: {out.parent} is not a folder: "
                           "create it first, or choose another --out\n")
    assert not (tmp_path / "nonexistent").exists()


LONG_NAMES = "claude-opus-4-5-20251101-with-an-extremely-long-bedrock-suffix"
OVERFLOW = """[...document.querySelectorAll('section.card, .kpi')].flatMap(card => {
  const box = card.getBoundingClientRect();
  const out = [...card.querySelectorAll('th, td, h2, p, svg')].filter(e => {
    const r = e.getBoundingClientRect();
    const scroller = e.closest('.fit, .scroll');
    const clip = scroller ? scroller.getBoundingClientRect() : box;
    return r.width && (r.right > box.right + 0.5) && !(scroller && r.left >= clip.left - 0.5
      && scroller.scrollWidth > scroller.clientWidth);
  }).map(e => e.textContent.slice(0, 40));
  return card.scrollWidth > card.clientWidth + 0.5 ? ['card ' + card.id, ...out] : out;
})"""
SCROLLING = """[...document.querySelectorAll('.fit, .scroll')]
  .filter(f => f.scrollWidth > f.clientWidth + 0.5)
  .map(f => f.closest('section').querySelector('h2').id)"""


@pytest.mark.parametrize("width", [800, 1000, 1400])
def test_tables_fit_or_scroll_inside_their_cards(home, led, tmp_path, width):
    """Issue 23 item 4: at 1000 px the Models and Top projects tables ran across their
    cards' border ("Cos", "$882.02"). From 800 px up, in both themes, nothing leaves its
    card: a table fits, or (the sessions table) scrolls inside it."""
    if chromium.binary() is None:
        pytest.skip("no chromium: run the tests with `bash tests/run.sh`")
    populate(led)
    led.session(at("2026-03-06T10:00"), project="-home-dev-src-a-project-with-a-long-name3",
                usage={LONG_NAMES: {"input": 5000, "output": 300}}, cost={LONG_NAMES: 882.02})
    led.session(at("2026-03-07T10:00"), tool="codex", usage={"acme-coder-9-preview-long": SMALL})
    page = dashboard(home, tmp_path)
    for theme in ("light", "dark"):
        browser = chromium.Browser(width=width, height=900)
        try:
            browser.send("Emulation.setEmulatedMedia",
                         features=[{"name": "prefers-color-scheme", "value": theme}])
            browser.open(page.as_uri())
            assert browser.evaluate(OVERFLOW) == [], (width, theme)
            assert browser.evaluate(SCROLLING) in ([], ["sessions-h"]), (width, theme)
            browser.screenshot(tmp_path / f"dashboard-{width}-{theme}.png")
        finally:
            browser.close()


def test_open_shows_it_in_the_default_browser(home, led, tmp_path):
    populate(led)
    seen = tmp_path / "opened"
    fake = tmp_path / "browser"
    fake.write_text(f'#!/bin/sh\nprintf %s "$1" > "{seen}"\n')
    fake.chmod(0o755)
    proc = home.run("dashboard", "--open", env={"BROWSER": str(fake)})
    assert proc.returncode == 0, proc.stderr
    out = home.root / "data" / "dashboard.html"  # the default: in aitrack's data directory
    assert proc.stderr.startswith(f"aitrack: wrote {out} (")
    assert seen.read_text() == out.as_uri()


def test_no_sessions_yet_writes_nothing(home, tmp_path):
    out = tmp_path / "page.html"
    proc = home.run("dashboard", "--out", str(out))
    assert proc.returncode == 0 and "aitrack claude" in proc.stderr
    assert "aitrack dashboard" in proc.stderr and not out.exists()


def test_filters_matching_nothing_still_write_a_page(home, led, tmp_path):
    populate(led)
    html = dashboard(home, tmp_path, "--tool", "nothing").read_text()
    assert "No sessions match these filters." in html


def test_the_page_is_self_contained(home, led, tmp_path):
    """No URL to fetch anything from, and a policy that would refuse one anyway."""
    populate(led)
    html = dashboard(home, tmp_path).read_text()
    csp = re.search(r'http-equiv="Content-Security-Policy" content="([^"]+)"', html)[1]
    assert csp.startswith("default-src 'none'; style-src 'sha256-")
    assert "unsafe-inline" not in csp
    assert not re.search(r'\b(src|href)="(?!data:)', html)
    assert not re.search(r"https?://", html)
    assert ' style="' not in html  # no inline style the policy would block


def test_the_page_style_and_script_ship_with_the_package():
    """The stylesheet and script are files beside the module: `pip install .` must ship them
    (pyproject's package-data), or an installed dashboard fails where the tests pass."""
    repo = Path(__file__).resolve().parent.parent
    shipped = tomllib.loads((repo / "pyproject.toml").read_text())[
        "tool"]["setuptools"]["package-data"]["aitrack"]
    for path in ("reports/dashboard.css", "reports/dashboard.js"):
        assert (repo / "shim" / "aitrack" / path).is_file()
        assert any(fnmatch.fnmatch(path, glob) for glob in shipped), path
