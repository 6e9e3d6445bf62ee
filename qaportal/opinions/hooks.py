"""What second opinions add to other pages: a study-page action and a home panel."""

from __future__ import annotations

from datetime import datetime

from flask import url_for

from qaportal.home.panels import panel
from qaportal.models import Study, User, utcnow
from qaportal.models.opinion import AGREEMENT_LABELS, COVERAGE_LABELS
from qaportal.opinions import bp
from qaportal.opinions.queries import active_sent_count, worklist
from qaportal.opinions.sla import sla_state
from qaportal.permissions import can_request_opinion
from qaportal.studies.actions import StudyAction, study_action


@study_action
def _ask_for_opinion(user: User, study: Study, mode: str) -> list[StudyAction]:
    if mode == "full" and can_request_opinion(user, study):
        return [StudyAction("Ask for a second opinion",
                            url_for("opinions.new", study_id=study.id), primary=True)]
    return []


# The panel reads the first this many of each list ("20+ waiting" beyond).
PANEL_PAGE = 20


@panel("Second opinions", "opinions/panel.html", ("radiologist",), order=10)
def _panel(user: User) -> dict:
    # What the user sent only counts here ("N of your own requests still open"): counted in
    # the database, not loaded with each request's study, reader and declines.
    lists = worklist(user, size=PANEL_PAGE, with_sent=False)
    work = sorted(lists.mine + lists.pool, key=lambda r: r.due_at)
    more = any(lists.pages[p].older for p in ("cursor", "pool") if p in lists.pages)
    return {
        "work": work[:6], "total": len(work), "more": more,
        "overdue": sum(1 for r in work if sla_state(r) == "overdue"),
        "waiting": active_sent_count(user, PANEL_PAGE),
        "sla_state": sla_state,
    }


def countdown_text(due: datetime, now: datetime | None = None, *, lead: bool = False) -> str:
    """Return the time left until due as '2 d 4 h', '3 h 05 min', '12 min' or 'overdue 7 min';
    with lead, as a phrase: 'Due in 3 h 05 min' or 'Overdue by 7 min'."""
    seconds = int((due - (now or utcnow())).total_seconds())
    late, seconds = seconds < 0, abs(seconds)
    minutes = seconds // 60
    days, hours, mins = minutes // 1440, (minutes % 1440) // 60, minutes % 60
    if days:
        text = f"{days} d {hours} h"
    elif hours:
        text = f"{hours} h {mins:02d} min"
    else:
        text = f"{mins} min"
    if lead:
        return f"Overdue by {text}" if late else f"Due in {text}"
    return f"overdue {text}" if late else text


@bp.app_template_filter("opinion_countdown")
def _countdown_filter(due: datetime, lead: bool = False) -> str:
    return countdown_text(due, lead=lead)


@bp.app_context_processor
def _labels() -> dict:
    return {"agreement_labels": AGREEMENT_LABELS, "coverage_labels": COVERAGE_LABELS}
