// Forms that delete ask first (their question is in data-confirm: no inline handlers under the CSP).
function askBeforeDeleting(root) {
  root.querySelectorAll("form[data-confirm]").forEach((form) => {
    form.addEventListener("submit", (event) => {
      if (!window.confirm(form.dataset.confirm)) event.preventDefault();
    });
  });
}
askBeforeDeleting(document);

// Webcam enrolment: a frame from getUserMedia is posted like a file upload (source "webcam"); the
// answer is shown in place: a spinner while it uploads, the new photo's card, or the quality
// gate's reason ("no face found", "too blurry"…) when it is refused.
(function () {
  const details = document.getElementById("webcam");
  const video = document.getElementById("preview");
  const status = document.getElementById("camera-status");
  const form = document.getElementById("upload-form");
  const capture = document.getElementById("capture");
  const faces = document.getElementById("faces");
  if (!details || !video || !form) return;
  let stream = null;
  const say = (text, kind) => { status.textContent = text; status.className = "upload-status " + (kind || ""); };

  details.addEventListener("toggle", async () => {
    if (details.open && !stream) {
      say("Starting the camera…", "busy");
      try {
        stream = await navigator.mediaDevices.getUserMedia({ video: { width: { ideal: 640 }, height: { ideal: 480 } } });
        // The button comes on with the first frame: before it there is nothing to take.
        video.addEventListener("playing", () => {
          capture.disabled = false;
          say("Look at the camera, face lit from the front, then take the photo.");
        }, { once: true });
        video.srcObject = stream;
      } catch (err) {
        say("The camera is unavailable: " + err.message, "bad");
      }
    }
  });

  capture.addEventListener("click", () => {
    if (!stream || !video.videoWidth) { say("Waiting for the camera…", "busy"); return; }
    const canvas = document.createElement("canvas");
    canvas.width = video.videoWidth;
    canvas.height = video.videoHeight;
    canvas.getContext("2d").drawImage(video, 0, 0);
    canvas.toBlob(async (blob) => {
      const data = new FormData(form);
      data.set("photo", blob, "webcam.jpg");
      data.set("source", "webcam");
      capture.disabled = true;
      say("Adding the photo — checking that it shows one clear face…", "busy");
      try {
        const response = await fetch(form.action || window.location.href, {
          method: "POST", body: data, credentials: "same-origin", headers: { Accept: "application/json" } });
        const answer = await response.json();
        if (response.ok) {
          document.getElementById("no-faces")?.remove();
          faces.insertAdjacentHTML("beforeend", answer.html);
          const card = faces.lastElementChild;
          askBeforeDeleting(card);
          say(answer.detail, "ok");
          // the new photo's thumbnail next to the message (the card itself is up in the gallery)
          const thumb = card.querySelector("img").cloneNode();
          thumb.width = 64; thumb.height = 64; thumb.className = "thumb";
          status.prepend(thumb);
        } else {
          say(answer.detail || "The photo was not added.", "bad");
        }
      } catch (err) {
        say("The portal is unreachable; the photo was not added.", "bad");
      }
      capture.disabled = false;
    }, "image/jpeg", 0.92);
  });
})();
