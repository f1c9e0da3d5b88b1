"""src.evaluate run as the real command on the session's tiny CNN, and src.metrics.detection_metrics.

Every number of a report is recomputed here from the report's own per-file `scores`, with
sklearn or by hand, so a wrong metric, a wrong label convention or a wrong threshold fails.
"""

from __future__ import annotations

import csv
import json
import math
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from src.audio import list_audio_files
from src.checkpoint import read_checkpoint
from src.metrics import AI, HUMAN, detection_metrics
from tests.conftest import DataTree, TrainingRun
from tests.helpers import describe, run_module

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
OVERALL_KEYS = {"n_human", "n_ai", "eer", "eer_threshold_ai", "roc_auc", "threshold", "accuracy", "precision_ai",
                "recall_ai", "f1_ai", "mcc", "false_alarm_rate", "miss_rate"}


def evaluate_command(*args) -> tuple[int, str, str]:
    result = run_module("src.evaluate", *args, "--device", "cpu", "--no-progress")
    return result.returncode, result.stdout, result.stderr


def brute_force_eers(p_human_files: np.ndarray, p_ai_files: np.ndarray) -> set[float]:
    """Every EER a threshold sweep can give (call AI when P(AI) >= t), ties included.

    false alarm = human files called AI, miss = AI files called human; the EER is their mean
    where they are closest.
    """
    values = np.unique(np.concatenate([p_human_files, p_ai_files]))
    thresholds = np.concatenate([[values[0] - 1.0], values, [values[-1] + 1.0]])
    false_alarm = np.array([(p_human_files >= t).mean() for t in thresholds])
    miss = np.array([(p_ai_files < t).mean() for t in thresholds])
    gap = np.abs(false_alarm - miss)
    best = np.isclose(gap, gap.min(), rtol=0, atol=1e-12)
    return {round(float(v), 12) for v in (false_alarm[best] + miss[best]) / 2}


def rates_at(p_human_files: np.ndarray, p_ai_files: np.ndarray, threshold: float) -> tuple[float, float]:
    """(false-alarm rate, miss rate) when AI is called at P(AI) >= threshold."""
    return float((p_human_files >= threshold).mean()), float((p_ai_files < threshold).mean())


def check_overall_against_scores(report: dict) -> None:
    """The overall metrics agree with a recomputation from the report's per-file scores."""
    overall, scores = report["overall"], report["scores"]
    assert OVERALL_KEYS <= set(overall)
    is_ai = np.array([s["label"] == "ai" for s in scores])
    p_ai = np.array([s["p_ai"] for s in scores], dtype=np.float64)
    assert {s["label"] for s in scores} == {"ai", "human"}
    assert ((p_ai >= 0) & (p_ai <= 1)).all()
    assert overall["n_ai"] == int(is_ai.sum()) and overall["n_human"] == int((~is_ai).sum())

    assert overall["roc_auc"] == pytest.approx(roc_auc_score(is_ai, p_ai))
    assert round(overall["eer"], 12) in brute_force_eers(p_ai[~is_ai], p_ai[is_ai])
    # The EER threshold, applied as the inference commands apply a threshold, gives that EER.
    false_alarm, miss = rates_at(p_ai[~is_ai], p_ai[is_ai], overall["eer_threshold_ai"])
    assert (false_alarm + miss) / 2 == pytest.approx(overall["eer"])

    t = overall["threshold"]
    called_ai = p_ai >= t
    tp, fp = int((called_ai & is_ai).sum()), int((called_ai & ~is_ai).sum())
    fn, tn = int((~called_ai & is_ai).sum()), int((~called_ai & ~is_ai).sum())
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    denominator = math.sqrt((tp + fp) * (tp + fn) * (tn + fp) * (tn + fn))
    mcc = (tp * tn - fp * fn) / denominator if denominator else 0.0
    assert overall["accuracy"] == pytest.approx((tp + tn) / len(scores))
    assert overall["precision_ai"] == pytest.approx(precision)
    assert overall["recall_ai"] == pytest.approx(recall)
    assert overall["f1_ai"] == pytest.approx(f1)
    assert overall["mcc"] == pytest.approx(mcc)
    assert overall["false_alarm_rate"] == pytest.approx(fp / (fp + tn))
    assert overall["miss_rate"] == pytest.approx(fn / (fn + tp))


@dataclass
class FolderEvaluation:
    """One `--human-dir/--ai-dir --fit-threshold` run on a copy of the CNN checkpoint."""

    weights: Path  # the copy, rewritten by --fit-threshold
    threshold_before: float
    human_dir: Path
    ai_dir: Path
    human: list[Path]
    ai: list[Path]
    report_path: Path
    plot_path: Path
    code: int
    stdout: str
    stderr: str

    @property
    def report(self) -> dict:
        return json.loads(self.report_path.read_text())


@pytest.fixture(scope="module")
def folder_evaluation(data_tree: DataTree, cnn_run: TrainingRun,
                      tmp_path_factory: pytest.TempPathFactory) -> FolderEvaluation:
    work = tmp_path_factory.mktemp("evaluate")
    weights = work / "cnn_copy.pth"
    shutil.copyfile(cnn_run.output, weights)
    human_dir = data_tree.root / "validation_set" / "human_full"
    ai_dir = data_tree.root / "validation_set" / "ai_full"
    report_path, plot_path = work / "out" / "report.json", work / "out" / "curves.png"
    threshold_before = float(read_checkpoint(weights)["info"]["threshold"])
    code, out, err = evaluate_command("--weights", weights, "--human-dir", human_dir, "--ai-dir", ai_dir,
                                      "--report", report_path, "--plot", plot_path, "--fit-threshold")
    return FolderEvaluation(weights, threshold_before, human_dir, ai_dir, list_audio_files(human_dir),
                            list_audio_files(ai_dir),
                            report_path, plot_path, code, out, err)


def test_folders_give_a_complete_consistent_report_and_plot(folder_evaluation: FolderEvaluation):
    run = folder_evaluation
    assert run.code == 0, f"{run.stdout}\n{run.stderr}"
    assert len(run.human) >= 2 and len(run.ai) >= 2
    report = run.report
    assert report["overall"]["n_human"] == len(run.human)
    assert report["overall"]["n_ai"] == len(run.ai)
    assert report["failed"] == []
    # One score per file, with the label of the folder it came from.
    assert sorted(s["path"] for s in report["scores"]) == sorted(str(p) for p in run.human + run.ai)
    labels = {s["path"]: s["label"] for s in report["scores"]}
    assert all(labels[str(p)] == "human" for p in run.human) and all(labels[str(p)] == "ai" for p in run.ai)
    # Metrics at the checkpoint's threshold as it was when the run started.
    assert report["overall"]["threshold"] == pytest.approx(run.threshold_before)
    check_overall_against_scores(report)
    assert report["model"]["architecture"] == "cnn"
    assert report["data"] == {"human_dir": str(run.human_dir), "ai_dir": str(run.ai_dir)}
    assert run.plot_path.read_bytes().startswith(PNG_SIGNATURE)
    assert run.plot_path.stat().st_size > 5000  # two drawn panels, not an empty image
    assert f"{len(run.human) + len(run.ai)} recordings scored ({len(run.human)} human, {len(run.ai)} AI), " \
           "0 failed" in run.stdout


def test_fit_threshold_is_stored_and_used_by_inference(folder_evaluation: FolderEvaluation):
    run = folder_evaluation
    assert run.code == 0, f"{run.stdout}\n{run.stderr}"
    report = run.report
    fitted = report["overall"]["eer_threshold_ai"]
    stored = read_checkpoint(run.weights)["info"]["threshold"]
    assert stored == pytest.approx(fitted, abs=1e-12)
    assert stored != pytest.approx(run.threshold_before, abs=1e-9)
    assert "(EER point) stored in" in run.stdout

    result = run_module("src.inference_CNN", *run.human, *run.ai, "--model", run.weights, "--device", "cpu",
                        "--format", "jsonl", "--no-progress")
    assert result.returncode == 0, describe(result)
    results = {r["name"]: r for r in map(json.loads, result.stdout.splitlines())}
    assert sorted(results) == sorted(str(p) for p in run.human + run.ai)
    evaluated = {s["path"]: s["p_ai"] for s in report["scores"]}
    for name, r in results.items():
        assert r["model"]["threshold"] == pytest.approx(fitted, abs=1e-12)
        assert r["Prediction"] == ("ai" if r["mean_ai_probability"] >= r["model"]["threshold"] else "human"), r
        assert r["mean_ai_probability"] == pytest.approx(evaluated[name], abs=1e-9)
    # The verdicts at the stored threshold reproduce the EER operating point of the evaluation.
    false_alarm = np.mean([results[str(p)]["Prediction"] == "ai" for p in run.human])
    miss = np.mean([results[str(p)]["Prediction"] == "human" for p in run.ai])
    assert (false_alarm + miss) / 2 == pytest.approx(report["overall"]["eer"])


def write_manifest(path: Path, rows: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["path", "label", "split", "system"])
        writer.writeheader()
        writer.writerows(rows)
    return path


def copy_into(folder: Path, sources: list[Path]) -> list[str]:
    """Copy files into `folder` (flat, names kept); return their paths relative to folder's parent."""
    folder.mkdir(parents=True, exist_ok=True)
    names = []
    for source in sources:
        shutil.copyfile(source, folder / source.name)
        names.append(f"{folder.name}/{source.name}")
    return names


def test_manifest_split_and_group_table(data_tree: DataTree, cnn_run: TrainingRun, tmp_path: Path):
    base = tmp_path / "set"
    ai = copy_into(base / "clips", data_tree.sources["ai"][:4])
    human = copy_into(base / "clips", data_tree.sources["human"][:3])
    rows = [
        {"path": ai[0], "label": "ai", "split": "test", "system": "sysA"},
        {"path": ai[1], "label": "AI", "split": "test", "system": "sysA"},
        {"path": ai[2], "label": "spoof", "split": "test", "system": "sysB"},
        {"path": human[0], "label": "human", "split": "test", "system": "bonafide"},
        {"path": human[1], "label": "bonafide", "split": "test", "system": "bonafide"},
        # Outside the split: a real file and a missing one; either would change the report if read.
        {"path": ai[3], "label": "ai", "split": "train", "system": "sysA"},
        {"path": human[2], "label": "human", "split": "train", "system": "bonafide"},
        {"path": "clips/not_there.wav", "label": "ai", "split": "train", "system": "sysC"},
    ]
    manifest = write_manifest(base / "manifest.csv", rows)
    weights = tmp_path / "cnn.pth"
    shutil.copyfile(cnn_run.output, weights)
    report_path = tmp_path / "report.json"
    code, out, err = evaluate_command("--weights", weights, "--manifest", manifest, "--split", "test",
                                      "--group-by", "system", "--report", report_path)
    assert code == 0, f"{out}\n{err}"
    assert read_checkpoint(weights)["info"]["threshold"] == read_checkpoint(cnn_run.output)["info"]["threshold"]
    report = json.loads(report_path.read_text())
    assert report["split"] == "test" and report["failed"] == []
    assert report_path.with_suffix(".png").read_bytes().startswith(PNG_SIGNATURE)
    scored = {Path(s["path"]).resolve(): s for s in report["scores"]}
    expected = {(base / r["path"]).resolve(): r for r in rows[:5]}
    assert set(scored) == set(expected)
    assert report["overall"]["n_ai"] == 3 and report["overall"]["n_human"] == 2
    check_overall_against_scores(report)

    table = {row["group"]: row for row in report["groups"]["system"]}
    assert sorted(table) == ["bonafide", "sysA", "sysB"]
    assert [table[g]["files"] for g in ("bonafide", "sysA", "sysB")] == [2, 2, 1]
    assert [table[g]["class"] for g in ("bonafide", "sysA", "sysB")] == ["human", "ai", "ai"]
    threshold = report["overall"]["threshold"]
    all_p = {label: np.array([s["p_ai"] for s in report["scores"] if s["label"] == label]) for label in ("ai", "human")}
    for group, row in table.items():
        members = [s for path, s in scored.items() if expected[path]["system"] == group]
        p = np.array([s["p_ai"] for s in members])
        assert row["mean_p_ai"] == pytest.approx(p.mean())
        correct = [(s["p_ai"] >= threshold) == (s["label"] == "ai") for s in members]
        assert row["accuracy_in_group"] == pytest.approx(np.mean(correct))
        # The group's files against every file of the other class.
        p_ai, p_human = (p, all_p["human"]) if row["class"] == "ai" else (all_p["ai"], p)
        assert round(row["eer"], 12) in brute_force_eers(p_human, p_ai)
        is_ai = np.r_[np.ones(len(p_ai), bool), np.zeros(len(p_human), bool)]
        assert row["roc_auc"] == pytest.approx(roc_auc_score(is_ai, np.r_[p_ai, p_human]))
    assert "sysA" in out and "bonafide" in out


def test_undecodable_file_is_listed_as_failed_and_exit_status_is_1(data_tree: DataTree, cnn_run: TrainingRun,
                                                                    tmp_path: Path):
    human_dir, ai_dir = tmp_path / "human", tmp_path / "ai"
    copy_into(human_dir, list_audio_files(data_tree.root / "validation_set" / "human_full"))
    copy_into(ai_dir, list_audio_files(data_tree.root / "validation_set" / "ai_full"))
    broken = ai_dir / "broken.wav"
    broken.write_bytes(np.random.default_rng(3).bytes(3000))
    report_path = tmp_path / "report.json"
    code, out, err = evaluate_command("--weights", cnn_run.output, "--human-dir", human_dir, "--ai-dir", ai_dir,
                                      "--report", report_path)
    assert code == 1, f"{out}\n{err}"
    report = json.loads(report_path.read_text())
    assert [f["path"] for f in report["failed"]] == [str(broken)]
    assert report["failed"][0]["label"] == AI
    assert "decod" in report["failed"][0]["error"]
    assert f"error: {broken}:" in err
    assert str(broken) not in {s["path"] for s in report["scores"]}
    assert report["overall"]["n_ai"] == len(list_audio_files(ai_dir)) - 1
    check_overall_against_scores(report)


def test_unknown_label_in_manifest_is_a_clear_error(data_tree: DataTree, cnn_run: TrainingRun, tmp_path: Path):
    clips = copy_into(tmp_path / "clips", [data_tree.sources["ai"][0], data_tree.sources["human"][0]])
    manifest = write_manifest(tmp_path / "manifest.csv", [
        {"path": clips[0], "label": "ai", "split": "test", "system": "x"},
        {"path": clips[1], "label": "maybe", "split": "test", "system": "y"},
    ])
    report_path = tmp_path / "report.json"
    code, out, err = evaluate_command("--weights", cnn_run.output, "--manifest", manifest, "--report", report_path)
    assert code == 2, f"{out}\n{err}"
    assert f"error: {manifest}: label 'maybe' is not ai/human" in err
    assert "Traceback" not in err
    assert not report_path.exists()


def test_fit_threshold_on_shipped_weights_is_refused_before_scoring(data_tree: DataTree, tmp_path: Path):
    shipped = Path(__file__).resolve().parent.parent / "pretrained_weights" / "CNN_Ai-SPY.pth"
    before = shipped.read_bytes()
    report_path = tmp_path / "report.json"
    code, out, err = evaluate_command("--weights", shipped, "--human-dir", data_tree.sources["human"][0].parent,
                                      "--ai-dir", data_tree.sources["ai"][0].parent, "--report", report_path,
                                      "--fit-threshold")
    assert code == 2, f"{out}\n{err}"
    assert "error: --fit-threshold:" in err and "checksummed" in err and "Traceback" not in err
    assert not report_path.exists()  # refused before any scoring
    assert shipped.read_bytes() == before


@pytest.mark.parametrize("args", [
    ["--manifest", "m.csv", "--human-dir", "h"],  # both ways of giving data
    ["--human-dir", "h"],  # a folder without its partner
    [],  # no data at all
])
def test_data_arguments_must_be_one_complete_way(args: list[str], capsys: pytest.CaptureFixture):
    from src.evaluate import main

    with pytest.raises(SystemExit) as exit_info:
        main(["--weights", "w.pth", *args])
    assert exit_info.value.code == 2
    assert "--human-dir" in capsys.readouterr().err


def test_detection_metrics_on_a_hand_counted_example():
    # 4 AI and 6 human files. At 0.5 (AI when P(AI) >= 0.5): AI called AI 3 (tp), human called AI 2 (fp, the
    # 0.5 included), AI called human 1 (fn), human called human 4 (tn).
    labels = np.array([AI, AI, AI, AI, HUMAN, HUMAN, HUMAN, HUMAN, HUMAN, HUMAN])
    p_ai = np.array([0.9, 0.8, 0.55, 0.2, 0.7, 0.5, 0.4, 0.3, 0.1, 0.05])
    m = detection_metrics(labels, p_ai, 0.5)
    assert (m["n_ai"], m["n_human"], m["threshold"]) == (4, 6, 0.5)
    assert m["precision_ai"] == pytest.approx(3 / 5)
    assert m["recall_ai"] == pytest.approx(3 / 4)
    assert m["f1_ai"] == pytest.approx(2 * 0.6 * 0.75 / 1.35)
    assert m["accuracy"] == pytest.approx(7 / 10)
    assert m["false_alarm_rate"] == pytest.approx(2 / 6)
    assert m["miss_rate"] == pytest.approx(1 / 4)
    assert m["mcc"] == pytest.approx((3 * 4 - 2 * 1) / math.sqrt(5 * 4 * 6 * 5))
    # Of the 24 (AI, human) pairs the AI file scores higher in 6 + 6 + 5 + 2 = 19.
    assert m["roc_auc"] == pytest.approx(19 / 24)
    # Above every score nothing is called AI.
    high = detection_metrics(labels, p_ai, 0.95)
    assert (high["precision_ai"], high["recall_ai"], high["f1_ai"], high["accuracy"]) == (0.0, 0.0, 0.0, 0.6)
    assert high["false_alarm_rate"] == 0.0 and high["miss_rate"] == 1.0


def test_detection_metrics_eer_by_hand():
    # Calling AI at P(AI) in (0.35, 0.6] misses one AI file (0.35) and falsely accuses one human (0.7):
    # both rates are 1/4, and no other threshold makes them equal.
    labels = np.array([AI, AI, AI, AI, HUMAN, HUMAN, HUMAN, HUMAN])
    p_ai = np.array([0.9, 0.8, 0.6, 0.35, 0.7, 0.3, 0.2, 0.1])
    m = detection_metrics(labels, p_ai, 0.5)
    assert m["eer"] == pytest.approx(0.25)
    assert 0.35 < m["eer_threshold_ai"] <= 0.6
    separable = detection_metrics(labels, np.array([0.9, 0.8, 0.6, 0.55, 0.5, 0.3, 0.2, 0.1]), 0.5)
    assert separable["eer"] == 0.0 and separable["roc_auc"] == 1.0
    assert 0.5 < separable["eer_threshold_ai"] <= 0.55


def test_detection_metrics_with_one_class_only():
    m = detection_metrics(np.array([AI, AI, AI]), np.array([0.2, 0.6, 0.9]), 0.5)
    assert math.isnan(m["eer"]) and math.isnan(m["roc_auc"]) and math.isnan(m["eer_threshold_ai"])
    assert m["recall_ai"] == pytest.approx(2 / 3) and m["precision_ai"] == 1.0


@pytest.mark.parametrize("seed", range(40))
def test_eer_threshold_gives_the_eer_when_applied_as_p_ai_at_or_above(seed: int):
    rng = np.random.default_rng(seed)
    n_ai, n_human = rng.integers(5, 60, 2)
    labels = np.r_[np.full(n_ai, AI), np.full(n_human, HUMAN)]
    # Overlapping classes; some scores rounded to 6 decimals as the inference commands report them.
    p_ai = np.r_[rng.beta(3, 2, n_ai), rng.beta(2, 3, n_human)]
    if seed % 2:
        p_ai = np.round(p_ai, 6)
    m = detection_metrics(labels, p_ai, 0.5)
    assert 0 < m["eer"] < 0.5
    false_alarm, miss = rates_at(p_ai[labels == HUMAN], p_ai[labels == AI], m["eer_threshold_ai"])
    assert (false_alarm + miss) / 2 == pytest.approx(m["eer"], abs=1e-12)
    # Both error rates are close to the EER: it is where they cross.
    step = 1 / min(n_ai, n_human)
    assert abs(false_alarm - m["eer"]) <= step and abs(miss - m["eer"]) <= step
    assert round(m["eer"], 12) in brute_force_eers(p_ai[labels == HUMAN], p_ai[labels == AI])


def test_a_threshold_at_a_reported_score_calls_that_file_ai(folder_evaluation: FolderEvaluation):
    """--fit-threshold picks one file's reported mean_ai_probability; inference must then call that file AI.

    The reported score is rounded; the verdict must follow the reported number, not the unrounded one.
    """
    from src.inference import Detector

    detector = Detector(folder_evaluation.weights, device="cpu")
    for path in folder_evaluation.human + folder_evaluation.ai:
        reported = detector.analyse(path)["mean_ai_probability"]
        detector.info.threshold = reported
        at = detector.analyse(path)
        assert at["Prediction"] == "ai", (path, reported)
        detector.info.threshold = float(np.nextafter(reported, 1.0))
        assert detector.analyse(path)["Prediction"] == "human", (path, reported)
        assert at["Percent_AI"] == pytest.approx(
            100 * np.mean([w["ai_probability"] >= reported for w in at["windows"]]), abs=0.01)
