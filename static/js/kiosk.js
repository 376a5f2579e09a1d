// RollCall kiosk: webcam preview, a ~2 s burst of frames sent to /api/v1/check-ins, the outcome shown large.
(function () {
  const body = document.body;
  const video = document.getElementById("camera");
  const overlay = document.getElementById("overlay");
  const outcome = document.getElementById("outcome");
  const go = document.getElementById("go");
  const BURST_FRAMES = 24, BURST_FPS = 12;
  let token = localStorage.getItem("rollcall-device-token") || "";

  function show(text, kind) { outcome.textContent = text; outcome.className = "outcome " + kind; }
  function csrf() { const m = document.cookie.match(/csrftoken=([^;]+)/); return m ? m[1] : ""; }
  setInterval(() => { document.getElementById("clock").textContent = new Date().toLocaleTimeString(); }, 1000);

  document.getElementById("save-token").addEventListener("click", () => {
    token = document.getElementById("token").value.trim();
    localStorage.setItem("rollcall-device-token", token);
    show(token ? "Kiosk mode on." : "Token cleared.", "idle");
  });

  navigator.mediaDevices.getUserMedia({ video: { width: 640, height: 480 }, audio: false })
    .then((stream) => { video.srcObject = stream; })
    .catch((err) => show("Camera unavailable: " + err.message, "bad"));

  // A light face box: the browser's FaceDetector where it exists; otherwise a centred guide.
  const detector = ("FaceDetector" in window) ? new window.FaceDetector({ fastMode: true }) : null;
  async function drawBox() {
    const ctx = overlay.getContext("2d");
    overlay.width = video.videoWidth || 640; overlay.height = video.videoHeight || 480;
    ctx.clearRect(0, 0, overlay.width, overlay.height);
    ctx.lineWidth = 4; ctx.strokeStyle = "#60a5fa";
    let boxes = [];
    if (detector && video.readyState >= 2) {
      try { boxes = (await detector.detect(video)).map((f) => f.boundingBox); } catch (e) { boxes = []; }
    }
    if (!boxes.length) { const w = overlay.width * 0.36, h = overlay.height * 0.6; boxes = [{ x: (overlay.width - w) / 2, y: (overlay.height - h) / 2, width: w, height: h }]; ctx.setLineDash([12, 10]); }
    boxes.forEach((b) => ctx.strokeRect(b.x, b.y, b.width, b.height));
    ctx.setLineDash([]);
    setTimeout(drawBox, 250);
  }
  video.addEventListener("playing", drawBox);

  function grab() {
    const canvas = document.createElement("canvas");
    canvas.width = video.videoWidth; canvas.height = video.videoHeight;
    canvas.getContext("2d").drawImage(video, 0, 0);
    return new Promise((resolve) => canvas.toBlob(resolve, "image/jpeg", 0.88));
  }

  // What to ask for: a blink, or (challenge mode) a random head turn with a one-time token.
  async function askFor() {
    try {
      const response = await fetch(body.dataset.challengeApi, { method: "POST", credentials: "omit" });
      if (response.ok) return await response.json();
    } catch (err) { /* the check-in itself will report the portal unreachable */ }
    return { mode: "blink", challenge: null, prompt: "Look at the camera and blink" };
  }

  async function burst() {
    if (!video.videoWidth) { show("Waiting for the camera…", "warn"); return; }
    go.disabled = true;
    const ask = await askFor();
    const data = new FormData();
    let frames = BURST_FRAMES;
    if (ask.challenge) {
      data.append("challenge", ask.challenge);
      frames = BURST_FRAMES + 6;  // a turn takes a little longer than a blink
      show(ask.prompt + (ask.direction === "left" ? " ←" : " →"), "busy challenge");
      await new Promise((r) => setTimeout(r, 400));
    } else {
      show("Hold still and blink…", "busy");
    }
    for (let i = 0; i < frames; i++) {
      data.append("frames", await grab(), "frame" + i + ".jpg");
      await new Promise((r) => setTimeout(r, 1000 / BURST_FPS));
    }
    data.append("fps", String(BURST_FPS));
    show("Checking…", "busy");
    const headers = token ? { Authorization: "Device " + token } : { "X-CSRFToken": csrf() };
    try {
      const response = await fetch(body.dataset.api, { method: "POST", body: data, headers, credentials: token ? "omit" : "same-origin" });
      const answer = await response.json();
      if (!response.ok) { show(answer.detail || "Something went wrong.", "bad"); }
      else {
        const kind = { checked_in: "ok", checked_out: "ok", repeated: "ok", unknown: "bad", liveness_failed: "warn", no_face: "warn" }[answer.outcome] || "bad";
        show(answer.message, kind);
      }
    } catch (err) {
      show("The portal is unreachable.", "bad");
    }
    go.disabled = false;
    setTimeout(() => { if (!go.disabled) show("Look at the camera and press “Check in / out”.", "idle"); }, 8000);
  }
  go.addEventListener("click", burst);
})();
