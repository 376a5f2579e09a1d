"""The gallery map's page and its JSON data (managers and admins; only people they may see).

The data endpoint answers from the cache (``recognition.gallery_map``); a map not built yet is
requested from a worker once (``recognition.gallery_map_build`` through the dispatch seam) and the
answer is ``202 {"status": "pending"}`` until it is there: the page polls. In the embedded default
the task runs in this thread, so the first answer is already the map.
"""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.core.cache import cache
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.urls import path, reverse
from django.views.decorators.http import require_GET

from portal.permissions import may_view_gallery_map, visible_employees
from recognition.gallery_map import (
    current_model,
    current_model_version,
    gallery_map_cached,
    gallery_map_key,
    gallery_map_versions,
)
from recognition.jobs import send_on_commit
from recognition.models import FaceImage

BUILD_LOCK_SECONDS = 600  # one build request per map at a time (a worker may take a while)


def _allowed(request: HttpRequest) -> None:
    if not may_view_gallery_map(request.user):
        raise Http404  # employees never see the manager pages


@login_required
@require_GET
def gallery_map_page(request: HttpRequest) -> HttpResponse:
    _allowed(request)
    return render(request, "recognition/gallery_map.html", {"data_url": reverse("gallery-map-data")})


@login_required
@require_GET
def gallery_map_data(request: HttpRequest) -> JsonResponse:
    _allowed(request)
    names = dict(visible_employees(request.user).values_list("pk", "full_name"))
    employee_ids = sorted(names)
    name, version, threshold = current_model()
    versions = gallery_map_versions(employee_ids=employee_ids, current=(name, version),
                                    model_version=current_model_version())
    wanted = next((v for v in versions if v["key"] == request.GET.get("version")), None)
    wanted = wanted or next(v for v in versions if v["current"])
    key = gallery_map_key(employee_ids=employee_ids, embedder=wanted["embedder"],
                          embedder_version=wanted["embedder_version"], model_version=wanted["model_version"])
    data = gallery_map_cached(key=key)
    if data is None and cache.add(f"gallery-map-building:{key.path}", True, BUILD_LOCK_SECONDS):
        send_on_commit("recognition.gallery_map_build", employee_ids=employee_ids, embedder=key.embedder,
                       embedder_version=key.embedder_version, threshold=threshold, model_version=key.model_version)
        data = gallery_map_cached(key=key)  # built already when tasks run in this process
        if data is not None:
            cache.delete(f"gallery-map-building:{key.path}")
    answer = {"versions": [{"key": v["key"], "embedder": v["embedder"], "current": v["current"],
                            "model_version": v["model_version"], "built_at": v["built_at"]} for v in versions],
              "version": key.model}
    if data is None:
        return JsonResponse({"status": "pending", **answer}, status=202)
    points = [p for p in data["points"] if p["person"] in names]
    sources = dict(FaceImage.Source.choices)
    for point in points:
        point["crop"] = reverse("face-file", args=[point["face"], "crop"])
        point["source_label"] = sources.get(point["source"], point["source"].replace("_", " ").capitalize())
    people = sorted({p["person"] for p in points})
    return JsonResponse({
        "status": "ready", **answer,
        "built_at": data["built_at"], "gallery": data["gallery"], "threshold": data["threshold"],
        "people": [{"id": pk, "name": names[pk], "gallery": reverse("gallery", args=[pk])} for pk in people],
        "points": points,
        "suspects": [s for s in data["suspects"] if s["person"] in names and s["closer_to"] in names],
        "lookalikes": [p for p in data["lookalikes"] if p["a"] in names and p["b"] in names],
    })


urlpatterns = [
    path("", gallery_map_page, name="gallery-map"),
    path("data/", gallery_map_data, name="gallery-map-data"),
]
