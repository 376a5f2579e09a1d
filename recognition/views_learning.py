"""The Learning page (admins): each night's harvest, templates added and removed, the training
loss curve, the gate's figures before and after, the decision; "Run now" with progress; rollback."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_POST

from portal.permissions import may_manage_learning
from recognition.learning import RollbackUnavailable, learning_rollback, learning_run_start, learning_runs_reap
from recognition.models import LearningCandidate, LearningRun, ModelVersion, StrangerSample
from recognition.views import _refuse

CURVE_WIDTH, CURVE_HEIGHT = 360, 120


def _allowed(request: HttpRequest) -> None:
    if not may_manage_learning(request.user):
        _refuse(request)


def loss_curve(losses: list[float]) -> str:
    """SVG polyline points of a loss curve scaled into CURVE_WIDTH x CURVE_HEIGHT (drawn server-side: no script)."""
    if len(losses) < 2:
        return ""
    low, high = min(losses), max(losses)
    span = (high - low) or 1.0
    step = CURVE_WIDTH / (len(losses) - 1)
    return " ".join(f"{i * step:.1f},{CURVE_HEIGHT - (value - low) / span * CURVE_HEIGHT:.1f}" for i, value in enumerate(losses))


@login_required
@require_GET
def learning_page(request: HttpRequest) -> HttpResponse:
    _allowed(request)
    learning_runs_reap()  # a run whose worker died shows as failed, and Run now is offered again
    runs = list(LearningRun.objects.select_related("candidate")[:30])
    versions = list(ModelVersion.objects.select_related("parent")[:30])
    for version in versions:
        version.curve = loss_curve(version.losses)
    return render(request, "recognition/learning.html", {
        "runs": runs, "versions": versions, "active": next((v for v in versions if v.state == "active"), None),
        "live": next((r for r in runs if r.status in (LearningRun.Status.QUEUED, LearningRun.Status.RUNNING)), None),
        "candidates": LearningCandidate.objects.count(), "strangers": StrangerSample.objects.count(),
        "curve_width": CURVE_WIDTH, "curve_height": CURVE_HEIGHT,
    })


@login_required
@require_POST
def learning_run_now(request: HttpRequest) -> HttpResponse:
    _allowed(request)
    run, started = learning_run_start(trigger="manual")
    messages.success(request, f"Learning run {run.pk} started." if started
                     else f"Learning run {run.pk} is already {run.status}.")
    return redirect("learning")


@login_required
@require_GET
def learning_progress(request: HttpRequest, pk: int) -> JsonResponse:
    _allowed(request)
    learning_runs_reap()
    run = get_object_or_404(LearningRun, pk=pk)
    return JsonResponse({"id": run.pk, "status": run.status, "stage": run.stage, "progress": run.progress,
                         "decision": run.decision})


@login_required
@require_POST
def learning_rollback_view(request: HttpRequest) -> HttpResponse:
    _allowed(request)
    try:
        restored = learning_rollback(reason=f"rolled back by {request.user.get_username()}")
    except RollbackUnavailable as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, f"Now active: {restored.version if restored else 'the base embedder alone'}.")
    return redirect("learning")
