"""The gate before serving: is the fine-tuned model at least as good as what it replaces, beyond the noise?

    rule = GateRule.load(Path("gate.yaml"), max_drop=0.02)   # or GateRule() for the default
    result = apply_gate(report, rule)                        # GateResult(passed, reasons with the numbers)

`onboard serve` and `onboard deploy` find a model's last evaluation by its fingerprint
(`latest_evaluation(ws_reports, model_fingerprint(model_dir))`) and refuse it when that evaluation failed.
"""

from __future__ import annotations

import hashlib
import logging
from datetime import datetime, timezone
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from evaluation import format as fmt
from evaluation.errors import BadGateRule, MissingSystem, NotAModel
from evaluation.results import SYSTEMS, Comparison, EvalReport, GateResult, SystemSummary
from rag.errors import BadContract

logger = logging.getLogger(__name__)


class GateRule(BaseModel):
    """When a fine-tuned model may be served. Scores and tolerances are fractions (0.02 = 2 points)."""

    model_config = ConfigDict(extra="forbid")

    candidate: str = "tuned+rag"
    """The system to be served: the fine-tuned model with retrieval."""
    baseline: str = "base+rag"
    """What it must not be worse than: the base model with the same retrieval."""
    metric: str = "facts"
    """The correctness metric compared (key-fact containment: numbers and names kept exact)."""
    max_drop: float = Field(0.0, ge=0, le=1)
    """Fail when the whole interval of candidate − baseline lies below −max_drop: worse beyond the noise
    (and beyond this allowance). 0: any decline the data can tell from chance fails."""
    edge_tolerance: float = Field(0.0, ge=0, le=1)
    """How much lower the candidate's edge-case pass rate may be than the baseline's. 0: not lower at all."""

    @field_validator("candidate", "baseline")
    @classmethod
    def _known_system(cls, v: str) -> str:
        if v not in SYSTEMS:
            raise ValueError(f"{v!r} is not a system; the systems are {', '.join(SYSTEMS)}")
        return v

    @classmethod
    def load(cls, path: Path | None = None, **overrides: object) -> GateRule:
        """The defaults, updated by the YAML (or JSON) mapping in `path`, then by `overrides` that are not None.

        Raises:
            BadGateRule: the file is unreadable or not a mapping, or a key is unknown or out of range
                (the file and the key are named).
        """
        data: dict = {}
        where = "gate rule"
        if path is not None:
            where = str(path)
            try:
                loaded = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
            except (OSError, yaml.YAMLError) as e:
                raise BadGateRule(f"{path}: not a readable gate rule ({str(e).splitlines()[0]}).") from None
            if not isinstance(loaded, dict | None):
                raise BadGateRule(f"{path}: a gate rule is a mapping of {', '.join(cls.model_fields)}.")
            data.update(loaded or {})
        data.update({k: v for k, v in overrides.items() if v is not None})
        try:
            return cls.model_validate(data)
        except ValidationError as e:
            problems = "; ".join(f"{'.'.join(map(str, err['loc'])) or 'rule'}: {err['msg'].removeprefix('Value error, ')}"
                                 for err in e.errors())
            raise BadGateRule(f"{where}: {problems}. The keys are {', '.join(cls.model_fields)}; max_drop and "
                              "edge_tolerance are fractions (0.02 = 2 points).") from None


def _system(report: EvalReport, name: str, rule: GateRule) -> SystemSummary:
    s = report.system(name)
    if s is None:
        have = ", ".join(x.name for x in report.systems) or "none"
        raise MissingSystem(f"the gate compares {rule.candidate} with {rule.baseline}, but this evaluation has no "
                            f"{name} (it has: {have}). Run `onboard eval` with both systems, or change the gate rule.")
    if rule.metric not in s.metrics:
        raise BadGateRule(f"the gate's metric {rule.metric!r} was not measured for {name} (it has: "
                          f"{', '.join(s.metrics) or 'none'}); set the rule's metric to one of them.")
    return s


def _comparison(report: EvalReport, rule: GateRule) -> Comparison:
    for c in (c for c in report.comparisons if c.language is None):
        if (c.a, c.b, c.metric) == (rule.candidate, rule.baseline, rule.metric):
            return c
        if (c.a, c.b, c.metric) == (rule.baseline, rule.candidate, rule.metric):
            return Comparison(a=c.b, b=c.a, metric=c.metric, diff=-c.diff, low=-c.high, high=-c.low)
    raise BadGateRule(f"the evaluation holds no paired comparison of {rule.candidate} and {rule.baseline} on "
                      f"{rule.metric}, which the gate needs to tell a decline from noise; choose a compared metric "
                      "or run `onboard eval` again.")


def _metric_condition(cand: SystemSummary, base: SystemSummary, c: Comparison, rule: GateRule) -> tuple[bool, str]:
    head = (f"{cand.name} {rule.metric} {fmt.pct(cand.metrics[rule.metric].mean)} vs {base.name} "
            f"{fmt.pct(base.metrics[rule.metric].mean)}: {fmt.difference(c.diff, c.low, c.high)}")
    allowance = f" of {rule.max_drop * 100:.1f} points" if rule.max_drop else ""
    if c.high < -rule.max_drop:
        return False, f"{head}, worse beyond the noise" + (f" and the allowed drop{allowance}" if allowance else "")
    if c.noise:
        return True, f"{head}, within the noise"
    if c.low > 0:
        return True, f"{head}, better beyond the noise"
    return True, f"{head}, worse beyond the noise but within the allowed drop{allowance}"


def _edge_condition(cand: SystemSummary, base: SystemSummary, rule: GateRule) -> tuple[bool, str]:
    cr, br = cand.edge_pass_rate, base.edge_pass_rate
    if cr is None or br is None:
        missing = " and ".join(s.name for s in (cand, base) if s.edge_pass_rate is None)
        return True, f"edge cases were not run for {missing}: the edge-case pass rate was not checked"
    head = f"{cand.name} edge-case pass rate {fmt.pct(cr)} vs {base.name} {fmt.pct(br)}: {fmt.points(cr - br)} points"
    if br - cr <= rule.edge_tolerance + 1e-9:
        return True, f"{head}, {'not lower' if cr >= br else 'lower but within the allowed'}" + (
            f" {rule.edge_tolerance * 100:.1f} points" if cr < br else "")
    lower = [f"{k} {fmt.pct(cand.edge_by_category.get(k))} vs {fmt.pct(v)}" for k, v in base.edge_by_category.items()
             if cand.edge_by_category.get(k, 0.0) < v]
    return False, (f"{head}, lower by more than the allowed {rule.edge_tolerance * 100:.1f} points"
                   + (f" (lower on {'; '.join(lower)})" if lower else ""))


def apply_gate(report: EvalReport, rule: GateRule) -> GateResult:
    """Whether `rule.candidate` may replace `rule.baseline`, with each condition's numbers in words.

    Raises:
        MissingSystem: the report lacks a system the rule names.
        BadGateRule: the report did not measure the rule's metric, or holds no paired comparison for it.
    """
    cand, base = _system(report, rule.candidate, rule), _system(report, rule.baseline, rule)
    conditions = [_metric_condition(cand, base, _comparison(report, rule), rule), _edge_condition(cand, base, rule)]
    return GateResult(passed=all(ok for ok, _ in conditions), reasons=[why for _, why in conditions])


def _created(report: EvalReport, path: Path) -> float:
    try:
        when = datetime.fromisoformat(report.created.replace("Z", "+00:00"))
    except ValueError:
        return path.stat().st_mtime
    return (when if when.tzinfo else when.replace(tzinfo=timezone.utc)).timestamp()


def latest_evaluation(reports_dir: Path, fingerprint: str) -> EvalReport | None:
    """The newest (by `created`) `reports_dir/*/eval.json` whose tuned model has `fingerprint`; None when
    there is none. Unreadable reports are skipped with a warning naming them."""
    found: list[tuple[float, float, EvalReport]] = []
    for path in sorted(Path(reports_dir).glob("*/eval.json")):
        try:
            report = EvalReport.read(path)
        except BadContract as e:
            logger.warning("skipping %s", e)
            continue
        if report.provenance.tuned_fingerprint == fingerprint:
            found.append((_created(report, path), path.stat().st_mtime, report))
    return max(found, key=lambda t: t[:2])[2] if found else None


MIB = 1 << 20
SAMPLES = 8
"""1 MiB blocks read at evenly spaced offsets inside each weights file, besides its first and last MiB."""
BEHAVIOUR_FILES = ("config.json", "generation_config.json", "tokenizer_config.json", "tokenizer.json",
                   "chat_template.jinja")
"""Small files hashed whole: they change what the same weights say (architecture, EOS, chat template)."""


def model_fingerprint(model_dir: Path) -> str:
    """What identifies a model folder, for finding its last evaluation: sha256 over each `*.safetensors`
    file's name and size, its first and last MiB (the header, with every tensor's name, dtype, shape and
    offset, then the first and last tensors' bytes) and 1 MiB at `SAMPLES` evenly spaced offsets, plus the
    bytes of the `BEHAVIOUR_FILES` present.

    Not a full hash, because this runs at every `onboard serve`: hashing 2.5 GB (15 GB for a 7B model) takes
    tens of seconds from a cold disk, this reads ~10 MiB per file. It identifies, it does not seal: an edit
    confined to bytes outside the sampled blocks, keeping the size, goes unseen (a merged fine-tune changes
    tensors throughout every layer, so it does not).

    Raises:
        NotAModel: the folder holds no `*.safetensors` file.
    """
    model_dir = Path(model_dir)
    weights = sorted(model_dir.glob("*.safetensors"))
    if not weights:
        raise NotAModel(f"{model_dir}: no *.safetensors weights to fingerprint; pass a model folder such as the "
                        "one `onboard merge` writes.")
    h = hashlib.sha256(b"onboard-model-fingerprint-v1\0")
    for path in weights:
        size = path.stat().st_size
        h.update(f"{path.name}\0{size}\0".encode())
        offsets = [0, *(size * i // (SAMPLES + 1) for i in range(1, SAMPLES + 1)), max(0, size - MIB)]
        with path.open("rb") as f:
            for off in offsets:
                f.seek(off)
                h.update(f.read(MIB))
    for name in BEHAVIOUR_FILES:
        path = model_dir / name
        if path.is_file():
            h.update(f"{name}\0{path.stat().st_size}\0".encode())
            h.update(path.read_bytes())
    return h.hexdigest()
