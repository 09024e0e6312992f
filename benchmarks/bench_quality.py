"""`make bench-quality`: model quality on the demo funnel and on two real CRM exports.

For each dataset: a fresh SQLite store, the same import or seeding a user would do, one
training run, and every model's metrics on the time-ordered holdout (censoring-weighted),
with the leaks the guard excluded. The demo funnel also gets the best achievable AUC (from the
generator's true probabilities) and a shuffled-label challenger that must not be promoted.
Writes `reports/bench/quality.md`.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from sklearn.metrics import roc_auc_score
from sqlalchemy.orm import Session, sessionmaker

from benchmarks import datasets
from benchmarks.common import KEY, NOW, SHARED, TABLES, machine, scratch_store, write_table
from features.schema import DEMO_SCHEMA_PATH, LeadSchema, load_schema
from models.registry import LoadedScorer
from store.demo_funnel import generate_demo_funnel, load_demo_funnel
from store.importing import ImportRequest, import_file
from store.repository import TrainingFrames, training_frames
from training.dataset import AS_OF, LABEL, WEIGHT, shuffle_outcomes_before
from training.pipeline import TrainedCandidate, TrainingConfig, train_candidate
from training.promotion import gate

DEMO_SEEDS = (0, 1, 2, 3, 4)


@dataclass(frozen=True)
class Result:
    name: str
    candidate: TrainedCandidate
    challenger: str
    promoted: bool
    seconds: float
    best_achievable: float | None = None


def _run(
    name: str, load: Callable[[sessionmaker[Session], Path], LeadSchema]
) -> tuple[Result, TrainingFrames]:
    with tempfile.TemporaryDirectory() as tmp:
        sessions = scratch_store(Path(tmp))
        schema = load(sessions, Path(tmp))
        started = time.perf_counter()
        with sessions() as session:
            frames = training_frames(session)
        candidate = train_candidate(frames, schema, TrainingConfig(), NOW)
        judged = gate(candidate, None)
        seconds = time.perf_counter() - started
        sessions.kw["bind"].dispose()
    challenger = judged.candidate
    return Result(name, challenger, challenger.chosen, judged.decision.promote, seconds), frames


def demo(seed: int) -> tuple[Result, TrainingFrames]:
    funnel = generate_demo_funnel(seed=seed)
    schema = load_schema(DEMO_SCHEMA_PATH)

    def load(sessions: sessionmaker[Session], _: Path) -> LeadSchema:
        with sessions.begin() as session:
            load_demo_funnel(session, funnel, schema, KEY, NOW)
        return schema

    result, frames = _run(f"demo funnel (seed {seed})", load)
    holdout = result.candidate.holdout
    best = roc_auc_score(
        holdout[LABEL],
        funnel.true_probability[holdout["lead_id"]],
        sample_weight=holdout[WEIGHT],
    )
    return Result(**{**result.__dict__, "best_achievable": float(best)}), frames


def imported(name: str, request: Callable[[Path], ImportRequest]) -> Result:
    def load(sessions: sessionmaker[Session], directory: Path) -> LeadSchema:
        return import_file(request(directory), sessions, KEY, NOW).schema

    return _run(name, load)[0]


def shuffled_challenger(champion: TrainedCandidate, frames: TrainingFrames) -> str:
    """Train on labels shuffled among the older leads; judge on the true holdout."""
    cutoff = champion.holdout[AS_OF].min()
    noisy = train_candidate(
        shuffle_outcomes_before(frames, cutoff), champion.scorer.schema, TrainingConfig(), NOW
    )
    loaded = LoadedScorer(champion.scorer, version="demo champion", run_id="")
    decision = gate(noisy, loaded).decision
    verdict = "promoted (a failure)" if decision.promote else "not promoted"
    return f"{verdict}: {decision.reason}"


def _model_rows(result: Result) -> list[str]:
    evaluations = result.candidate.evaluations
    rows = []
    for label, name in (
        (f"**model** ({result.challenger})", result.challenger),
        ("logistic regression", "logistic_regression"),
        ("rules score", "rules"),
        ("base rate", "base_rate"),
    ):
        m = evaluations[name].metrics
        rows.append(
            f"| {label} | {m['roc_auc']:.4f} | {m['pr_auc']:.4f} | {m['ece']:.4f} "
            f"| {m['lift_at_10']:.2f} |"
        )
    return rows


def _section(result: Result) -> list[str]:
    card = result.candidate.card
    leaks = card.excluded_fields
    lines = [
        f"### {result.name}",
        "",
        f"{card.n_train:,} training leads, {card.n_holdout:,} holdout leads; "
        f"trained and compared in {result.seconds:.1f} s; "
        f"{'promoted' if result.promoted else 'not promoted'} against the baselines.",
        "",
        f"Leaks excluded: {', '.join(f'`{x}`' for x in leaks) if leaks else 'none'}.",
        "",
        "| on the time-ordered holdout | ROC AUC | PR AUC | ECE | lift at 10% |",
        "| --- | ---: | ---: | ---: | ---: |",
        *_model_rows(result),
    ]
    if result.best_achievable is not None:
        lines.append(
            f"| best achievable (true probabilities) | {result.best_achievable:.4f} | | | |"
        )
    return [*lines, ""]


def main() -> None:
    started = time.perf_counter()
    demos = [demo(seed) for seed in DEMO_SEEDS]
    sections = [_section(demos[0][0])]
    seed_rows = []
    for result, _ in demos:
        m = result.candidate.evaluations
        auc = m[result.challenger].metrics["roc_auc"]
        seed_rows.append(
            f"| {result.name} | {result.challenger} | {auc:.4f} "
            f"| {m['logistic_regression'].metrics['roc_auc']:.4f} "
            f"| {m['rules'].metrics['roc_auc']:.4f} | {result.best_achievable:.4f} "
            f"| {result.best_achievable - auc:.4f} | {m[result.challenger].metrics['ece']:.4f} "
            f"| {'yes' if result.promoted else 'no'} |"
        )
    shuffled = shuffled_challenger(demos[0][0].candidate, demos[0][1])
    if SHARED.is_dir():
        sections.append(_section(imported("X Education (Leads.csv)", datasets.x_education)))
        sections.append(_section(imported("Maven CRM (sales_pipeline.csv)", datasets.maven_crm)))
    else:
        sections.append([f"X Education and Maven CRM skipped: {SHARED} is absent.", ""])
    text = [
        "# Model quality benchmark",
        "",
        f"Written by `make bench-quality` on {datetime.now(UTC):%Y-%m-%d %H:%M} UTC in "
        f"{time.perf_counter() - started:.0f} s. Machine: {machine()}.",
        "",
        "Every figure is on the time-ordered holdout (the newest 20% of closed leads), with "
        "censoring weights, after the leakage guard; the model is the run's challenger after "
        "the promotion gate's comparison with the baselines (no champion).",
        "",
        *[line for section in sections for line in section],
        "### Demo funnel over seeds",
        "",
        "| funnel | model | model AUC | logistic regression | rules | best achievable "
        "| gap to best | ECE | promoted |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
        *seed_rows,
        "",
        f"A challenger trained on shuffled labels (seed 0, judged on the true holdout against "
        f"the seed-0 model as champion): {shuffled}.",
        "",
    ]
    write_table(TABLES / "quality.md", text)


if __name__ == "__main__":
    main()
