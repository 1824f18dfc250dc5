"""The HTML report (issue #19 item 14): one self-contained page with the gate at the top, the
verdict table, and each run's charts drawn from its series. Oracles: Python's own HTML parser
(tags balance, what text and attributes the page holds), the report's numbers (names, verdicts,
gates, counts), the series itself (the charts' downsampling keeps the extremes), and a real
headless Chromium (no console errors; sorting checked against a sort done here, filtering against
a match done here; a screenshot that is a PNG of the window's size)."""
from __future__ import annotations

import os
import re
import shutil
import struct
from dataclasses import replace
from html.parser import HTMLParser

import numpy as np
import pytest

from siamdiag.cli.main import main
from siamdiag.pipeline import judge_paths
from siamdiag.report import html as page
from siamdiag.report.model import GatePolicy, Report
from siamdiag.report.render import RENDERERS, visible

from .conftest import SAMPLES, write_csv

HOSTILE = 'run | <b>&"x"</b>, `tick`: 100%\n2nd\x07line <script>alert(1)</script>'
VOID = {"meta", "link", "input", "br", "img", "rect", "line", "polyline", "polygon"}


class Page(HTMLParser):
    """The page as a parser sees it: tags must balance (SVG shapes may close themselves), and
    text, elements and attributes are collected."""

    def __init__(self, text: str):
        super().__init__(convert_charrefs=True)
        self.open: list[str] = []
        self.tags: list[str] = []
        self.attributes: list[tuple[str, str, str]] = []
        self.text: list[str] = []
        self.feed(text)
        self.close()
        assert self.open == [], f"unclosed: {self.open}"

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        self.attributes += [(tag, name, value or "") for name, value in attrs]
        if tag not in VOID:
            self.open.append(tag)

    def handle_startendtag(self, tag, attrs):
        self.tags.append(tag)
        self.attributes += [(tag, name, value or "") for name, value in attrs]

    def handle_endtag(self, tag):
        if tag in VOID and (not self.open or self.open[-1] != tag):
            return
        assert self.open and self.open[-1] == tag, f"</{tag}> closes {self.open[-1:]}"
        self.open.pop()

    def handle_data(self, data):
        self.text.append(data)


@pytest.fixture(scope="module")
def judged():
    """The samples (one log per verdict) under names that break naive HTML, with their series."""
    pairs = judge_paths([SAMPLES])
    return [(run, replace(result, run=f"{result.verdict.value} {HOSTILE}")) for run, result in pairs]


@pytest.fixture(scope="module")
def report(judged):
    return Report(runs=tuple(result for _run, result in judged), policy=GatePolicy(), alpha=0.01)


@pytest.fixture(scope="module")
def html(report, judged):
    return page.render_html(report, False, [run for run, _result in judged])


def test_well_formed_every_run_named_and_hostile_names_escaped(report, html):
    parsed = Page(html)
    text = "".join(parsed.text)
    for r in report.runs:
        assert text.count(visible(r.run)) >= 2   # in the table and as its section's heading
    assert "b" not in parsed.tags                 # the name's <b> is text, not markup
    assert parsed.tags.count("script") == 1       # only the page's own script
    assert html.count("<script") == 1 and "alert(1)</script>" not in html
    assert "\x07" not in html and "\\x07" in text   # control characters shown, not sent
    assert parsed.tags.count("section") == len(report.runs)


def test_gate_counts_and_alpha_at_the_top(report, html):
    header = html[html.index("<header"):html.index("</header>")]
    assert html.index("<header") < html.index("<table")
    failing = sum(report.run_gate(r) == "fail" for r in report.runs)
    assert f"gate {'PASS' if report.passed else 'FAIL'}" in header
    assert f"{len(report.runs)} runs, {failing} failing" in header and "family α=0.01" in header
    for verdict in {r.verdict.value for r in report.runs}:
        count = sum(r.verdict.value == verdict for r in report.runs)
        assert f'v-{verdict}">{verdict}</span> {count}</li>' in header


def test_nothing_is_fetched_at_view_time(html):
    parsed = Page(html)
    links = [value for tag, name, value in parsed.attributes if name in ("src", "href")]
    assert links and all(v.startswith(("#run-", "data:")) for v in links)
    assert "http://" not in html and "https://" not in html
    policy = next(value for tag, name, value in parsed.attributes if name == "content" and "default-src" in value)
    assert "default-src 'none'" in policy and "unsafe-inline" not in policy


def test_the_same_report_gives_the_same_bytes(report, judged, html):
    assert page.render_html(report, False, [run for run, _result in judged]) == html


def test_one_chart_of_the_whole_run_and_one_of_the_window(report, html):
    sections = html.split('<section class="run"')[1:]
    for r, section in zip(report.runs, sections):
        charts = section.count("<svg")
        if r.points < 2:
            assert charts == 0 and "No chart" in section
        else:
            assert charts == (2 if r.window is not None else 1)
        if r.window is not None and r.window.burn_in_step and charts:
            assert 'class="burn"' in section and 'class="window"' in section


def test_without_the_series_the_page_says_why_there_are_no_charts(report):
    text = RENDERERS["html"](report, False)
    Page(text)
    assert "<svg" not in text and text.count("the series was not kept") == len(report.runs)


def long_run(tmp_path, n=100_000, spike_at=70_000):
    rng = np.random.default_rng(5)
    loss = 0.3 + 0.01 * rng.standard_normal(n)
    loss[spike_at] = 5.0
    path = write_csv(tmp_path / "long.csv", ["step", "loss"], [(k, f"{v:.6f}") for k, v in enumerate(loss)])
    [(run, result)] = judge_paths([path])
    return run, result


def test_long_series_are_downsampled_and_keep_their_spike(tmp_path):
    run, result = long_run(tmp_path)
    text = page.render_html(Report((result,), GatePolicy(), 0.01), False, [run])
    whole = text[text.index("<svg"):text.index("</svg>")]
    band = re.search(r'<polygon class="band" points="([^"]+)"', whole).group(1).split()
    line = re.search(r'<polyline class="line" points="([^"]+)"', whole).group(1).split()
    assert len(band) == 2 * page.CHART_BUCKETS and len(line) == page.CHART_BUCKETS
    top = min(float(p.split(",")[1]) for p in band)   # the spike: the band reaches the top
    assert top < page.MARGIN_TOP + 0.1 * (page.CHART_HEIGHT - page.MARGIN_TOP - page.MARGIN_BOTTOM)
    assert len(text) < 120_000


def test_log_scale_when_the_loss_spans_decades(tmp_path):
    n = 3000
    steps = np.arange(n)
    loss = 1e-5 * (1 + 0.03 * np.random.default_rng(3).standard_normal(n)) + 0.05 * np.exp(-steps / 50)
    path = write_csv(tmp_path / "tiny.csv", ["step", "loss"], [(s, f"{v:.8g}") for s, v in zip(steps, loss)])
    [(run, result)] = judge_paths([path])
    text = page.render_html(Report((result,), GatePolicy(), 0.01), False, [run])
    whole, window = text.split("<svg")[1:3]
    assert "log scale" in whole and "log scale" not in window


def test_analyze_writes_the_page_with_charts(tmp_path, capsys):
    out, bare = tmp_path / "report.html", tmp_path / "bare.html"
    with pytest.raises(SystemExit) as exc:
        main(["analyze", SAMPLES, "--report", f"html={out}", "--report", str(bare), "-q"])
    assert exc.value.code == 1
    text = out.read_text(encoding="utf-8")
    assert text == bare.read_text(encoding="utf-8") and text.count("<svg") >= 10 and "gate FAIL" in text
    with pytest.raises(SystemExit):
        main(["analyze", os.path.join(SAMPLES, "stationary.csv"), "--format", "html"])
    stdout = capsys.readouterr().out
    assert stdout.startswith("<!DOCTYPE html>") and stdout.count("<svg") == 2


# ------------------------------------------------------------------ in a real browser

def chromium():
    """A headless Chromium driven by selenium, or a skip saying what is missing (.ci/run installs
    Debian's chromium and chromium-driver)."""
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed (the dev extra has it)")
    browser, driver = shutil.which("chromium") or shutil.which("chromium-browser"), shutil.which("chromedriver")
    if not browser or not driver:
        pytest.skip("no chromium and chromedriver on PATH (apt-get install chromium chromium-driver)")
    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--window-size=1280,1600"):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(options=options, service=webdriver.ChromeService(executable_path=driver))


def shown_rows(browser):
    from selenium.webdriver.common.by import By

    return [row for row in browser.find_elements(By.CSS_SELECTOR, "#verdicts tbody tr") if row.is_displayed()]


@pytest.mark.browser
def test_in_a_browser_no_errors_sorting_filtering_and_a_screenshot(report, html, tmp_path):
    from selenium.webdriver.common.by import By

    path = tmp_path / "report.html"
    path.write_text(html, encoding="utf-8")
    browser = chromium()
    try:
        browser.get(path.as_uri())
        assert browser.find_element(By.CSS_SELECTOR, "header.gate h1").text == "siamdiag: gate FAIL"

        def column(name):
            return browser.find_element(By.XPATH, f'//table[@id="verdicts"]/thead//button[text()="{name}"]')

        names = [visible(r.run) for r in report.runs]
        column("run").click()
        cells = [row.find_elements(By.TAG_NAME, "td")[1].get_attribute("data-key") for row in shown_rows(browser)]
        assert cells == sorted(names)
        column("run").click()
        assert [row.find_elements(By.TAG_NAME, "td")[1].get_attribute("data-key")
                for row in shown_rows(browser)] == sorted(names, reverse=True)
        column("points").click()   # numbers sort as numbers; ties keep the report's order
        order = [int(row.get_attribute("data-index")) for row in shown_rows(browser)]
        assert order == sorted(range(1, len(report.runs) + 1), key=lambda k: (report.runs[k - 1].points, k))

        browser.find_element(By.ID, "filter").send_keys("diverged")
        expected = {k for k, r in enumerate(report.runs, 1)
                    if "diverged" in f"{visible(r.run)} {r.verdict.value} {r.reasons[:1]}".lower()}
        assert {int(row.get_attribute("data-index")) for row in shown_rows(browser)} == expected
        assert browser.find_element(By.ID, "shown").text == f"{len(expected)} of {len(report.runs)} runs shown"
        browser.find_element(By.ID, "filter").clear()
        browser.find_element(By.ID, "filter").send_keys(" ")   # clear() fires no input event
        browser.find_element(By.ID, "failing-only").click()
        failing = {k for k, r in enumerate(report.runs, 1) if report.run_gate(r) == "fail"}
        assert {int(row.get_attribute("data-index")) for row in shown_rows(browser)} == failing

        shot = tmp_path / "report.png"
        assert browser.save_screenshot(str(shot))
        head = shot.read_bytes()[:24]
        width, height = struct.unpack(">II", head[16:24])
        viewport = browser.execute_script("return [window.innerWidth, window.innerHeight]")
        assert head[:8] == b"\x89PNG\r\n\x1a\n" and [width, height] == viewport
        assert 20_000 < shot.stat().st_size < 5_000_000   # not blank, not absurd
        errors = [entry for entry in browser.get_log("browser") if entry["level"] == "SEVERE"]
        assert errors == []
    finally:
        browser.quit()
