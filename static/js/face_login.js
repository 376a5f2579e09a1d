// Face login: a 2 s burst from the webcam is posted with the username; the portal verifies and checks liveness.
(function () {
  const form = document.getElementById("face-login");
  const video = document.getElementById("camera");
  const status = document.getElementById("face-status");
  navigator.mediaDevices.getUserMedia({ video: { width: 640, height: 480 } })
    .then((s) => { video.srcObject = s; })
    .catch((e) => { status.textContent = "Camera unavailable: " + e.message; });
  function grab() {
    const c = document.createElement("canvas");
    c.width = video.videoWidth; c.height = video.videoHeight;
    c.getContext("2d").drawImage(video, 0, 0);
    return new Promise((r) => c.toBlob(r, "image/jpeg", 0.88));
  }
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const data = new FormData(form);
    let frames = 24;
    let ask = { challenge: null };
    try { ask = await (await fetch(form.dataset.challengeApi, { method: "POST", credentials: "omit" })).json(); } catch (e) { /* blink */ }
    if (ask.challenge) {
      data.append("challenge", ask.challenge);
      frames = 30;
      status.textContent = ask.prompt + "…";
    } else {
      status.textContent = "Hold still and blink…";
    }
    for (let i = 0; i < frames; i++) { data.append("frames", await grab(), "f" + i + ".jpg"); await new Promise((r) => setTimeout(r, 83)); }
    data.append("fps", "12");
    status.textContent = "Checking…";
    const response = await fetch(window.location.pathname, { method: "POST", body: data, credentials: "same-origin" });
    const answer = await response.json();
    if (answer.ok) { window.location = answer.next; } else { status.textContent = answer.detail; }
  });
})();
