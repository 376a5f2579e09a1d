// The gallery map: the JSON from data-url drawn on an SVG (no inline script or style under the CSP).
(function () {
  "use strict";
  const root = document.getElementById("gallery-map");
  if (!root) return;
  const SVG = "http://www.w3.org/2000/svg";
  const SIZE = 1000, PAD = 50, R = 11;
  const svg = document.getElementById("map-svg");
  const tip = document.getElementById("map-tip");
  const status = document.getElementById("map-status");
  const select = document.getElementById("map-version");
  const SHAPES = ["circle", "square", "triangle", "diamond", "cross"];
  let data = null, layout = "tsne", shapes = {}, colours = {}, names = {}, nodes = [];

  function el(name, attrs) {
    const node = document.createElementNS(SVG, name);
    for (const key in attrs) node.setAttribute(key, attrs[key]);
    return node;
  }

  function marker(shape, x, y, r, fill) {
    if (shape === "circle") return el("circle", { cx: x, cy: y, r: r, fill: fill });
    if (shape === "square") return el("rect", { x: x - r, y: y - r, width: 2 * r, height: 2 * r, fill: fill });
    const pts = {
      triangle: [[0, -1.2], [1.1, 0.9], [-1.1, 0.9]],
      diamond: [[0, -1.3], [1.3, 0], [0, 1.3], [-1.3, 0]],
      cross: [[-0.4, -1.2], [0.4, -1.2], [0.4, -0.4], [1.2, -0.4], [1.2, 0.4], [0.4, 0.4], [0.4, 1.2], [-0.4, 1.2],
        [-0.4, 0.4], [-1.2, 0.4], [-1.2, -0.4], [-0.4, -0.4]],
    }[shape];
    return el("polygon", { points: pts.map((p) => (x + p[0] * r) + "," + (y + p[1] * r)).join(" "), fill: fill });
  }

  function swatch(shape, fill) {
    const small = el("svg", { width: 16, height: 16, viewBox: "0 0 16 16", "aria-hidden": "true" });
    small.appendChild(marker(shape, 8, 8, 6, fill));
    return small;
  }

  function item(list, parts, onHover) {
    const li = document.createElement("li");
    parts.forEach((part) => li.append(part));
    if (onHover) {
      li.addEventListener("mouseenter", () => onHover(true));
      li.addEventListener("mouseleave", () => onHover(false));
    }
    list.appendChild(li);
    return li;
  }

  function link(text, href) {
    const a = document.createElement("a");
    a.textContent = text;
    a.href = href;
    return a;
  }

  function focus(faces, on) {
    nodes.forEach((node) => node.classList.toggle("dim", on && !faces.has(node.dataset.face)));
  }

  function facesOf(personIds) {
    return new Set(data.points.filter((p) => personIds.includes(p.person)).map((p) => String(p.face)));
  }

  function showTip(point, node) {
    const img = tip.querySelector("img");
    img.src = point.crop;
    img.alt = "photo of " + names[point.person];
    let text = names[point.person] + " · " + point.source_label;
    if (point.suspect) text += " · closer to another person";
    tip.querySelector("span").textContent = text;
    tip.hidden = false;
    const box = svg.getBoundingClientRect(), at = node.getBoundingClientRect();
    const left = at.left - box.left + at.width + 8, top = at.top - box.top - 20;
    tip.style.left = Math.min(left, box.width - 130) + "px";
    tip.style.top = Math.max(0, Math.min(top, box.height - 150)) + "px";
    node.classList.add("hover");
    if (svg.lastChild !== node) svg.appendChild(node); // on top of any point it overlaps
  }

  function hideTip(node) {
    tip.hidden = true;
    node.classList.remove("hover");
  }

  function draw() {
    svg.replaceChildren();
    nodes = [];
    const span = SIZE - 2 * PAD;
    data.points.forEach((point) => {
      const xy = point[layout];
      const node = marker(shapes[point.source], PAD + xy[0] * span, PAD + (1 - xy[1]) * span, R, colours[point.person]);
      node.classList.add("point");
      if (point.suspect) node.classList.add("suspect");
      node.dataset.face = String(point.face);
      node.dataset.person = String(point.person);
      node.dataset.source = point.source;
      const title = el("title", {});
      title.textContent = names[point.person] + " (" + point.source_label + ")";
      node.appendChild(title);
      node.addEventListener("mouseenter", () => showTip(point, node));
      node.addEventListener("mouseleave", () => hideTip(node));
      svg.appendChild(node);
      nodes.push(node);
    });
    svg.dataset.layout = layout;
    svg.dataset.points = String(nodes.length);
  }

  function lists() {
    const sources = document.getElementById("map-sources");
    const suspects = document.getElementById("map-suspects");
    const lookalikes = document.getElementById("map-lookalikes");
    const people = document.getElementById("map-people");
    [sources, suspects, lookalikes, people].forEach((list) => list.replaceChildren());
    const labels = {};
    data.points.forEach((p) => { labels[p.source] = p.source_label; });
    Object.keys(shapes).forEach((source) => {
      item(sources, [swatch(shapes[source], "#6b7280"), labels[source]],
        (on) => focus(new Set(data.points.filter((p) => p.source === source).map((p) => String(p.face))), on));
    });
    const flagged = document.createElement("span");
    flagged.textContent = "red ring: closer to another person";
    item(sources, [flagged]);
    data.suspects.forEach((s) => {
      item(suspects, [swatch("circle", colours[s.person]), link(names[s.person], galleryOf(s.person)),
        ": a photo is closer to " + names[s.closer_to] + " (" + s.other.toFixed(2) + " vs " + s.own.toFixed(2) + ")"],
      (on) => focus(new Set([String(s.face)]), on));
    });
    if (!data.suspects.length) item(suspects, ["None."]);
    data.lookalikes.forEach((pair) => {
      item(lookalikes, [link(names[pair.a], galleryOf(pair.a)), " and ", link(names[pair.b], galleryOf(pair.b)),
        " (" + pair.similarity.toFixed(2) + ")"], (on) => focus(facesOf([pair.a, pair.b]), on));
    });
    if (!data.lookalikes.length) item(lookalikes, ["None."]);
    data.people.forEach((person) => {
      const count = data.points.filter((p) => p.person === person.id).length;
      item(people, [swatch("circle", colours[person.id]), link(person.name, person.gallery), " · " + count],
        (on) => focus(facesOf([person.id]), on));
    });
  }

  function galleryOf(id) {
    const person = data.people.find((p) => p.id === id);
    return person ? person.gallery : "#";
  }

  function versions(list, current) {
    const label = root.querySelector(".map-version");
    label.hidden = list.length < 2;
    select.replaceChildren();
    list.forEach((v, i) => {
      const option = document.createElement("option");
      option.value = v.key;
      option.textContent = (v.current ? "current: " : "earlier: ") + v.embedder +
        (v.model_version ? " · learned model version " + v.model_version : " · base model") + " #" + (i + 1) +
        (v.built_at ? " (map of " + v.built_at.slice(0, 10) + ")" : "");
      option.title = v.key;
      option.selected = v.key === current;
      select.appendChild(option);
    });
  }

  function show(answer) {
    data = answer;
    shapes = {};
    Array.from(new Set(data.points.map((p) => p.source))).sort().forEach((s, i) => { shapes[s] = SHAPES[i % SHAPES.length]; });
    names = {};
    colours = {};
    data.people.forEach((person, i) => {
      names[person.id] = person.name;
      colours[person.id] = "hsl(" + Math.round((i * 137.508) % 360) + ", 70%, " + (i % 2 ? 42 : 55) + "%)";
    });
    draw();
    lists();
    status.textContent = data.points.length + " photos of " + data.people.length + " people · " +
      (data.suspects.length ? data.suspects.length + " possibly misfiled · " : "") +
      data.lookalikes.length + " look-alike pair" + (data.lookalikes.length === 1 ? "" : "s");
    root.dataset.state = "ready";
  }

  function load(version) {
    const url = root.dataset.url + (version ? "?version=" + encodeURIComponent(version) : "");
    fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then((response) => response.json().then((body) => ({ code: response.status, body: body })))
      .then(({ code, body }) => {
        versions(body.versions || [], body.version);
        if (code === 202) {
          status.textContent = "The map is being computed…";
          window.setTimeout(() => load(version), 2000);
        } else if (code === 200) {
          show(body);
        } else {
          status.textContent = "The map could not be loaded.";
        }
      })
      .catch(() => { status.textContent = "The map could not be loaded."; });
  }

  root.querySelectorAll(".map-layout").forEach((button) => {
    button.addEventListener("click", () => {
      layout = button.dataset.layout;
      root.querySelectorAll(".map-layout").forEach((b) => {
        b.classList.toggle("selected", b === button);
        b.setAttribute("aria-pressed", String(b === button));
      });
      if (data) draw();
    });
  });
  select.addEventListener("change", () => load(select.value));
  load("");
})();
