// Forms that delete ask first (their question is in data-confirm: no inline handlers under the CSP).
document.querySelectorAll("form[data-confirm]").forEach((form) => {
  form.addEventListener("submit", (event) => {
    if (!window.confirm(form.dataset.confirm)) event.preventDefault();
  });
});

// Webcam enrolment: a frame from getUserMedia is posted like a file upload.
(function () {
  const details = document.getElementById("webcam");
  const video = document.getElementById("preview");
  const status = document.getElementById("camera-status");
  const form = document.getElementById("upload-form");
  if (!details || !video || !form) return;
  let stream = null;
  details.addEventListener("toggle", async () => {
    if (details.open && !stream) {
      try {
        stream = await navigator.mediaDevices.getUserMedia({ video: { width: 640, height: 480 } });
        video.srcObject = stream;
        status.textContent = "Look at the camera.";
      } catch (err) {
        status.textContent = "Camera unavailable: " + err.message;
      }
    }
  });
  document.getElementById("capture").addEventListener("click", () => {
    if (!stream) return;
    const canvas = document.createElement("canvas");
    canvas.width = video.videoWidth;
    canvas.height = video.videoHeight;
    canvas.getContext("2d").drawImage(video, 0, 0);
    canvas.toBlob((blob) => {
      const data = new FormData(form);
      data.set("photo", blob, "webcam.jpg");
      status.textContent = "Adding…";
      fetch(form.action || window.location.href, { method: "POST", body: data, credentials: "same-origin" })
        .then(() => window.location.reload());
    }, "image/jpeg", 0.92);
  });
})();
