"""Plain-dict shapes of pipeline results, shared by tasks and API responses."""

from __future__ import annotations

from typing import Any

from recognition.pipeline.detection import Face
from recognition.pipeline.matching import cosine_to_distance


def face_json(face: Face) -> dict[str, Any]:
    return {
        "box": [round(float(v), 1) for v in face.box],
        "score": round(float(face.score), 4),
        "landmarks": [[round(float(x), 1), round(float(y), 1)] for x, y in face.landmarks],
    }


def recognized_json(result: Any) -> dict[str, Any]:
    """A services.RecognizedFace as JSON (employee ids; the view adds names it may show)."""
    best = result.best
    return {
        **face_json(result.face),
        "known": bool(result.known),
        "employee_id": best.label if best else None,
        "similarity": round(float(best.score), 4) if best else None,
        "distance": round(cosine_to_distance(best.score), 4) if best else None,
        "threshold": result.threshold,
        "top": [{"employee_id": m.label, "similarity": round(float(m.score), 4)} for m in result.top],
    }


def recognized_for(face: dict[str, Any], names: dict[int, str]) -> dict[str, Any]:
    """A recognised face as its caller may see it (``names``: portal.permissions.recognition_names):
    a best match the caller may not see comes back as unknown, with no similarity or distance
    that would tell them the person is enrolled, and top-k keeps only visible people."""
    top = [m for m in face["top"] if m["employee_id"] in names]
    if face["employee_id"] in names:
        return {**face, "employee": names[face["employee_id"]] if face["known"] else None, "top": top}
    return {**face, "known": False, "employee_id": None, "employee": None, "similarity": None, "distance": None,
            "top": top}
