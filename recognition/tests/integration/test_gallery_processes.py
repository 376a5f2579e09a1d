"""A new enrolment reaches other processes through the gallery change journal: two separate
Python processes hold the index, a third enrols a person through the service, and each of the two
answers with that person without rebuilding its index from every embedding (shared SQLite file)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
FACES = ROOT / "recognition" / "fixtures" / "faces" / "people"

CHILD = textwrap.dedent('''
    import json, os, sys, time
    import django
    sys.path.insert(0, os.environ["ROLLCALL_ROOT"])
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")
    django.setup()
    from pathlib import Path
    from portal.models import Employee
    from recognition import selectors
    from recognition.engine import get_pipeline, match_threshold
    from recognition.pipeline.image import load_image
    from recognition.services import face_enroll

    mode, faces = sys.argv[1], Path(sys.argv[2])
    if mode == "seed":
        for i, name in enumerate(["barack_obama", "joe_biden", "kit_harington", "alex_lacamoire"]):
            person = Employee.objects.create(code=f"S-{i}", full_name=name)
            face_enroll(employee=person, data=(faces / name / "1.jpg").read_bytes())
        print(json.dumps({"target": Employee.objects.create(code="NEW", full_name="rose_leslie").pk}), flush=True)
    elif mode == "enrol":
        face_enroll(employee=Employee.objects.get(code="NEW"), data=(faces / "rose_leslie" / "1.jpg").read_bytes())
        print(json.dumps({"enrolled_at": time.time()}), flush=True)
    else:  # a reader: answer the probe until the new person is recognised
        target = Employee.objects.get(code="NEW").pk
        probe = get_pipeline().embed_single(load_image((faces / "rose_leslie" / "2.jpg").read_bytes())).vector
        answer = selectors.gallery_index().decide(probe, threshold=match_threshold())
        assert not (answer.known and answer.best.label == target)
        print("READY", flush=True)
        deadline = time.time() + 120
        while time.time() < deadline:
            answer = selectors.gallery_index().decide(probe, threshold=match_threshold())
            if answer.known and answer.best.label == target:
                print(json.dumps({"seen_at": time.time(), "loads": selectors.index_loads}), flush=True)
                break
            time.sleep(0.02)
''')


@pytest.mark.integration
def test_a_new_enrolment_reaches_every_process_without_a_full_reload(tmp_path: Path) -> None:
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("DJANGO_")},
           "DATABASE_URL": f"sqlite:///{tmp_path / 'gallery.sqlite3'}", "MEDIA_ROOT": str(tmp_path / "media"),
           "ROLLCALL_VAR_DIR": str(tmp_path / "var"), "ROLLCALL_ROOT": str(ROOT), "ROLLCALL_TORCH_THREADS": "1"}
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    subprocess.run([sys.executable, str(ROOT / "manage.py"), "migrate", "--noinput", "-v0"], env=env, cwd=ROOT, check=True)
    subprocess.run([sys.executable, str(script), "seed", str(FACES)], env=env, cwd=ROOT, check=True, capture_output=True)
    readers = [subprocess.Popen([sys.executable, str(script), "read", str(FACES)], env=env, cwd=ROOT, text=True,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE) for _ in range(2)]
    try:
        for reader in readers:
            line = reader.stdout.readline()
            assert line.strip() == "READY", reader.stderr.read()
        enrolled = subprocess.run([sys.executable, str(script), "enrol", str(FACES)], env=env, cwd=ROOT, check=True,
                                  capture_output=True, text=True)
        enrolled_at = json.loads(enrolled.stdout.strip().splitlines()[-1])["enrolled_at"]
        for reader in readers:
            out, err = reader.communicate(timeout=120)
            assert out.strip(), err
            seen = json.loads(out.strip().splitlines()[-1])
            # one full load at start-up; the enrolment came through the journal
            assert seen["loads"]["full"] == 1 and seen["loads"]["incremental"] >= 1, seen
            assert seen["seen_at"] - enrolled_at < 5
    finally:
        for reader in readers:
            if reader.poll() is None:
                reader.kill()
                reader.wait()
