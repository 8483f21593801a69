"""manage.py audit --project NAME [--start [--size N] [--source model|rule]] [--alpha A]

Without --start: prints the latest audit's estimate of the unreviewed labels' accuracy (overall
and per class, 95 % interval) and the auto-accept thresholds. --start draws a new blind audit
(its items go to the review queue); --alpha sets the auto-accept target error rate ("off" clears).
"""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from annotations import audit_stats
from annotations.exceptions import DomainError
from annotations.management.commands._jobs import project_named
from annotations.models import Audit, Project
from annotations.selectors.audit import get_audit_summary, get_auto_accept
from annotations.services import audit as audit_service


def _pct(value) -> str:
    return "n/a" if value is None else f"{value * 100:.1f} %"


class Command(BaseCommand):
    help = "Blind audits: start one, set the auto-accept error rate, print the estimate."

    def add_arguments(self, parser):
        parser.add_argument("--project", required=True, help="project name")
        parser.add_argument("--start", action="store_true", help="draw a new audit")
        parser.add_argument("--size", type=int, default=audit_stats.DEFAULT_AUDIT_SIZE)
        parser.add_argument("--source", choices=Audit.Source.values, default=Audit.Source.MODEL)
        parser.add_argument(
            "--rows-only",
            action="store_true",
            help="a plain random draw of rows: no sentence pattern is taken whole",
        )
        parser.add_argument("--alpha", help="auto-accept target error rate in (0, 0.5), or 'off'")

    def handle(self, *args, **options):
        project = project_named(options["project"])
        try:
            if options["alpha"] is not None:
                alpha = None if options["alpha"].lower() == "off" else options["alpha"]
                audit_service.set_auto_accept_alpha(project=project, alpha=alpha)
            if options["start"]:
                self.stderr.write("Drawing the audit (reads every final label once)...")
                audit = audit_service.start_audit(
                    project=project,
                    user=None,
                    size=options["size"],
                    source=options["source"],
                    by_pattern=not options["rows_only"],
                )
                self.stdout.write(
                    f"Audit {audit.pk}: {audit.items.count()} items drawn from {audit.population} "
                    f"{audit.source}-labeled rows; they wait in the review queue, blind."
                )
        except DomainError as exc:
            raise CommandError(str(exc)) from None
        self._report(project)

    def _report(self, project: Project) -> None:
        for source in Audit.Source.values:
            summary = get_audit_summary(project=project, source=source)
            if summary is None:
                continue
            est = summary.estimate
            stale = f"  STALE: {summary.stale_reason}" if summary.stale else ""
            self.stdout.write(
                f"{source} labels (audit {summary.audit.pk}, {summary.answered}/{summary.drawn} "
                f"answered, {summary.audit.population} rows): accuracy {_pct(est.value)} "
                f"[{_pct(est.low)}, {_pct(est.high)}]{stale}"
            )
            for name, e in summary.per_class.items():
                self.stdout.write(f"  {name}: {_pct(e.value)} [{_pct(e.low)}, {_pct(e.high)}]")
            if summary.cluster_items:
                self.stdout.write(
                    f"  {summary.cluster_items} items stand for their whole sentence pattern "
                    f"({summary.cluster_rows} rows). {summary.cluster_assumption}"
                )
        accept = get_auto_accept(project=project)
        if accept is not None:
            self.stdout.write(
                f"auto-accept at alpha {accept.alpha}: {accept.rows_accepted} of {accept.rows} "
                f"rows ({_pct(accept.share)}) {accept.reason}".rstrip()
            )
            for t in accept.thresholds:
                where = f">= {t.threshold}" if t.threshold is not None else "none"
                self.stdout.write(f"  {t.predicted_class}: {where}  {t.note}".rstrip())
