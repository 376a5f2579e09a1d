"""Face login: opt-in, 1:1 verification + liveness, rate-limited failures, password unaffected."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from django.contrib.auth.models import User
from django.core.cache import cache
from django.test import Client

from portal.models import Employee
from recognition.services import face_enroll

pytestmark = pytest.mark.django_db(transaction=True)


def _frames(path: Path, count: int) -> list[io.BytesIO]:
    data = path.read_bytes()
    frames = []
    for i in range(count):
        frame = io.BytesIO(data)
        frame.name = f"f{i}.jpg"
        frames.append(frame)
    return frames


@pytest.fixture()
def ana(people) -> User:
    cache.clear()
    user = User.objects.create_user("ana", password="pw-ana-123")
    employee = Employee.objects.create(user=user, code="A", full_name="Ana")
    face_enroll(employee=employee, data=people["joe_biden"][0].read_bytes())
    return user


def test_opt_in_then_log_in_with_the_face(ana, people, settings) -> None:
    settings.ROLLCALL_LIVENESS = "off"  # this part checks verification; liveness is checked below
    client = Client()
    refused = client.post("/accounts/face-login/", {"username": "ana", "frames": _frames(people["joe_biden"][1], 3)})
    assert refused.status_code == 401 and "not enabled" in refused.json()["detail"]
    me = Client()
    me.force_login(ana)
    me.post("/me/", {"face_login": "on"})
    assert Employee.objects.get(user=ana).face_login
    wrong = client.post("/accounts/face-login/", {"username": "ana", "frames": _frames(people["alex_lacamoire"][0], 3)})
    assert wrong.status_code == 401 and client.get("/").status_code == 302
    right = client.post("/accounts/face-login/", {"username": "ana", "frames": _frames(people["joe_biden"][1], 3)})
    assert right.status_code == 200 and right.json()["ok"]
    assert client.get("/").status_code == 200  # logged in
    assert Client().login(username="ana", password="pw-ana-123")  # the password still works


def test_a_still_photo_fails_liveness_and_failures_are_rate_limited(ana, people, settings) -> None:
    settings.FACE_LOGIN_MAX_FAILURES = 3
    Employee.objects.filter(user=ana).update(face_login=True)
    client = Client()
    still = client.post("/accounts/face-login/", {"username": "ana", "frames": _frames(people["joe_biden"][1], 12)})
    assert still.status_code == 400 and "Liveness" in still.json()["detail"]
    for _ in range(2):
        client.post("/accounts/face-login/", {"username": "ana", "frames": _frames(people["alex_lacamoire"][0], 2)})
    settings.ROLLCALL_LIVENESS = "off"
    blocked = client.post("/accounts/face-login/", {"username": "ana", "frames": _frames(people["joe_biden"][1], 3)})
    assert blocked.status_code == 429 and "Too many failed attempts" in blocked.json()["detail"]
    assert client.get("/").status_code == 302


def test_face_login_in_the_challenge_mode_needs_the_asked_head_turn(settings) -> None:
    """The real head-turn clip (a person turning to their right): it logs in when the page asked
    for "right" and not for "left"; without a challenge token there is no face login."""
    import cv2

    from conftest import video_frames

    cache.clear()
    settings.ROLLCALL_LIVENESS = "challenge"
    frames = video_frames(Path(__file__).resolve().parents[2] / "attendance" / "fixtures" / "turn_2s.mp4")
    user = User.objects.create_user("pat", password="pw-pat-123")
    pat = Employee.objects.create(user=user, code="P", full_name="Pat", face_login=True)
    # Enrolled from a frontal frame of the clip (one the burst below does not contain).
    face_enroll(employee=pat, data=cv2.imencode(".jpg", cv2.resize(frames[13], None, fx=2, fy=2))[1].tobytes())

    def burst() -> list[io.BytesIO]:
        files = []
        for index, frame in enumerate(frames[::2]):
            handle = io.BytesIO(cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, 92])[1].tobytes())
            handle.name = f"f{index}.jpg"
            files.append(handle)
        return files

    def challenge(direction: str) -> str:
        for _ in range(40):
            answer = Client().post("/api/v1/liveness/challenge").json()
            if answer["direction"] == direction:
                return answer["challenge"]
        raise AssertionError(direction)

    client = Client()
    assert client.post("/accounts/face-login/", {"username": "pat", "frames": burst()}).status_code == 400
    wrong = client.post("/accounts/face-login/", {"username": "pat", "frames": burst(), "challenge": challenge("left")})
    assert wrong.status_code == 400 and "turn your head" in wrong.json()["detail"]
    right = client.post("/accounts/face-login/", {"username": "pat", "frames": burst(), "challenge": challenge("right")})
    assert right.status_code == 200 and right.json()["ok"], right.content


def test_fps_that_is_not_a_number_is_a_counted_400(ana, people, settings) -> None:
    settings.FACE_LOGIN_MAX_FAILURES = 2
    Employee.objects.filter(user=ana).update(face_login=True)
    client = Client()
    for fps in ("abc", "nan"):
        bad = client.post("/accounts/face-login/", {"username": "ana", "fps": fps,
                                                    "frames": _frames(people["joe_biden"][1], 3)})
        assert bad.status_code == 400 and bad.json() == {"ok": False, "detail": "fps must be a number from 1 to 120."}
    blocked = client.post("/accounts/face-login/", {"username": "ana", "frames": _frames(people["joe_biden"][1], 3)})
    assert blocked.status_code == 429


def test_concurrent_attempts_get_no_more_tries_than_the_limit(ana, people, settings) -> None:
    """Eight wrong faces sent at once against a limit of five: at most five are verified, the
    rest are refused before verification; a right face afterwards is refused too (locked)."""
    import threading

    from django.db import connection

    settings.FACE_LOGIN_MAX_FAILURES = 5
    settings.ROLLCALL_LIVENESS = "off"
    Employee.objects.filter(user=ana).update(face_login=True)
    wrong = people["alex_lacamoire"][0].read_bytes()
    barrier = threading.Barrier(8)
    codes: list[int] = []

    def attempt() -> None:
        try:
            frame = io.BytesIO(wrong)
            frame.name = "f.jpg"
            barrier.wait()
            codes.append(Client().post("/accounts/face-login/", {"username": "ana", "frames": [frame]}).status_code)
        finally:
            connection.close()

    threads = [threading.Thread(target=attempt) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(codes) == [401] * 5 + [429] * 3, codes
    right = Client().post("/accounts/face-login/", {"username": "ana", "frames": _frames(people["joe_biden"][1], 1)})
    assert right.status_code == 429


def test_a_success_gives_the_account_its_tries_back(ana, people, settings) -> None:
    settings.FACE_LOGIN_MAX_FAILURES = 2
    settings.ROLLCALL_LIVENESS = "off"
    Employee.objects.filter(user=ana).update(face_login=True)

    def attempt(person: str, index: int) -> int:
        frames = _frames(people[person][index], 1)
        return Client().post("/accounts/face-login/", {"username": "ana", "frames": frames}).status_code

    assert attempt("alex_lacamoire", 0) == 401
    assert attempt("joe_biden", 1) == 200
    assert [attempt("alex_lacamoire", 0) for _ in range(2)] == [401, 401]
    assert attempt("joe_biden", 1) == 429


def _blank_png(width: int, height: int, count: int) -> list[io.BytesIO]:
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("L", (width, height)).save(buffer, format="PNG")  # a few kB that decode to megabytes
    frames = []
    for i in range(count):
        frame = io.BytesIO(buffer.getvalue())
        frame.name = f"f{i}.png"
        frames.append(frame)
    return frames


def test_huge_frames_are_refused_from_their_headers_and_the_shape_check_names_no_account(ana, people,
                                                                                        settings) -> None:
    """A small upload must not make the server decode gigabytes: a frame over the per-frame limit
    and a burst over the total are refused before decoding. Whether an account opted in is not
    told by the request-shape errors."""
    settings.ROLLCALL_LIVENESS = "off"
    Employee.objects.filter(user=ana).update(face_login=True)
    User.objects.create_user("bob", password="pw-bob-123")
    client = Client()
    for username in ("ana", "bob", "nobody"):
        cache.clear()
        shape = client.post("/accounts/face-login/", {"username": username, "frames": []})
        assert shape.json()["detail"] == "Send between 1 and 48 camera frames.", username
    cache.clear()
    one = client.post("/accounts/face-login/", {"username": "ana", "frames": _blank_png(4000, 2500, 1)})
    assert one.status_code == 400 and "10.0 megapixels" in one.json()["detail"], one.content
    cache.clear()
    many = client.post("/accounts/face-login/", {"username": "ana", "frames": _blank_png(3000, 2500, 10)})
    assert many.status_code == 400 and "in all" in many.json()["detail"], many.content
    assert client.get("/").status_code == 302  # not logged in


def test_no_answer_tells_which_accounts_exist_opted_in_or_have_a_photo(ana, people, faces_dir, settings) -> None:
    """Every frame error (unreadable, no face) is the same for every username, and an unknown
    account, one without face login, one without a photo and a wrong face all get one answer."""
    settings.ROLLCALL_LIVENESS = "off"
    Employee.objects.filter(user=ana).update(face_login=True)
    User.objects.create_user("bob", password="pw-bob-123")  # exists, no employee row
    no_photo = User.objects.create_user("cy", password="pw-cy-1234")
    Employee.objects.create(user=no_photo, code="C", full_name="Cy", face_login=True)
    answers: dict[str, list[tuple[int, str]]] = {}
    for username in ("ana", "bob", "cy", "nobody"):
        answers[username] = []
        for frames in (lambda: [io.BytesIO(b"garbage")], lambda: _frames(faces_dir / "no_face.jpg", 2),
                       lambda: _frames(people["alex_lacamoire"][0], 2)):
            cache.clear()
            answer = Client().post("/accounts/face-login/", {"username": username, "frames": frames()})
            answers[username].append((answer.status_code, answer.json()["detail"]))
    assert answers["ana"] == answers["bob"] == answers["cy"] == answers["nobody"], answers
    assert [status for status, _ in answers["ana"]] == [400, 400, 401]
