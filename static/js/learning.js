// "Run now" progress on the Learning page: poll the run's JSON until it finishes, then reload.
(function () {
  const box = document.getElementById("learning-progress");
  if (!box) return;
  const bar = box.querySelector("progress");
  const stage = box.querySelector(".stage");
  async function poll() {
    try {
      const response = await fetch(box.dataset.url, { headers: { Accept: "application/json" } });
      if (response.ok) {
        const run = await response.json();
        bar.value = run.progress;
        stage.textContent = run.stage || run.status;
        if (run.status === "finished" || run.status === "failed") {
          window.location.reload();
          return;
        }
      }
    } catch (err) {
      stage.textContent = "waiting for the server…";
    }
    window.setTimeout(poll, 2000);
  }
  window.setTimeout(poll, 1000);
})();
