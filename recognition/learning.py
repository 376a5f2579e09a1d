"""Nightly learning: templates from the day's safe check-ins (and, when available, a fine-tuned
projection head), measured by the gate (recognition.learning_gate) and switched atomically;
rollback; erasure of learning data. (A manager's removal of a learned photo, remembered as a
negative, is recognition.services.face_delete: every removal path goes through it.)

The harvest itself happens during the day in the check-in path (recognition.learning_harvest).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from django.conf import settings
from django.core.files.base import ContentFile
from django.db import transaction
from django.utils import timezone

from portal.models import Employee
from recognition.engine import cohort_norm, get_pipeline
from recognition.jobs import send_on_commit
from recognition.learning_gate import GateFigures, GateScores, beats, candidate_threshold, figures_at, gate_scores
from recognition.models import (
    FaceImage,
    GalleryState,
    LearningCandidate,
    LearningNegative,
    LearningRun,
    ModelVersion,
    StrangerSample,
)
from recognition.pipeline.embedding import l2_normalise
from recognition.selectors import Head, active_model_version, build_index, gallery_base_vectors, load_head

logger = logging.getLogger(__name__)

NEGATIVE_SIMILARITY = 0.9  # a candidate this close to a removed learned photo is never learned


def finetune_module():  # noqa: ANN201 - recognition.pipeline.finetune, or None where it is absent
    try:
        from recognition.pipeline import finetune
    except ImportError:
        return None
    return finetune


# --- Run now / schedule -------------------------------------------------------------------------

def learning_run_start(*, trigger: str = "manual") -> tuple[LearningRun, bool]:
    """Queue a learning run (the admin's "Run now"): (the run, True); one at a time: (the live
    queued or running run, False) instead. The task starts once this transaction commits, on a
    thread of its own in the embedded default (the page returns at once and shows progress)."""
    with transaction.atomic():
        run, created = learning_run_claim(trigger=trigger)
        if created:
            send_on_commit("recognition.learning_nightly", detached=True, run_id=run.pk)
    return run, created


def learning_run_claim(*, trigger: str) -> tuple[LearningRun, bool]:
    """(a new queued run, True), or (the live run, False) when one is queued or running: runs never
    overlap, whether started by hand or by the schedule. Dead runs are reaped first."""
    with transaction.atomic():
        GalleryState.lock()  # one claim at a time, across processes
        learning_runs_reap()
        live = LearningRun.objects.filter(
            status__in=[LearningRun.Status.QUEUED, LearningRun.Status.RUNNING]).first()
        if live is not None:
            return live, False
        return LearningRun.objects.create(trigger=trigger, heartbeat_at=timezone.now()), True


def learning_runs_reap() -> int:
    """Fail, visibly, queued or running runs whose heartbeat stopped (their worker died)."""
    limit = timezone.now() - dt.timedelta(seconds=settings.ROLLCALL_JOB_HEARTBEAT_TIMEOUT_SECONDS)
    return LearningRun.objects.filter(status__in=[LearningRun.Status.QUEUED, LearningRun.Status.RUNNING],
                                      heartbeat_at__lt=limit).update(
        status=LearningRun.Status.FAILED, last_error="The worker stopped (no heartbeat).", finished_at=timezone.now())


class RunAbandoned(Exception):
    """The run was marked failed (reaped: its heartbeat was judged stopped) while it still worked:
    it stops at once and changes nothing more, since a new run may already be going."""


def _beat(run: LearningRun, *, stage: str, progress: float) -> None:
    run.stage, run.progress, run.heartbeat_at = stage, progress, timezone.now()
    if not LearningRun.objects.filter(pk=run.pk, status=LearningRun.Status.RUNNING).update(
            stage=stage, progress=progress, heartbeat_at=run.heartbeat_at):
        raise RunAbandoned(f"learning run {run.pk} was marked failed while it worked")


# --- The nightly job ------------------------------------------------------------------------------

@dataclass
class _Template:
    """A learned photo in the making (``candidate``) or kept from the active version (``face``)."""

    employee_id: int
    vector: np.ndarray
    candidate: LearningCandidate | None = None
    face: FaceImage | None = None


@dataclass
class _Plan:
    heldout: list[tuple[int, np.ndarray]] = field(default_factory=list)
    templates: dict[int, list[_Template]] = field(default_factory=dict)
    positives: list[tuple[int, np.ndarray]] = field(default_factory=list)


def learning_purge(*, now: dt.datetime | None = None) -> int:
    """Delete candidates older than ROLLCALL_LEARN_KEEP_DAYS, of another embedder, of days a manager
    corrected, and of employees without consent or no longer active (files go on commit)."""
    from attendance.models import AttendanceRecord

    now = now or timezone.now()
    embedder = get_pipeline().embedder
    stale = LearningCandidate.objects.filter(captured_at__lt=now - dt.timedelta(days=settings.ROLLCALL_LEARN_KEEP_DAYS))
    stale = stale | LearningCandidate.objects.exclude(embedder=embedder.name, embedder_version=embedder.version)
    stale = stale | LearningCandidate.objects.filter(employee__biometric_consent_at__isnull=True)
    stale = stale | LearningCandidate.objects.filter(employee__is_active=False)
    doomed = set(stale.values_list("pk", flat=True))
    corrected = set(AttendanceRecord.objects.filter(corrected=True).values_list("employee_id", "date"))
    if corrected:
        from attendance.days import attendance_day

        # The attendance day, not the calendar day: a night shift's morning counts for the night.
        # An event's day is its calendar day or the one before, so only captures on a corrected
        # day or the morning after need the (shift-reading) rule.
        people = Employee.objects.in_bulk({employee_id for employee_id, _ in corrected})
        for pk, employee_id, at in LearningCandidate.objects.filter(employee_id__in=people).values_list(
                "pk", "employee_id", "captured_at"):
            calendar_day = timezone.localdate(at)
            if {(employee_id, calendar_day), (employee_id, calendar_day - dt.timedelta(days=1))} & corrected and (
                    employee_id, attendance_day(employee=people[employee_id], at=at)) in corrected:
                doomed.add(pk)
    count = 0
    with transaction.atomic():
        for candidate in LearningCandidate.objects.filter(pk__in=doomed):
            candidate.delete()  # recognition.signals removes the crop on commit
            count += 1
    return count


def stranger_samples_purge(*, now: dt.datetime | None = None) -> int:
    """Delete stranger samples older than ROLLCALL_LEARN_KEEP_DAYS or of another embedder (their
    vectors no longer compare with the gallery's)."""
    now = now or timezone.now()
    embedder = get_pipeline().embedder
    stale = StrangerSample.objects.filter(captured_at__lt=now - dt.timedelta(days=settings.ROLLCALL_LEARN_KEEP_DAYS))
    stale = stale | StrangerSample.objects.exclude(embedder=embedder.name, embedder_version=embedder.version)
    count, _ = StrangerSample.objects.filter(pk__in=list(stale.values_list("pk", flat=True))).delete()
    return count


def learning_housekeeping(*, now: dt.datetime | None = None) -> dict[str, int]:
    """The nightly job's purges: learning captures (learning_purge), stranger samples, and cached
    gallery maps of galleries no longer current (the newest map of each model version stays: the
    map's before/after switch)."""
    from recognition.gallery_map import gallery_maps_purge

    now = now or timezone.now()
    return {"purged": learning_purge(now=now), "strangers_purged": stranger_samples_purge(now=now),
            "maps_purged": gallery_maps_purge(older_than=now - dt.timedelta(hours=1))}


def _is_safe(index: object, views: np.ndarray, employee_id: int, threshold: float) -> bool:
    decision = index.decide_burst(views, threshold=threshold)
    if not decision.known or decision.best is None or decision.best.label != employee_id:
        return False
    second = decision.top[1].score if len(decision.top) > 1 else -1.0
    return (decision.best.score >= threshold + settings.ROLLCALL_LEARN_MARGIN
            and decision.best.score - second >= settings.ROLLCALL_LEARN_GAP
            and all(view and view[0].label == employee_id for view in index.search(views, k=1)))


def _plan(*, index: object, threshold: float, vectors: np.ndarray, labels: np.ndarray, face_ids: list[int],
          model: ModelVersion | None) -> _Plan:
    """Hold out each person's newest captures; choose up to K learned templates per person among the
    active version's learned photos and the other captures still safely theirs, preferring the views
    least like the person's enrolled photos."""
    embedder = get_pipeline().embedder
    plan = _Plan()
    negatives: dict[int, list[np.ndarray]] = {}
    for negative in LearningNegative.objects.filter(embedder=embedder.name, embedder_version=embedder.version):
        negatives.setdefault(negative.employee_id, []).append(negative.vector)
    learned = {face.pk: face for face in FaceImage.objects.filter(pk__in=face_ids, source=FaceImage.Source.LEARNED)}
    enrolled: dict[int, list[np.ndarray]] = {}
    pools: dict[int, list[_Template]] = {}
    for vector, label, face_id in zip(vectors, labels, face_ids, strict=True):
        if face_id in learned:
            pools.setdefault(int(label), []).append(_Template(int(label), vector, face=learned[face_id]))
        else:
            enrolled.setdefault(int(label), []).append(vector)
    candidates: dict[int, list[LearningCandidate]] = {}
    for candidate in LearningCandidate.objects.filter(
            embedder=embedder.name, embedder_version=embedder.version, employee__is_active=True,
            employee__biometric_consent_at__isnull=False).order_by("captured_at", "pk"):
        candidates.setdefault(candidate.employee_id, []).append(candidate)
    for employee_id, items in candidates.items():
        held = max(1, len(items) // 3)
        for candidate in items[-held:]:
            plan.heldout.append((employee_id, candidate.matrix))
        for candidate in items[:-held]:
            views = candidate.matrix
            if not _is_safe(index, views, employee_id, threshold):
                continue
            vector = l2_normalise(views.mean(axis=0, keepdims=True))[0]
            if any(float(vector @ negative) >= NEGATIVE_SIMILARITY for negative in negatives.get(employee_id, [])):
                continue
            plan.positives.extend((employee_id, view) for view in views)
            pools.setdefault(employee_id, []).append(_Template(employee_id, vector, candidate=candidate))
    for employee_id, pool in pools.items():
        plan.templates[employee_id] = _farthest(pool, enrolled.get(employee_id, []), settings.ROLLCALL_LEARN_MAX_TEMPLATES)
    return plan


def _farthest(pool: list[_Template], enrolled: list[np.ndarray], k: int) -> list[_Template]:
    """Greedy: the template least like the enrolled photos and those chosen so far, k times."""
    chosen: list[_Template] = []
    reference = list(enrolled)
    pool = list(pool)
    while pool and len(chosen) < k:
        if reference:
            stack = np.stack(reference)
            similarity = [float((stack @ item.vector).max()) for item in pool]
        else:
            similarity = [0.0 for _ in pool]
        best = int(np.argmin(similarity))
        item = pool.pop(best)
        chosen.append(item)
        reference.append(item.vector)
    return chosen


def _gallery_with(plan: _Plan, vectors: np.ndarray, labels: np.ndarray, face_ids: list[int]) -> tuple[np.ndarray, np.ndarray]:
    learned = set(FaceImage.objects.filter(pk__in=face_ids, source=FaceImage.Source.LEARNED).values_list("pk", flat=True))
    keep = [i for i, face_id in enumerate(face_ids) if face_id not in learned]
    extra = [t for templates in plan.templates.values() for t in templates]
    new_vectors = np.concatenate([vectors[keep], np.array([t.vector for t in extra], dtype=np.float32).reshape(-1, vectors.shape[1])])
    new_labels = np.concatenate([labels[keep], np.array([t.employee_id for t in extra], dtype=np.int64)])
    return new_vectors.astype(np.float32), new_labels


def learning_nightly(*, run: LearningRun | None = None, finetune: bool | None = None,
                     trigger: str = "command") -> LearningRun:
    """The nightly job: purge, plan templates, (fine-tune a head), gate, switch. Idempotent: a
    second run the same night finds nothing new to learn and changes nothing. Without ``run`` it
    claims one (``learning_run_claim``); a live run elsewhere is returned untouched, and so is a
    ``run`` that is no longer queued (reaped while it waited, or taken by another worker)."""
    if run is None:
        run, created = learning_run_claim(trigger=trigger)
        if not created:
            return run
    if not LearningRun.objects.filter(pk=run.pk, status=LearningRun.Status.QUEUED).update(
            status=LearningRun.Status.RUNNING, heartbeat_at=timezone.now()):
        run.refresh_from_db()
        return run
    run.status = LearningRun.Status.RUNNING
    timings: dict[str, float] = {}
    started = time.perf_counter()
    try:
        # The night's harvest: captures kept since the previous run began (counted before any is used).
        previous = LearningRun.objects.filter(created_at__lt=run.created_at).exclude(pk=run.pk).first()
        fresh = (LearningCandidate.objects.filter(created_at__gte=previous.created_at) if previous is not None
                 else LearningCandidate.objects.all()).count()
        _beat(run, stage="purging old captures", progress=0.05)
        purged = learning_housekeeping()
        timings["purge"] = time.perf_counter() - started
        _beat(run, stage="choosing templates", progress=0.15)
        result = _learn(run, finetune=settings.ROLLCALL_LEARN_FINETUNE if finetune is None else finetune, timings=timings)
        run.harvest = {"candidates": LearningCandidate.objects.count(), "new": fresh, **purged,
                       "strangers": StrangerSample.objects.count(), **result.pop("harvest")}
        for key, value in result.items():
            setattr(run, key, value)
        run.status = LearningRun.Status.FINISHED
    except RunAbandoned:
        logger.warning("learning run %s was reaped while it worked; it stopped", run.pk)
        run.refresh_from_db()
        return run
    except Exception as exc:
        logger.exception("learning run %s failed", run.pk)
        run.status, run.last_error = LearningRun.Status.FAILED, f"{type(exc).__name__}: {exc}"
    timings["total"] = time.perf_counter() - started
    run.details = {**run.details, "timings": {key: round(value, 2) for key, value in timings.items()}}
    run.progress, run.stage, run.finished_at = 1.0, "done", timezone.now()
    # Only a run still marked running records its end: a reaped one's "failed" stands.
    LearningRun.objects.filter(pk=run.pk, status=LearningRun.Status.RUNNING).update(
        status=run.status, last_error=run.last_error, harvest=run.harvest, templates_added=run.templates_added,
        templates_removed=run.templates_removed, candidate=run.candidate, decision=run.decision, details=run.details,
        progress=run.progress, stage=run.stage, finished_at=run.finished_at)
    run.refresh_from_db()
    return run


def _learn(run: LearningRun, *, finetune: bool, timings: dict[str, float]) -> dict[str, object]:
    from recognition.engine import match_threshold

    t0 = time.perf_counter()
    embedder = get_pipeline().embedder
    cohort = cohort_norm()
    active = active_model_version()
    head = load_head(active.head_path) if active is not None and active.head_path else None
    vectors, labels_list, face_ids = gallery_base_vectors(version=active)
    labels = np.asarray(labels_list, dtype=np.int64)
    index = build_index(vectors, labels, dim=embedder.dim, cohort=cohort, head=head)
    default = get_pipeline().embedder.threshold if settings.ROLLCALL_MATCH_THRESHOLD is None else match_threshold()
    threshold = max(default, active.threshold or default) if active is not None else default
    plan = _plan(index=index, threshold=threshold, vectors=vectors, labels=labels, face_ids=face_ids, model=active)
    strangers = [sample.matrix for sample in StrangerSample.objects.filter(embedder=embedder.name,
                                                                          embedder_version=embedder.version)]
    rate = settings.ROLLCALL_LEARN_STRANGER_RATE
    tolerance = settings.ROLLCALL_LEARN_MARGIN_TOLERANCE
    new_vectors, new_labels = _gallery_with(plan, vectors, labels, face_ids)
    timings["plan"] = time.perf_counter() - t0

    def scores(gallery: np.ndarray, gallery_labels: np.ndarray, model_head: Head | None) -> GateScores:
        built = build_index(gallery, gallery_labels, dim=embedder.dim, cohort=cohort, head=model_head)
        return gate_scores(built, heldout=plan.heldout, strangers=strangers, base_vectors=gallery, labels=gallery_labels)

    def paired(candidate: GateScores, reference: GateScores, reference_threshold: float) -> GateFigures:
        """A candidate's figures at its threshold paired with the model it would replace."""
        limit = candidate_threshold(candidate, reference, active_threshold=reference_threshold, rate=rate, floor=default)
        return figures_at(candidate, threshold=limit, rate=rate)

    _beat(run, stage="measuring the active model", progress=0.3)
    t0 = time.perf_counter()
    before_scores = scores(vectors, labels, head)
    # The active model at the threshold the site runs on; a candidate's moves by what it changes (candidate_threshold).
    before = figures_at(before_scores, threshold=threshold, rate=rate)
    current = {t.face.pk for t in _learned_of(plan) if t.face is not None}
    previous = set(active.learned_faces.values_list("pk", flat=True)) if active is not None else set()
    added = [t for t in _learned_of(plan) if t.candidate is not None]
    removed = previous - current
    harvest = {"heldout": len(plan.heldout), "positives": len(plan.positives)}
    details: dict[str, object] = {"before": before.as_dict(), "margin_tolerance": tolerance}
    after_scores = before_scores
    if not added and not removed:
        templates_ok, templates_reason, after = False, "nothing new to learn", before
    else:
        after_scores = scores(new_vectors, new_labels, head)
        after = paired(after_scores, before_scores, before.threshold)
        templates_ok, templates_reason = beats(after, before, rate=rate, strict=False, tolerance=tolerance)
        details["templates"] = after.as_dict()
        details["templates_gate"] = {"accepted": templates_ok, "reason": templates_reason}
    timings["gate"] = time.perf_counter() - t0
    chosen_gallery = (new_vectors, new_labels) if templates_ok else (vectors, labels)
    chosen_figures = after if templates_ok else before
    chosen_scores = after_scores if templates_ok else before_scores
    tuned = None
    module = finetune_module() if finetune else None
    if module is not None and plan.positives:
        _beat(run, stage="fine-tuning", progress=0.5)
        t0 = time.perf_counter()
        tuned = _train(module, chosen_gallery, plan, head, heartbeat=lambda fraction: _beat(
            run, stage="fine-tuning", progress=0.5 + 0.35 * min(fraction, 1.0)))
        timings["finetune"] = time.perf_counter() - t0
        tuned_figures = paired(scores(*chosen_gallery, tuned.head), chosen_scores, chosen_figures.threshold)
        tuned_ok, tuned_reason = beats(tuned_figures, chosen_figures, rate=rate, strict=True, tolerance=tolerance)
        details["finetuned"] = {**tuned_figures.as_dict(), "accepted": tuned_ok, "reason": tuned_reason,
                                "steps": tuned.steps, "seconds": round(tuned.seconds, 1), "device": tuned.device}
    _beat(run, stage="switching", progress=0.9)
    version, decision = _record(run, active=active, plan=plan, templates_ok=templates_ok, templates_reason=templates_reason,
                                before=before, after=after, tuned=tuned, details=details, added=added)
    switched = templates_ok and decision.startswith(("accepted", "templates accepted"))
    return {"harvest": harvest, "templates_added": len(added) if switched else 0,
            "templates_removed": len(removed) if switched else 0, "candidate": version,
            "decision": decision, "details": details}


def _learned_of(plan: _Plan) -> list[_Template]:
    return [t for templates in plan.templates.values() for t in templates]


def _train(module, gallery: tuple[np.ndarray, np.ndarray], plan: _Plan, parent: Head | None,  # noqa: ANN001, ANN202
           *, heartbeat: Callable[[float], None] | None = None):
    views = np.array([view for _, view in plan.positives], dtype=np.float32)
    return module.train_head(anchors=gallery[0], anchor_labels=gallery[1], positives=views,
                             positive_labels=np.array([label for label, _ in plan.positives], dtype=np.int64),
                             parent=parent if isinstance(parent, module.ProjectionHead) else None,
                             max_minutes=settings.ROLLCALL_LEARN_MAX_MINUTES, device=settings.ROLLCALL_DEVICE,
                             heartbeat=heartbeat)


def _heads_dir() -> Path:
    path = Path(settings.MEDIA_ROOT) / "learning" / "heads"
    path.mkdir(parents=True, exist_ok=True)
    return path


def _record(run: LearningRun, *, active: ModelVersion | None, plan: _Plan, templates_ok: bool, templates_reason: str,
            before: GateFigures, after: GateFigures, tuned, details: dict, added: list[_Template]) -> tuple[ModelVersion | None, str]:  # noqa: ANN001
    """Write the candidate version(s) with their figures; activate the one the gate accepted."""
    embedder = get_pipeline().embedder
    tuned_ok = bool(tuned is not None and details["finetuned"]["accepted"])
    tolerance = details.get("margin_tolerance")
    refused = None
    if not templates_ok and templates_reason != "nothing new to learn":
        # The refused templates are kept as a rejected version: its figures and the reason show on the Learning page.
        refused = ModelVersion.objects.create(
            version=f"{embedder.version}+templates+run:{run.pk}", embedder=embedder.name,
            embedder_version=embedder.version, head_path=active.head_path if active else "",
            onnx_path=active.onnx_path if active else "", checksum=active.checksum if active else "", parent=active,
            state=ModelVersion.State.REJECTED, reason=templates_reason, threshold=after.threshold,
            metrics={"before": before.as_dict(), "after": after.as_dict(),
                     "gate": {"accepted": False, "reason": templates_reason, "margin_tolerance": tolerance}},
            data_counts={"templates": len(_learned_of(plan)), "positives": len(plan.positives),
                         "heldout": len(plan.heldout)})
        details["templates_gate"]["version_id"] = refused.pk
    if not templates_ok and tuned is None:
        return refused, "no change" if templates_reason == "nothing new to learn" else "rejected"
    head_path, onnx_path, checksum = (active.head_path, active.onnx_path, active.checksum) if active else ("", "", "")
    losses: list[float] = []
    if tuned is not None:
        stem = _heads_dir() / f"head-{run.pk}-{int(time.time())}"
        new_checksum = tuned.head.save(stem.with_suffix(".pt"))
        try:
            tuned.head.export_onnx(stem.with_suffix(".onnx"))
            new_onnx = str(stem.with_suffix(".onnx"))
        except Exception:  # the ONNX export is for deployment elsewhere; recognition uses the weights
            logger.exception("ONNX export of the head failed")
            new_onnx = ""
        losses = [float(x) for x in tuned.losses]
        if tuned_ok:
            head_path, onnx_path, checksum = str(stem.with_suffix(".pt")), new_onnx, new_checksum
        else:
            rejected = ModelVersion.objects.create(
                version=f"{embedder.version}+head:{new_checksum[:8]}", embedder=embedder.name,
                embedder_version=embedder.version, head_path=str(stem.with_suffix(".pt")), onnx_path=new_onnx,
                checksum=new_checksum, parent=active, losses=losses, state=ModelVersion.State.REJECTED,
                reason=details["finetuned"]["reason"], metrics={"before": details.get("templates", details["before"]),
                                                                  "after": details["finetuned"],
                                                                  "gate": {"accepted": False,
                                                                           "reason": details["finetuned"]["reason"],
                                                                           "margin_tolerance": tolerance}},
                data_counts={"positives": len(plan.positives), "heldout": len(plan.heldout)})
            details["finetuned"]["version_id"] = rejected.pk
    if not templates_ok and not tuned_ok:
        return refused, "rejected"
    final = details["finetuned"] if tuned_ok else after.as_dict()
    reason = details["finetuned"]["reason"] if tuned_ok else templates_reason
    with transaction.atomic():
        if not _may_switch(run, active):
            stale = ModelVersion.objects.create(
                version=f"{embedder.version}+run:{run.pk}+stale", embedder=embedder.name,
                embedder_version=embedder.version, head_path=head_path, onnx_path=onnx_path, checksum=checksum,
                parent=active, state=ModelVersion.State.REJECTED, reason=STALE_REASON, threshold=final["threshold"],
                metrics={"before": before.as_dict(), "after": final, "gate": {"accepted": False, "reason": STALE_REASON}},
                data_counts={"positives": len(plan.positives), "heldout": len(plan.heldout)})
            details["stale"] = {"version_id": stale.pk, "reason": STALE_REASON}
            return stale, "rejected: the active version changed during the run"
        version = ModelVersion.objects.create(
            version=f"{embedder.version}+head:{checksum[:8] if checksum else 'none'}+run:{run.pk}", embedder=embedder.name,
            embedder_version=embedder.version, head_path=head_path, onnx_path=onnx_path, checksum=checksum, parent=active,
            losses=losses if tuned_ok else [], reason=reason,
            metrics={"before": before.as_dict(), "after": final,
                     "gate": {"accepted": True, "reason": reason, "margin_tolerance": tolerance}},
            threshold=final["threshold"], data_counts={"templates": len(_learned_of(plan)) if templates_ok else 0,
                                                       "positives": len(plan.positives), "heldout": len(plan.heldout)})
        faces = [t.face for t in _learned_of(plan) if t.face is not None] if templates_ok else (
            list(active.learned_faces.all()) if active else [])
        if templates_ok:
            faces += [_learned_face(t) for t in added]
        version.learned_faces.set(faces)
        model_version_activate(version=version)
    if tuned is not None and not tuned_ok:
        return version, "templates accepted, fine-tuning rejected"
    return version, "accepted" if not tuned_ok else "accepted with fine-tuning"


STALE_REASON = ("the active version changed during the run (a rollback or another switch): "
                "it was measured against another")


def _may_switch(run: LearningRun, active: ModelVersion | None) -> bool:
    """Inside the switch's transaction: this run is still running (not reaped) and the version it
    measured against is still the active one (no rollback or other switch meanwhile). The gallery
    state row is the lock the rollback takes too."""
    embedder = get_pipeline().embedder
    GalleryState.lock()
    if not LearningRun.objects.filter(pk=run.pk, status=LearningRun.Status.RUNNING).exists():
        raise RunAbandoned(f"learning run {run.pk} was marked failed while it worked")
    current = ModelVersion.objects.filter(state=ModelVersion.State.ACTIVE, embedder=embedder.name,
                                          embedder_version=embedder.version).values_list("pk", flat=True).first()
    return current == (active.pk if active is not None else None)


def _learned_face(template: _Template) -> FaceImage:
    """A chosen capture becomes a learned gallery photo (its crop as image and crop); the capture goes."""
    candidate = template.candidate
    embedder = get_pipeline().embedder
    data = candidate.crop.read() if candidate.crop else b""
    candidate.crop.close()
    same = FaceImage.objects.filter(employee_id=candidate.employee_id, content_hash=hashlib.sha256(data).hexdigest()).first()
    if same is not None:  # a byte-identical capture (a still photo shown again) is that photo
        candidate.delete()
        return same
    face = FaceImage(employee_id=candidate.employee_id, content_hash=hashlib.sha256(data).hexdigest(),
                     embedding=template.vector.astype(np.float32).tobytes(), embedder=embedder.name,
                     embedder_version=embedder.version, detection_score=1.0, box=[], face_size=0.0, sharpness=0.0,
                     source=FaceImage.Source.LEARNED)
    face.image.save("learned.png", ContentFile(data), save=False)
    face.crop.save("crop.png", ContentFile(data), save=False)
    face.save()
    candidate.delete()
    return face


def model_version_activate(*, version: ModelVersion) -> None:
    """The switch: one transaction retires the active version and activates ``version``; the gallery
    version is bumped so every process rebuilds its index (base vectors under the new head) on its
    next recognition. Learned photos are kept for ROLLCALL_LEARN_ROLLBACK_DEPTH rollbacks; a photo
    no version that near holds is deleted, and an older version that held it is marked as no
    longer restorable (``learning_rollback`` stops there rather than restore it incompletely)."""
    from recognition.services import gallery_changed

    with transaction.atomic():
        GalleryState.lock()  # first, as rollback and a run's switch do
        ModelVersion.objects.select_for_update().filter(state=ModelVersion.State.ACTIVE).exclude(pk=version.pk).update(
            state=ModelVersion.State.RETIRED)
        ModelVersion.objects.filter(pk=version.pk).update(state=ModelVersion.State.ACTIVE, activated_at=timezone.now())
        gallery_changed()
        keep: set[int] = set()
        for near in _lineage(version, settings.ROLLCALL_LEARN_ROLLBACK_DEPTH):
            keep |= set(near.learned_faces.values_list("pk", flat=True))
        doomed = list(FaceImage.objects.filter(source=FaceImage.Source.LEARNED).exclude(pk__in=keep))
        for older in ModelVersion.objects.filter(learned_faces__in=doomed).distinct():
            older.data_counts = {**older.data_counts, PURGED: True}
            older.save(update_fields=["data_counts"])
        for face in doomed:
            face.delete()  # recognition.signals removes the files on commit
    version.refresh_from_db()


PURGED = "learned_photos_purged"  # a data_counts flag: this version's learned photos are (partly) gone


def _lineage(version: ModelVersion, depth: int) -> list[ModelVersion]:
    """``version`` and up to ``depth`` of its ancestors (the versions rollbacks can reach)."""
    chain = [version]
    while len(chain) <= depth and chain[-1].parent_id is not None:
        chain.append(ModelVersion.objects.get(pk=chain[-1].parent_id))
    return chain


class RollbackUnavailable(Exception):
    """The previous version cannot be restored exactly (its learned photos were purged)."""


def learning_rollback(*, reason: str = "rolled back") -> ModelVersion | None:
    """Restore the previous active version at once (the active one's parent; none: the base
    embedder alone). Returns the version now active. RollbackUnavailable when the parent's learned
    photos were purged (more than ROLLCALL_LEARN_ROLLBACK_DEPTH versions back): nothing changes."""
    from recognition.services import gallery_changed

    with transaction.atomic():
        GalleryState.lock()  # the lock a run's switch takes too
        active = ModelVersion.objects.select_for_update().filter(state=ModelVersion.State.ACTIVE).first()
        if active is None:
            return None
        parent = active.parent
        if parent is not None and parent.data_counts.get(PURGED):
            raise RollbackUnavailable(
                f"{parent.version} cannot be restored exactly: its learned photos were deleted (more than "
                f"{settings.ROLLCALL_LEARN_ROLLBACK_DEPTH} versions back).")
        ModelVersion.objects.filter(pk=active.pk).update(state=ModelVersion.State.RETIRED, reason=reason)
        if parent is not None:
            ModelVersion.objects.filter(pk=parent.pk).update(state=ModelVersion.State.ACTIVE, activated_at=timezone.now())
            parent.refresh_from_db()
        gallery_changed()
    return parent


# --- People's actions ------------------------------------------------------------------------------

def learning_erase(*, employee: Employee) -> int:
    """An employee's erasure: every learning capture and remembered negative of theirs goes
    (learned photos go with their other photos). Returns how many captures went."""
    with transaction.atomic():
        candidates = list(employee.learning_candidates.all())
        for candidate in candidates:
            candidate.delete()  # recognition.signals removes the crop on commit
        employee.learning_negatives.all().delete()
    return len(candidates)
