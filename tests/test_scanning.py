"""Scanning many files: streamed output, --resume after SIGKILL, torchrun ranks, the HTML report, --plot."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from src.scan_output import CSV_FIELDS, load_previous, merge, rank_path, render
from tests.helpers import REPO, describe, kill_group, run_module, run_python, start_module, wait_until
from tests.synth import write_recording

SCAN = ("--no-progress", "--precision", "fp32", "--threads", "1")


def scores(results: list[dict]) -> dict[str, tuple]:
    """What must not change between two scans of the same files: verdicts and window scores by name."""
    return {r["name"]: (r.get("Prediction"), r.get("mean_ai_probability"),
                        [w["ai_probability"] for w in r.get("windows", [])], r.get("error")) for r in results}


def assert_same_scores(left: list[dict], right: list[dict], tolerance: float = 1e-5) -> None:
    a, b = scores(left), scores(right)
    assert a.keys() == b.keys()
    for name in a:
        assert a[name][0] == b[name][0] and a[name][3] == b[name][3], name
        assert a[name][2] == pytest.approx(b[name][2], abs=tolerance), name


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.fixture(scope="module")
def inbox(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder of 16 recordings of 20 s (long enough to kill a scan half-way) and one broken file."""
    folder = tmp_path_factory.mktemp("inbox")
    for i in range(16):
        write_recording(folder / f"call_{i:02d}.wav", "ai" if i % 3 == 0 else "human", 20.0, seed=i)
    (folder / "broken.wav").write_bytes(b"RIFF0000WAVEnot really")
    return folder


@pytest.fixture(scope="module")
def full_scan(inbox: Path, tmp_path_factory: pytest.TempPathFactory) -> list[dict]:
    """An uninterrupted scan of the inbox, the reference for the others."""
    output = tmp_path_factory.mktemp("full") / "scan.jsonl"
    result = run_module("src.inference_CNN", inbox, "--output", output, *SCAN)
    assert result.returncode == 1, describe(result)  # one file could not be analysed
    results = read_jsonl(output)
    assert len(results) == 17 and sum("error" in r for r in results) == 1
    return results


def test_killed_scan_resumes_to_the_uninterrupted_result(inbox: Path, full_scan: list[dict], tmp_path: Path):
    output = tmp_path / "scan.jsonl"
    process = start_module("src.inference_CNN", inbox, "--output", output, *SCAN)
    # Results are flushed one by one: kill the scan as soon as two files are in the output.
    wait_until(lambda: output.exists() and output.read_text().count("\n") >= 2, process)
    kill_group(process)
    finished = output.read_text().count("\n")
    assert 2 <= finished < 17, "the scan ended before it could be killed half-way"
    with output.open("a") as handle:  # as if killed in the middle of writing a line
        handle.write('{"name": "' + str(inbox / "call_15.wav") + '", "Percent_A')
    result = run_module("src.inference_CNN", inbox, "--output", output, "--resume", *SCAN)
    assert result.returncode == 1, describe(result)
    assert f"resuming: {finished} file(s) already scored, {17 - finished} to go" in result.stderr
    resumed = read_jsonl(output)  # every line is whole again
    names = [r["name"] for r in resumed]
    assert len(names) == len(set(names)) == 17  # no duplicate, no lost file
    assert names == [r["name"] for r in full_scan]  # and in input order
    assert_same_scores(resumed, full_scan)


def test_resume_redoes_changed_files_and_keeps_the_rest(inbox: Path, full_scan: list[dict], tmp_path: Path):
    folder = tmp_path / "inbox"
    shutil.copytree(inbox, folder)
    output = tmp_path / "scan.csv"
    assert run_module("src.inference_CNN", folder, "--output", output, *SCAN).returncode == 1
    first = output.read_text().splitlines()
    assert first[0] == ",".join(CSV_FIELDS) and len(first) == 18
    changed = folder / "call_04.wav"
    write_recording(changed, "ai", 7.0, seed=99)
    result = run_module("src.inference_CNN", folder, "--output", output, "--resume", *SCAN)
    assert "resuming: 16 file(s) already scored, 1 to go" in result.stderr, describe(result)
    lines = output.read_text().splitlines()
    assert lines[0] == ",".join(CSV_FIELDS) and len(lines) == 18  # one header, one row per file
    rows = {line.split(",")[0]: line for line in lines[1:]}
    assert rows[str(changed)].split(",")[5] == "7.0"  # duration_s of the new content
    assert lines[-1] == rows[str(changed)]  # a redone file moves to the end
    assert lines[1:-1] == [line for line in first[1:] if not line.startswith(str(changed) + ",")]


def test_load_previous_drops_torn_and_changed_records(inbox: Path, full_scan: list[dict], tmp_path: Path):
    output = tmp_path / "scan.jsonl"
    stale = {**full_scan[0], "mtime": 1.0}
    output.write_text(render([stale, *full_scan[1:3]], "jsonl") + '{"name": "torn')
    kept = load_previous(output, "jsonl")
    assert [r["name"] for r in kept] == [r["name"] for r in full_scan[1:3]]
    assert read_jsonl(output) == kept  # rewritten without the torn line and the stale record


def test_shards_and_merge_equal_the_full_scan(inbox: Path, full_scan: list[dict], tmp_path: Path):
    parts = []
    for k in (1, 2, 3):
        part = rank_path(tmp_path / "scan.jsonl", k - 1)
        run_module("src.inference_CNN", inbox, "--output", part, "--shard", f"{k}/3", *SCAN)
        parts.append(part)
    sizes = [len(read_jsonl(part)) for part in parts]
    assert sum(sizes) == 17 and max(sizes) < 17
    merged = merge(tmp_path / "scan.jsonl", parts, "jsonl", [r["name"] for r in full_scan], [])
    assert [r["name"] for r in merged] == [r["name"] for r in full_scan]
    assert not any(part.exists() for part in parts)
    assert_same_scores(read_jsonl(tmp_path / "scan.jsonl"), full_scan)


def test_torchrun_scan_equals_one_process(inbox: Path, full_scan: list[dict], tmp_path: Path):
    output, report = tmp_path / "scan.jsonl", tmp_path / "scan.html"
    result = run_python("-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                        "-m", "src.inference_CNN", inbox, "--output", output, "--report", report, *SCAN, timeout=400)
    assert result.returncode == 1, describe(result)  # the broken file, reported once by rank 0
    assert result.stderr.count("1 file(s) could not be analysed") == 1
    merged = read_jsonl(output)
    assert [r["name"] for r in merged] == [r["name"] for r in full_scan]
    assert_same_scores(merged, full_scan)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["scan.html", "scan.jsonl"]  # rank files merged away
    assert report.read_text().count("<tr class=") == 17


def test_plot_writes_a_timeline_png(inbox: Path, tmp_path: Path):
    png = tmp_path / "timeline.png"
    result = run_module("src.inference_CNN", inbox / "call_00.wav", "--plot", png, *SCAN)
    assert result.returncode == 0, describe(result)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000
    result = run_module("src.inference_CNN", inbox, "--plot", png, *SCAN)
    assert result.returncode == 2 and "--plot draws one file's timeline, and 17 were given" in result.stderr


def browser() -> tuple[str, str] | None:
    """Debian's chromium and chromedriver, where installed (make test installs them where it can)."""
    paths = shutil.which("chromium"), shutil.which("chromedriver")
    return paths if all(paths) else None


@pytest.mark.skipif(browser() is None, reason="no chromium/chromedriver (apt-get install chromium chromium-driver)")
def test_html_report_renders_and_sorts_in_a_headless_browser(inbox: Path, full_scan: list[dict], tmp_path: Path):
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is in requirements-dev.txt")
    from selenium.webdriver.common.by import By

    report = tmp_path / "report.html"
    result = run_module("src.inference_CNN", inbox, "--output", tmp_path / "scan.jsonl", "--report", report, *SCAN)
    assert result.returncode == 1, describe(result)
    assert "http://" not in report.read_text().replace('xmlns="http://www.w3.org/2000/svg"', "")  # nothing to fetch
    options = webdriver.ChromeOptions()
    options.binary_location = browser()[0]
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 f"--user-data-dir={tmp_path / 'profile'}", "--window-size=1400,900"):
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=webdriver.ChromeService(browser()[1]))
    try:
        driver.get(report.as_uri())
        rows = driver.find_elements(By.CSS_SELECTOR, "#results tbody tr")
        assert len(rows) == 17
        assert len(driver.find_elements(By.CSS_SELECTOR, "#results tbody svg")) == 16  # a timeline per scored file
        summary = driver.find_element(By.CLASS_NAME, "summary").text
        assert "17" in summary and "errors\n1" in summary
        heading = driver.find_element(By.CSS_SELECTOR, 'th[data-key="p"]')

        def column() -> list[str]:
            return [row.get_attribute("data-p") for row in driver.find_elements(By.CSS_SELECTOR, "#results tbody tr")]

        heading.click()
        ascending = column()
        assert [float(p) for p in ascending[:-1]] == sorted(float(r["mean_ai_probability"])
                                                             for r in full_scan if "error" not in r)
        assert ascending[-1] == ""  # the error sorts last
        heading.click()
        descending = column()
        assert [float(p) for p in descending[:-1]] == sorted((float(p) for p in ascending[:-1]), reverse=True)
        assert driver.save_screenshot(str(tmp_path / "report.png"))
        assert (tmp_path / "report.png").stat().st_size > 10_000
    finally:
        driver.quit()


def test_scan_arguments_are_checked(inbox: Path, tmp_path: Path):
    result = run_module("src.inference_CNN", inbox, "--resume", *SCAN)
    assert result.returncode == 2 and "--resume needs --output" in result.stderr
    result = run_module("src.inference_CNN", inbox, "--resume", "--format", "json", "--output", tmp_path / "a", *SCAN)
    assert result.returncode == 2 and "use --format jsonl or csv" in result.stderr
    env = {**os.environ, "WORLD_SIZE": "2"}  # as under torchrun, before any process group is made
    result = subprocess.run([sys.executable, "-m", "src.inference_CNN", str(inbox), *SCAN], cwd=REPO, env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and "a torchrun scan needs --output" in result.stderr


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full (Linux) to stand for a full disk")
def test_a_full_disk_stops_the_scan_with_a_clear_error(inbox: Path):
    result = run_module("src.inference_CNN", inbox, "--output", "/dev/full", *SCAN)
    assert result.returncode == 2, describe(result)
    assert "error: cannot write /dev/full: No space left on device" in result.stderr
