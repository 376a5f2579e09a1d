// RollCall kiosk: webcam preview, a ~2 s burst of frames sent to /api/v1/check-ins, the outcome shown large.
// It guides: it says when the kiosk is not set up (no manager session, no device token) before anyone
// tries, counts down while it captures, shows a spinner while the portal checks, and says what to do next.
(function () {
  const body = document.body;
  const video = document.getElementById("camera");
  const overlay = document.getElementById("overlay");
  const stage = document.getElementById("stage");
  const outcome = document.getElementById("outcome");
  const countdown = document.getElementById("countdown");
  const notice = document.getElementById("not-authorised");
  const go = document.getElementById("go");
  const BURST_FRAMES = 24, BURST_FPS = 12;
  const IDLE = "Look at the camera and press “Check in / out”.";
  const sessionOk = body.dataset.sessionOk === "1";
  let token = localStorage.getItem("rollcall-device-token") || "";
  let busy = false;

  function show(text, kind) { outcome.textContent = text; outcome.className = "outcome " + kind; }
  function csrf() { const m = document.cookie.match(/csrftoken=([^;]+)/); return m ? m[1] : ""; }
  const authorised = () => sessionOk || Boolean(token);

  // Not set up: say so before anyone blinks at it, and keep the button off.
  function refreshAuthorised() {
    notice.hidden = authorised();
    go.disabled = busy || !authorised();
    if (!authorised()) show("This kiosk is not set up yet — ask a manager.", "bad");
  }

  // The clock shows the site's time (settings.TIME_ZONE), not the browser's.
  const clockFormat = new Intl.DateTimeFormat("en-GB", { timeZone: body.dataset.timeZone || "UTC", hour: "2-digit", minute: "2-digit", second: "2-digit", hour12: false });
  const clock = document.getElementById("clock");
  const tick = () => { clock.textContent = clockFormat.format(new Date()); };
  tick(); setInterval(tick, 1000);

  document.getElementById("save-token").addEventListener("click", () => {
    token = document.getElementById("token").value.trim();
    localStorage.setItem("rollcall-device-token", token);
    document.getElementById("token").value = "";
    refreshAuthorised();
    if (token) show("Kiosk mode on. " + IDLE, "idle");
  });
  document.getElementById("clear-token").addEventListener("click", () => {
    token = ""; localStorage.removeItem("rollcall-device-token");
    refreshAuthorised();
    if (authorised()) show(IDLE, "idle");
  });
  refreshAuthorised();

  navigator.mediaDevices.getUserMedia({ video: { width: { ideal: 640 }, height: { ideal: 480 } }, audio: false })
    .then((stream) => { video.srcObject = stream; })
    .catch((err) => show("The camera is unavailable (" + err.message + ") — check that it is connected and allowed.", "bad"));

  // The stage takes the camera's shape: portrait and landscape cameras both show the whole picture.
  video.addEventListener("loadedmetadata", () => {
    if (video.videoWidth && video.videoHeight) stage.style.setProperty("--aspect", String(video.videoWidth / video.videoHeight));
    body.dataset.camera = "ready";
  });

  // A face guide: the browser's FaceDetector box where it exists; otherwise a centred oval sized
  // from the shorter side, so it fits both orientations.
  const detector = ("FaceDetector" in window) ? new window.FaceDetector({ fastMode: true }) : null;
  async function drawGuide() {
    const ctx = overlay.getContext("2d");
    overlay.width = video.videoWidth || 640; overlay.height = video.videoHeight || 480;
    ctx.clearRect(0, 0, overlay.width, overlay.height);
    ctx.lineWidth = Math.max(3, overlay.width / 160); ctx.strokeStyle = "#60a5fa";
    let boxes = [];
    if (detector && video.readyState >= 2) {
      try { boxes = (await detector.detect(video)).map((f) => f.boundingBox); } catch (e) { boxes = []; }
    }
    if (boxes.length) {
      boxes.forEach((b) => ctx.strokeRect(b.x, b.y, b.width, b.height));
    } else {
      const side = Math.min(overlay.width, overlay.height);
      ctx.setLineDash([14, 10]);
      ctx.beginPath();
      ctx.ellipse(overlay.width / 2, overlay.height / 2, side * 0.3, side * 0.4, 0, 0, 2 * Math.PI);
      ctx.stroke();
      ctx.setLineDash([]);
    }
    setTimeout(drawGuide, 250);
  }
  video.addEventListener("playing", drawGuide);

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
    return { mode: "blink", challenge: null, prompt: "Blink once while looking at the camera" };
  }

  // Seconds left of the capture, shown large on the picture.
  function showCountdown(framesLeft) {
    countdown.hidden = false;
    countdown.textContent = String(Math.max(1, Math.ceil(framesLeft / BURST_FPS)));
  }

  const KINDS = { checked_in: "ok", checked_out: "ok", repeated: "ok", unknown: "bad", liveness_failed: "warn", no_face: "warn" };

  async function burst() {
    if (!authorised()) { refreshAuthorised(); return; }
    if (!video.videoWidth) { show("Waiting for the camera…", "warn"); return; }
    busy = true; go.disabled = true;
    const ask = await askFor();
    const data = new FormData();
    let frames = BURST_FRAMES;
    if (ask.challenge) {
      data.append("challenge", ask.challenge);
      frames = BURST_FRAMES + 6;  // a turn takes a little longer than a blink
      show(ask.prompt + (ask.direction === "left" ? " ←" : " →"), "busy challenge");
      await new Promise((r) => setTimeout(r, 400));
    } else {
      show("Blink once while looking at the camera…", "busy capturing");
    }
    for (let i = 0; i < frames; i++) {
      showCountdown(frames - i);
      data.append("frames", await grab(), "frame" + i + ".jpg");
      await new Promise((r) => setTimeout(r, 1000 / BURST_FPS));
    }
    countdown.hidden = true;
    data.append("fps", String(BURST_FPS));
    show("Checking…", "busy checking");
    const headers = token ? { Authorization: "Device " + token } : { "X-CSRFToken": csrf() };
    try {
      const response = await fetch(body.dataset.api, { method: "POST", body: data, headers, credentials: token ? "omit" : "same-origin" });
      const answer = await response.json();
      if (response.status === 401 || response.status === 403) {
        show("This kiosk is not allowed to check people in — ask a manager to log in here or to enter a new device token.", "bad");
      } else if (!response.ok) {
        show((answer.detail || "Something went wrong.") + " Please try again.", "bad");
      } else {
        show(answer.message, KINDS[answer.outcome] || "bad");
      }
    } catch (err) {
      show("The portal is unreachable — try again in a moment, or tell a manager.", "bad");
    }
    busy = false;
    refreshAuthorised();
    setTimeout(() => { if (!busy && authorised()) show(IDLE, "idle"); }, 8000);
  }
  go.addEventListener("click", burst);
})();
