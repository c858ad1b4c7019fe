"""The after-action review: a YAML file beside the report (`review.yaml`), edited by people,
signed like the report (SSHSIG over its exact bytes, namespace drill-review-v1) and bound to the
report by its SHA-256. Its JSON Schema is schemas/review.schema.json.

One corrective action per finding (more may be added by hand). An action is closed only by
evidence: `done` needs a `retest` closure (a later drill, verified, whose report shows the
objective met) and `risk-accepted` a `risk-acceptance` closure (a document signed by a principal
the trust file allows for that role). Every status change is appended to the action's history.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

REVIEW_FILE = "review.yaml"
REVIEW_NAMESPACE = "drill-review-v1"
RISK_NAMESPACE = "drill-risk-acceptance-v1"

ActionStatus = Literal["open", "in-progress", "done", "risk-accepted"]
OPEN_STATUSES: tuple[str, ...] = ("open", "in-progress")
# HSEEP's improvement-plan rating of a capability (here: an objective of an asset)
Rating = Literal["P", "S", "M", "U"]  # performed without / with some / with major challenges / unable
RATINGS: dict[str, str] = {
    "P": "performed without challenges",
    "S": "performed with some challenges",
    "M": "performed with major challenges",
    "U": "unable to be performed",
}


@dataclass(frozen=True, slots=True)
class Retest:
    """Closed by a later drill: its evidence verified and its report shows the objective met."""

    run_id: str
    report_sha256: str
    verified_utc: str  # when drill verified it, UTC ISO 8601 with offset


@dataclass(frozen=True, slots=True)
class RiskAcceptance:
    """Closed by a signed risk acceptance: a document beside the review, signed by `principal`."""

    file: str  # e.g. risk-A-003.yaml, beside review.yaml
    sha256: str  # of that file's bytes
    principal: str  # who signed it (its .sig is FILE.<principal>.sig)
    reason: str


@dataclass(frozen=True, slots=True)
class StatusChange:
    utc: str
    status: ActionStatus
    by: str  # who made the change (a principal or a name)
    note: str = ""


@dataclass(frozen=True, slots=True)
class Action:
    """A corrective action: what is to be done about one finding, by whom, by when."""

    id: str  # A-001 ...
    finding: str  # the report finding it answers (F-001 ...), "" for one added by hand
    title: str
    severity: str  # critical | high | medium | low | info
    asset: str = ""  # the asset and objective a retest must show met ("" when not an objective)
    objective: str = ""  # rto | rpo | ""
    root_cause: str = ""
    owner: str = ""
    due: str = ""  # YYYY-MM-DD, in the review's time zone
    status: ActionStatus = "open"
    ticket: str = ""  # a ticket key or URL (drill review export fills it)
    closure: Retest | RiskAcceptance | None = None
    history: tuple[StatusChange, ...] = ()


@dataclass(frozen=True, slots=True)
class ObjectiveRating:
    asset: str
    objective: str  # rto | rpo
    rating: Rating | Literal[""] = ""  # "" until the review rates it
    note: str = ""


@dataclass(frozen=True, slots=True)
class ReviewParticipant:
    name: str
    role: str


@dataclass(frozen=True, slots=True)
class Review:
    run_id: str
    report_id: str
    report_sha256: str
    playbook: str
    quarter: str
    time_zone: str  # IANA zone in which due dates are days (e.g. Europe/Berlin)
    prepared_utc: str
    participants: tuple[ReviewParticipant, ...] = ()
    objectives: tuple[ObjectiveRating, ...] = ()
    actions: tuple[Action, ...] = ()
    lessons: tuple[str, ...] = ()
