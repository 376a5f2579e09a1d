// RollCall live monitor: recognitions and device status pushed over a websocket (/ws/monitor/).
(() => {
  const root = document.getElementById("monitor");
  const list = document.getElementById("events");
  const status = document.getElementById("socket");
  const deviceSelect = document.getElementById("device");
  const previewBox = document.getElementById("preview"); // absent for those without the camera view
  const camera = document.getElementById("camera");
  const frame = document.getElementById("frame");
  const frameInfo = document.getElementById("frame-info");
  const offlineMs = Number(root.dataset.offlineSeconds) * 1000;
  const MAX_ROWS = 100;
  let socket = null;
  let retry = 1000;

  const text = (tag, value, cls) => { const el = document.createElement(tag); el.textContent = value; if (cls) el.className = cls; return el; };
  // Times in the site's zone (settings.TIME_ZONE) and 24 h, like the rows the server rendered.
  const clock = new Intl.DateTimeFormat("en-GB", { timeZone: root.dataset.timeZone || "UTC", hour: "2-digit", minute: "2-digit", second: "2-digit", hour12: false });
  const time = (iso) => clock.format(new Date(iso));

  function addRecognition(e) {
    list.querySelector(".empty")?.remove();
    const li = document.createElement("li");
    li.className = `event ${e.outcome} fresh`;
    li.dataset.device = e.device_id ?? "";
    if (e.thumbnail) {
      const img = document.createElement("img");
      img.src = e.thumbnail; img.alt = ""; img.width = 56; img.height = 56;
      li.append(img);
    } else {
      li.append(text("span", "", "noface"));
    }
    const body = document.createElement("div");
    body.append(text("strong", e.employee || "Unknown"), " ", text("span", e.outcome.replace("_", " "), `tag ${e.outcome}`), document.createElement("br"));
    const parts = [time(e.at), e.device || e.source];
    if (e.similarity !== null && e.similarity !== undefined) parts.push(`score ${e.similarity.toFixed(2)}`);
    if (e.liveness) parts.push(`liveness ${e.liveness}`);
    body.append(text("span", parts.join(" · "), "muted"));
    li.append(body);
    list.prepend(li);
    while (list.children.length > MAX_ROWS) list.lastElementChild.remove();
  }

  function setDevice(id, online, lastSeen) {
    const li = document.querySelector(`#devices li[data-device="${id}"]`);
    if (!li) return;
    if (lastSeen) li.dataset.lastSeen = lastSeen;
    li.className = online ? "online" : "offline";
    li.querySelector(".state").textContent = online ? "online" : "offline";
  }

  // Events a device gave up on (refused for good, or failing too long), from its heartbeat report.
  function setDeadLetters(id, count, recent) {
    const box = document.querySelector(`#devices li[data-device="${id}"] .dead-letters`);
    if (!box || count === undefined) return;
    box.hidden = !count;
    box.querySelector("summary").replaceChildren(text("span", String(count), "count"), ` dead letter${count === 1 ? "" : "s"}`);
    box.querySelector(".recent").replaceChildren(...(recent || []).map((letter) => {
      const li = document.createElement("li");
      li.append(text("code", letter.key), ` ${letter.captured_at}: ${letter.reason}`);
      return li;
    }));
  }

  // A device that stops sending heartbeats turns offline here even if no event says so.
  setInterval(() => {
    for (const li of document.querySelectorAll("#devices li[data-device]")) {
      const seen = Date.parse(li.dataset.lastSeen || "");
      if (li.className === "online" && (!seen || Date.now() - seen > offlineMs)) setDevice(li.dataset.device, false);
    }
  }, 5000);

  function watch() {
    if (!socket || socket.readyState !== WebSocket.OPEN) return;
    const device = deviceSelect.value ? Number(deviceSelect.value) : null;
    const preview = Boolean(previewBox && previewBox.checked) && device !== null;
    socket.send(JSON.stringify({ type: "watch", device, preview }));
    if (camera) camera.hidden = !preview;
    for (const li of list.querySelectorAll("li.event")) li.hidden = device !== null && li.dataset.device !== String(device);
  }

  function connect() {
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    socket = new WebSocket(`${scheme}://${location.host}${root.dataset.socket}`);
    socket.onopen = () => { status.textContent = "live"; status.className = "tag ok"; retry = 1000; watch(); };
    socket.onclose = (event) => {
      status.textContent = event.code === 4403 ? "not allowed" : event.code === 4401 ? "access changed" : "reconnecting…";
      status.className = "tag late";
      // 4401: the session ended or its rights changed: reload, so the page (or the login) shows what is allowed now.
      if (event.code === 4401) setTimeout(() => location.reload(), 1500);
      else if (event.code !== 4403) { setTimeout(connect, retry); retry = Math.min(retry * 2, 15000); }
    };
    socket.onmessage = (message) => {
      const e = JSON.parse(message.data);
      if (e.kind === "recognition") addRecognition(e);
      else if (e.kind === "device") { setDevice(e.device_id, e.online, e.last_seen_at); setDeadLetters(e.device_id, e.dead_letters, e.dead_letters_recent); }
      else if (e.kind === "preview" && frame) {
        frame.src = `data:image/jpeg;base64,${e.image}`;
        frameInfo.textContent = `${e.faces.length} face(s) · ${clock.format(new Date())}`;
        setDevice(e.device_id, true, new Date().toISOString());
      }
    };
  }

  deviceSelect.addEventListener("change", () => { history.replaceState(null, "", deviceSelect.value ? `?device=${deviceSelect.value}` : location.pathname); watch(); });
  if (previewBox) previewBox.addEventListener("change", watch);
  connect();
})();
