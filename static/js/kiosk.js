// RollCall kiosk: webcam preview, a ~2 s burst of frames, the outcome shown large.
// It guides: it says when the kiosk is not set up (no manager session, no device token) before anyone
// tries, counts down while it captures, shows a spinner while the portal checks, and says what to do next.
// With a manager's session or a device token (sent as the socket's first "auth" message) each frame
// goes to the portal's kiosk socket (/ws/kiosk/) as soon as it is taken, so the answer is ready when
// the capture ends; without the socket (a proxy without websockets, a socket refused or failing before
// the burst ends, an error reply) the frames already taken go to /api/v1/check-ins.
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
    closeSocket();
    refreshAuthorised();
    if (token) show("Kiosk mode on. " + IDLE, "idle");
  });
  document.getElementById("clear-token").addEventListener("click", () => {
    token = ""; localStorage.removeItem("rollcall-device-token");
    closeSocket();
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

  // The kiosk socket: opened on the first check-in and kept for the next ones. A manager's session
  // authenticates it; a device token (a browser cannot put it on a websocket's handshake) goes in a
  // first {"type": "auth"} message. Not open within 3 s, or refused: null, and the burst uses REST.
  const streamUrl = body.dataset.stream ? (location.protocol === "https:" ? "wss://" : "ws://") + location.host + body.dataset.stream : "";
  // Longer than the portal waits for a worker (ROLLCALL_TASK_WAIT_SECONDS, 60 s by default).
  const ANSWER_WAIT_MS = 75000;
  const UNANSWERED = { outcome: "unanswered",
    message: "No answer from the portal — press the button again to see whether you were checked in." };
  let socket = null;
  function closeSocket() { if (socket) { socket.close(); socket = null; } }
  function openSocket() {
    if (!streamUrl || !authorised()) return Promise.resolve(null);
    if (socket && socket.readyState === WebSocket.OPEN) return Promise.resolve(socket);
    return new Promise((resolve) => {
      let ws;
      try { ws = new WebSocket(streamUrl); } catch (err) { resolve(null); return; }
      const timer = setTimeout(() => { ws.close(); resolve(null); }, 3000);
      const ready = () => { clearTimeout(timer); ws.removeEventListener("message", authorisedAnswer); socket = ws; resolve(ws); };
      const authorisedAnswer = (event) => {
        let message;
        try { message = JSON.parse(event.data); } catch (err) { message = {}; }
        if (message.type === "authorised") ready(); else ws.close();
      };
      ws.addEventListener("open", () => {
        if (!token) { ready(); return; }
        ws.addEventListener("message", authorisedAnswer);
        ws.send(JSON.stringify({ type: "auth", token }));
      });
      ws.addEventListener("close", () => { clearTimeout(timer); if (socket === ws) socket = null; resolve(null); });
    });
  }

  // One burst over the socket: burst_start, a frame as each is taken, burst_end, then the decision.
  // Any error or a closed socket ends it as failed (the caller sends the frames over REST instead).
  function openStream(ws, ask) {
    const stream = { failed: false, sent: Promise.resolve() };
    let settle;
    stream.result = new Promise((resolve) => { settle = resolve; });
    const detach = () => { ws.removeEventListener("message", onMessage); ws.removeEventListener("close", fail); };
    // A failed stream's socket is closed: whatever comes late on it belongs to nobody.
    const fail = () => {
      if (!stream.failed) { stream.failed = true; detach(); ws.close(); }
      settle(null);
    };
    const onMessage = (event) => {
      let message;
      try { message = JSON.parse(event.data); } catch (err) { return; }
      if (message.type === "decision" && message.answer) settle(message.answer);
      else if (message.type === "error") { stream.refused = true; fail(); }  // an error: nothing was written
    };
    ws.addEventListener("message", onMessage);
    ws.addEventListener("close", fail);
    stream.send = (message) => {
      if (stream.failed || ws.readyState !== WebSocket.OPEN) { fail(); return; }
      try { ws.send(JSON.stringify(message)); } catch (err) { fail(); }
    };
    // In capture order (the portal tracks the face from one frame to the next), without holding up the capture.
    stream.frame = (index, blob) => {
      const jpeg = base64Of(blob);
      stream.sent = stream.sent.then(() => jpeg).then((data) => stream.send({ type: "frame", index, jpeg: data, box: null }), fail);
    };
    // After burst_end the portal may have written the check-in even when no answer reaches us (a
    // dropped socket, a slow worker): sending the frames again over REST could count it twice, so
    // only a refusal (an error reply: nothing written) or a failure before burst_end falls back.
    stream.finish = async (frames) => {
      await stream.sent;
      if (stream.failed) return null;
      stream.send({ type: "burst_end", frames });
      const timeout = new Promise((resolve) => setTimeout(() => resolve(null), ANSWER_WAIT_MS));
      const answer = await Promise.race([stream.result, timeout]);
      if (answer) { detach(); return answer; }
      const refused = stream.refused;
      fail();
      return refused ? null : UNANSWERED;
    };
    // No captured_at: as over REST, the portal's clock times a kiosk (a kiosk PC's clock may be wrong).
    const start = { type: "burst_start", fps: BURST_FPS };
    if (ask.challenge) start.challenge = ask.challenge;
    stream.send(start);
    return stream;
  }

  function base64Of(blob) {
    return new Promise((resolve, reject) => {
      const reader = new FileReader();
      reader.addEventListener("load", () => resolve(String(reader.result).split(",", 2)[1]));
      reader.addEventListener("error", () => reject(reader.error));
      reader.readAsDataURL(blob);
    });
  }

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

  const KINDS = { checked_in: "ok", checked_out: "ok", repeated: "ok", unknown: "bad", liveness_failed: "warn", no_face: "warn", unanswered: "warn" };

  async function burst() {
    if (!authorised()) { refreshAuthorised(); return; }
    if (!video.videoWidth) { show("Waiting for the camera…", "warn"); return; }
    busy = true; go.disabled = true;
    const [ask, ws] = await Promise.all([askFor(), openSocket()]);
    const stream = ws ? openStream(ws, ask) : null;
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
      const frame = await grab();
      data.append("frames", frame, "frame" + i + ".jpg");
      if (stream && !stream.failed) stream.frame(i, frame);
      await new Promise((r) => setTimeout(r, 1000 / BURST_FPS));
    }
    countdown.hidden = true;
    data.append("fps", String(BURST_FPS));
    show("Checking…", "busy checking");
    const streamed = stream && !stream.failed ? await stream.finish(frames) : null;
    if (streamed) {
      body.dataset.checkedVia = "stream";
      show(streamed.message, KINDS[streamed.outcome] || "bad");
    } else {
      body.dataset.checkedVia = "rest";
      await restCheckIn(data);
    }
    busy = false;
    refreshAuthorised();
    setTimeout(() => { if (!busy && authorised()) show(IDLE, "idle"); }, 8000);
  }

  async function restCheckIn(data) {
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
  }
  go.addEventListener("click", burst);
})();
