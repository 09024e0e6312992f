"""`make bench-quality`: model quality on the demo funnel and on two real CRM exports.

For each dataset: a fresh SQLite store, the same import or seeding a user would do, one
training run, and every model's metrics on the time-ordered holdout (censoring-weighted),
with the leaks the guard excluded. The demo funnel also gets the best achievable AUC (from the
generator's true probabilities) and a shuffled-label challenger that must not be promoted.
Then the rolling-origin evaluation (`benchmarks.rolling_origin`): several time cuts per
dataset, the served model against an independent logistic regression on the leads after each.
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

from benchmarks import datasets, rolling_origin
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


@dataclass(frozen=True)
class Store:
    """A dataset as training reads it, kept after its scratch store is gone: the holdout run
    and every cut of the rolling origin start from the same frames."""

    name: str
    frames: TrainingFrames
    schema: LeadSchema


def _load(name: str, load: Callable[[sessionmaker[Session], Path], LeadSchema]) -> Store:
    with tempfile.TemporaryDirectory() as tmp:
        sessions = scratch_store(Path(tmp))
        schema = load(sessions, Path(tmp))
        with sessions() as session:
            frames = training_frames(session)
        sessions.kw["bind"].dispose()
    return Store(name, frames, schema)


def _run(store: Store) -> Result:
    started = time.perf_counter()
    candidate = train_candidate(store.frames, store.schema, TrainingConfig(), NOW)
    judged = gate(candidate, None)
    seconds = time.perf_counter() - started
    challenger = judged.candidate
    return Result(store.name, challenger, challenger.chosen, judged.decision.promote, seconds)


def demo(seed: int) -> tuple[Result, Store]:
    funnel = generate_demo_funnel(seed=seed)
    schema = load_schema(DEMO_SCHEMA_PATH)

    def load(sessions: sessionmaker[Session], _: Path) -> LeadSchema:
        with sessions.begin() as session:
            load_demo_funnel(session, funnel, schema, KEY, NOW)
        return schema

    store = _load(f"demo funnel (seed {seed})", load)
    result = _run(store)
    holdout = result.candidate.holdout
    best = roc_auc_score(
        holdout[LABEL],
        funnel.true_probability[holdout["lead_id"]],
        sample_weight=holdout[WEIGHT],
    )
    return Result(**{**result.__dict__, "best_achievable": float(best)}), store


def imported(name: str, request: Callable[[Path], ImportRequest]) -> tuple[Result, Store]:
    def load(sessions: sessionmaker[Session], directory: Path) -> LeadSchema:
        return import_file(request(directory), sessions, KEY, NOW).schema

    store = _load(name, load)
    return _run(store), store


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


def _names(fields: list[str]) -> str:
    return ", ".join(f"`{x}`" for x in fields) if fields else "none"


def _section(result: Result) -> list[str]:
    candidate = result.candidate
    card = candidate.card
    leaks = [leak.field for leak in candidate.leaks if leak.excluded]
    proxies = [
        p.field
        for p in candidate.facts.time_proxies
        if p.model_kind == result.challenger and p.excluded
    ]
    lines = [
        f"### {result.name}",
        "",
        f"{card.n_train:,} training leads, {card.n_holdout:,} holdout leads; "
        f"trained and compared in {result.seconds:.1f} s; "
        f"{'promoted' if result.promoted else 'not promoted'} against the baselines.",
        "",
        f"Leaks excluded: {_names(leaks)}. Time proxies the {result.challenger} does "
        f"without: {_names(proxies)}.",
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


def _seed_row(result: Result) -> str:
    m = result.candidate.evaluations
    auc = m[result.challenger].metrics["roc_auc"]
    best = result.best_achievable or float("nan")
    return (
        f"| {result.name} | {result.challenger} | {auc:.4f} "
        f"| {m['logistic_regression'].metrics['roc_auc']:.4f} "
        f"| {m['rules'].metrics['roc_auc']:.4f} | {best:.4f} "
        f"| {best - auc:.4f} | {m[result.challenger].metrics['ece']:.4f} "
        f"| {'yes' if result.promoted else 'no'} |"
    )


def _rolling_origin_section(stores: list[Store]) -> list[str]:
    """Every cut of every dataset, with what the method is, timed."""
    started = time.perf_counter()
    results = {
        store.name: rolling_origin.rolling_origin(store.frames, store.schema) for store in stores
    }
    tables = [rolling_origin.table(name, cuts) for name, cuts in results.items()]
    shares = ", ".join(f"{share:.0%}" for share in rolling_origin.CUT_SHARES)
    return [
        "## Rolling origin: the served model against an independent logistic regression",
        "",
        f"Each dataset is cut at the leads at {shares} of its closed leads in the order their "
        "features were known. At each cut a training run sees only what the store knew then "
        "(leads created, outcomes occurred and snapshots scored before the cut; a lead created "
        "before it without an outcome before it is open; lead rows as last stored) and is "
        "judged on the closed leads whose features were known from that cut to the next (the "
        "last slice runs to the end), with censoring weights computed on the whole dataset. "
        "X Education has no dates: its times are row positions one second apart, and each "
        "lead closes when it is created. Open leads without a date are dated at the import "
        "(Maven's deals still prospecting), after every cut, so no cut sees them.",
        "",
        "- **served**: the gate's choice (no champion), refit on every lead closed before the "
        "cut as `leadloop train` registers it; **not refit**: the same model as the gate "
        "judged it. Their difference is the forward test of the refit: the gate selects on "
        "the run's own holdout, the comparison is on leads after the cut. **settled**: the "
        "newest leads (the run's holdout) old enough for their outcomes to be in, whose win "
        "rate the refit's intercept followed; 0 when too few were and the validation's "
        "calibration was kept. *Not promoted*: "
        "the gate found it not clearly better than the best baseline, so with no champion the "
        "service would have served the rules score.",
        "- **independent LR**: scikit-learn alone, fitted on the same leads (every lead "
        "closed before the cut, censoring-weighted as the run weights them) with every schema "
        "field known at scoring time except the leaks the run's guard excluded (time-proxy "
        "decisions do not apply to it): one-hot categories and booleans (missing a level, "
        f"levels under {rolling_origin.MIN_CATEGORY_COUNT} leads grouped), numbers "
        "median-imputed with a missing flag and standardised, `LogisticRegression()`.",
        "- **rules**: the run's points score; **base rate**: the training win rate, a constant.",
        f"- A cut fails when the served AUC is more than {rolling_origin.TOLERANCE} below "
        "the independent LR's. `s`: seconds to train, refit and judge the cut.",
        "",
        rolling_origin.verdict(results),
        "",
        *[line for lines in tables for line in lines],
        f"The rolling origin took {time.perf_counter() - started:.0f} s in all.",
        "",
    ]


def main() -> None:
    started = time.perf_counter()
    demos = [demo(seed) for seed in DEMO_SEEDS]
    sections = [_section(demos[0][0])]
    stores = [demos[0][1]]
    shuffled = shuffled_challenger(demos[0][0].candidate, demos[0][1].frames)
    if SHARED.is_dir():
        for name, request in (
            ("X Education (Leads.csv)", datasets.x_education),
            ("Maven CRM (sales_pipeline.csv)", datasets.maven_crm),
        ):
            result, store = imported(name, request)
            sections.append(_section(result))
            stores.append(store)
    else:
        sections.append([f"X Education and Maven CRM skipped: {SHARED} is absent.", ""])
    rolling = _rolling_origin_section(stores)
    text = [
        "# Model quality benchmark",
        "",
        f"Written by `make bench-quality` on {datetime.now(UTC):%Y-%m-%d %H:%M} UTC in "
        f"{time.perf_counter() - started:.0f} s. Machine: {machine()}.",
        "",
        "## One training run: the time-ordered holdout",
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
        *[_seed_row(result) for result, _ in demos],
        "",
        f"A challenger trained on shuffled labels (seed 0, judged on the true holdout against "
        f"the seed-0 model as champion): {shuffled}.",
        "",
        *rolling,
    ]
    write_table(TABLES / "quality.md", text)


if __name__ == "__main__":
    main()
