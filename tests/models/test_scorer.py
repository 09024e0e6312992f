"""A saved scorer is plain files that load back to the same predictions."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from models.boosted import BOOSTER_FILE
from models.calibration import fit_platt
from models.grades import GradeCutoffs
from models.scorer import SCORER_FILE, Scorer, ScorerFormatError
from tests.models.conftest import KINDS


@pytest.fixture(scope="module", params=KINDS)
def scorer(request: pytest.FixtureRequest, scorers: dict[str, Scorer]) -> Scorer:
    return scorers[request.param]


def test_save_and_load_give_identical_scores(scorer: Scorer, tmp_path: Path) -> None:
    leads = [{"source": "referral", "page_views": 12, "demo_requested": True}, {"country": "IN"}]
    scorer.save(tmp_path / "scorer")
    again = Scorer.load(tmp_path / "scorer")
    assert again.score(leads) == scorer.score(leads)
    assert again.card == scorer.card and again.encoder == scorer.encoder
    assert again.model.kind == scorer.model.kind


def test_load_refuses_another_format_version(scorer: Scorer, tmp_path: Path) -> None:
    scorer.save(tmp_path)
    document = json.loads((tmp_path / SCORER_FILE).read_text())
    (tmp_path / SCORER_FILE).write_text(json.dumps(document | {"format_version": 99}))
    with pytest.raises(ScorerFormatError, match="format 99"):
        Scorer.load(tmp_path)


def test_load_names_a_damaged_document(scorer: Scorer, tmp_path: Path) -> None:
    scorer.save(tmp_path)
    document = json.loads((tmp_path / SCORER_FILE).read_text())
    del document["encoder"]["columns"]
    (tmp_path / SCORER_FILE).write_text(json.dumps(document))
    with pytest.raises(ScorerFormatError, match="cannot load scorer"):
        Scorer.load(tmp_path)


def test_load_names_a_missing_file(scorers: dict[str, Scorer], tmp_path: Path) -> None:
    scorers["lightgbm"].save(tmp_path)
    (tmp_path / BOOSTER_FILE).unlink()
    with pytest.raises(ScorerFormatError, match="cannot load scorer"):
        Scorer.load(tmp_path)


def test_a_likelier_lead_never_gets_a_lower_score_or_grade(scorer: Scorer) -> None:
    leads = [
        {"source": source, "page_views": views, "demo_requested": demo}
        for source in ("referral", "outbound", "content_download")
        for views in (0, 5, 40)
        for demo in (False, True)
    ]
    ranked = sorted(scorer.score(leads), key=lambda s: s.probability)
    assert [s.score for s in ranked] == sorted(s.score for s in ranked)
    assert [s.grade for s in ranked] == sorted((s.grade for s in ranked), reverse=True)
    assert len({s.score for s in ranked}) > 1, "all leads scored alike: nothing was compared"


def test_grade_cutoffs_are_absolute_and_ordered() -> None:
    cutoffs = GradeCutoffs(a=0.5, b=0.3, c=0.1)
    grades = [cutoffs.grade(p) for p in (0.05, 0.1, 0.29, 0.3, 0.49, 0.5, 0.99)]
    assert grades == ["D", "C", "C", "B", "B", "A", "A"]
    assert GradeCutoffs.from_dict(cutoffs.to_dict()) == cutoffs
    with pytest.raises(ValueError, match="0 < C < B < A < 1"):
        GradeCutoffs(a=0.2, b=0.3, c=0.1)


def test_platt_scaling_recovers_a_known_sigmoid() -> None:
    rng = np.random.default_rng(3)
    margin = rng.normal(size=50_000)
    y = rng.random(50_000) < 1 / (1 + np.exp(-(0.6 * margin - 1.2)))
    calibration = fit_platt(margin, y.astype(int))
    assert calibration.slope == pytest.approx(0.6, abs=0.05)
    assert calibration.intercept == pytest.approx(-1.2, abs=0.05)


def test_a_model_that_ranks_backwards_predicts_the_base_rate() -> None:
    """A negative slope would reverse the ranking and every explanation's sign."""
    rng = np.random.default_rng(4)
    margin = rng.normal(size=5_000)
    y = (rng.random(5_000) < 1 / (1 + np.exp(margin))).astype(int)  # higher margin, fewer wins
    calibration = fit_platt(margin, y)
    assert calibration.slope == 0.0
    assert calibration.probability(np.array([-3.0, 3.0])) == pytest.approx([y.mean()] * 2)
