"""The Learning page shows each night's figures, the loss curve and the decision (admins)."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.test import Client

from recognition.models import LearningRun, ModelVersion

pytestmark = pytest.mark.django_db


def test_the_learning_page_shows_the_nights_figures_loss_curve_and_decision() -> None:
    version = ModelVersion.objects.create(version="fusion+head:abcd1234", embedder="fused", embedder_version="v",
                                          state="active", threshold=0.92, losses=[1.0, 0.7, 0.5, 0.45],
                                          data_counts={"templates": 3}, reason="held-out recognised 90% -> 95%")
    LearningRun.objects.create(status="finished", candidate=version, decision="accepted with fine-tuning",
                               templates_added=3, harvest={"candidates": 12, "heldout": 4, "purged": 1},
                               details={"before": {"recognised": 0.9, "misidentified": 0.0, "strangers_accepted": 0.0},
                                        "templates": {"recognised": 0.95, "misidentified": 0.0,
                                                      "strangers_accepted": 0.0},
                                        "timings": {"total": 12.5}})
    running = LearningRun.objects.create(status="running", stage="fine-tuning", progress=0.5)
    admin = Client()
    admin.force_login(User.objects.create_superuser("root", "r@example.com", "pw-12345678"))
    page = admin.get("/learning/").content.decode()
    assert "accepted with fine-tuning" in page and "+3 / −0" in page and "0.900 → 0.950" in page
    assert "<polyline" in page and 'points="0.0,0.0 ' in page  # the loss curve, drawn server-side
    assert f'data-url="/learning/runs/{running.pk}/progress/"' in page and "<script>" not in page
    progress = admin.get(f"/learning/runs/{running.pk}/progress/").json()
    assert progress == {"id": running.pk, "status": "running", "stage": "fine-tuning", "progress": 0.5, "decision": ""}
