// hummingbird label: the page. Plain JavaScript, no build step, no network beyond this server.
"use strict";
(function () {
  const token = new URLSearchParams(location.search).get("token") || "";
  const hb = window.hb = {
    images: [], classes: [], open: null, labels: null, width: 0, height: 0, version: 0, active: 0,
    tool: "brush", saves: 0, savedVersion: 0, predictionLoads: 0, prediction: null, predictionStats: null,
    neighbourLoads: 0, exports: 0, error: null,
  };
  const $ = (id) => document.getElementById(id);
  const api = async (path, options = {}) => {
    const headers = Object.assign({ Authorization: "Bearer " + token }, options.headers || {});
    const response = await fetch(path, Object.assign({}, options, { headers }));
    return response;
  };
  const json = async (path, options) => {
    const response = await api(path, options);
    const data = await response.json();
    if (!response.ok) { const e = new Error(data.error || response.statusText); e.status = response.status; throw e; }
    return data;
  };
  const say = (text) => { $("message").textContent = text || ""; };
  const enc = encodeURIComponent;
  const withToken = (path) => path + (path.includes("?") ? "&" : "?") + "token=" + enc(token);

  // ------------------------------------------------------------------ index PNG encoding (grayscale, zlib via CompressionStream)
  const crcTable = new Uint32Array(256).map((_, n) => {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    return c >>> 0;
  });
  function crc32(bytes) {
    let c = 0xffffffff;
    for (let i = 0; i < bytes.length; i++) c = crcTable[(c ^ bytes[i]) & 0xff] ^ (c >>> 8);
    return (c ^ 0xffffffff) >>> 0;
  }
  function chunk(type, data) {
    const out = new Uint8Array(12 + data.length);
    const view = new DataView(out.buffer);
    view.setUint32(0, data.length);
    for (let i = 0; i < 4; i++) out[4 + i] = type.charCodeAt(i);
    out.set(data, 8);
    view.setUint32(8 + data.length, crc32(out.subarray(4, 8 + data.length)));
    return out;
  }
  async function indexPng(values, width, height) {
    const raw = new Uint8Array((width + 1) * height);
    for (let y = 0; y < height; y++) raw.set(values.subarray(y * width, (y + 1) * width), y * (width + 1) + 1);
    const stream = new Blob([raw]).stream().pipeThrough(new CompressionStream("deflate"));
    const idat = new Uint8Array(await new Response(stream).arrayBuffer());
    const ihdr = new Uint8Array(13);
    const v = new DataView(ihdr.buffer);
    v.setUint32(0, width); v.setUint32(4, height); ihdr[8] = 8; ihdr[9] = 0;
    const sig = new Uint8Array([137, 80, 78, 71, 13, 10, 26, 10]);
    return new Blob([sig, chunk("IHDR", ihdr), chunk("IDAT", idat), chunk("IEND", new Uint8Array(0))], { type: "image/png" });
  }

  // ------------------------------------------------------------------ classes
  const rgb = (hex) => [1, 3, 5].map((i) => parseInt(hex.slice(i, i + 2), 16));
  function renderClasses() {
    const list = $("classes");
    list.innerHTML = "";
    hb.classes.forEach((c, i) => {
      const li = document.createElement("li");
      li.dataset.index = i;
      li.className = i === hb.active ? "active" : "";
      li.innerHTML = `<span class="swatch" style="background:${c.colour}"></span><span class="key">${i < 9 ? i + 1 : ""}</span><span class="cname"></span>`;
      li.querySelector(".cname").textContent = c.name;
      li.onclick = () => { hb.active = i; renderClasses(); };
      list.appendChild(li);
    });
  }
  async function saveClasses(names) {
    try { hb.classes = await json("api/classes", { method: "PUT", body: JSON.stringify({ names }), headers: { "Content-Type": "application/json" } }); }
    catch (e) { say(e.message); }
    renderClasses();
    drawAnnotation();
  }
  $("add-class").onclick = () => {
    const name = $("class-name").value.trim();
    if (name) saveClasses(hb.classes.map((c) => c.name).concat([name]));
  };
  $("rename-class").onclick = () => {
    const name = $("class-name").value.trim();
    if (!name) return;
    const names = hb.classes.map((c) => c.name);
    names[hb.active] = name;
    saveClasses(names);
  };

  // ------------------------------------------------------------------ gallery
  let order = null;
  const visible = new Set();
  const observer = new IntersectionObserver((entries) => {
    for (const e of entries) (e.isIntersecting ? visible.add(e.target.dataset.name) : visible.delete(e.target.dataset.name));
  });
  function renderGallery() {
    const gallery = $("gallery");
    const names = order || hb.images.map((i) => i.name);
    const byName = Object.fromEntries(hb.images.map((i) => [i.name, i]));
    for (const name of names) {
      const info = byName[name];
      let item = gallery.querySelector(`.thumb[data-name="${CSS.escape(name)}"]`);
      if (!item) {
        item = document.createElement("div");
        item.className = "thumb";
        item.dataset.name = name;
        item.innerHTML = `<img class="base" loading="lazy"><span class="badge"></span><div class="name"></div>`;
        item.querySelector("img.base").src = withToken("api/thumbnails/" + enc(name));
        item.querySelector(".name").textContent = name;
        item.onclick = () => openImage(name);
        observer.observe(item);
      }
      gallery.appendChild(item);  // in the current order
      item.dataset.status = info.status;
      item.classList.toggle("open", name === hb.open);
      item.querySelector(".badge").textContent = info.status + (info.confidence !== undefined ? ` ${Math.round(info.confidence * 100)}%` : "");
    }
  }
  async function refreshImages(withConfidence) {
    hb.images = await json("api/images" + (withConfidence ? "?confidence=1" : ""));
    renderGallery();
  }
  async function refreshThumbnails() {
    for (const name of Array.from(visible)) {
      const info = hb.images.find((i) => i.name === name);
      const item = document.querySelector(`.thumb[data-name="${CSS.escape(name)}"]`);
      if (!info || !item) continue;
      let pred = item.querySelector("img.pred");
      if (info.status !== "predicted") { if (pred) pred.remove(); continue; }
      if (!pred) { pred = document.createElement("img"); pred.className = "pred"; item.insertBefore(pred, item.querySelector(".badge")); }
      pred.src = withToken(`api/predictions/${enc(name)}?m=${hb.memoryVersion || 0}`);
    }
  }
  $("sort-name").onclick = () => { order = null; refreshImages(false); };
  $("sort-confidence").onclick = async () => {
    say("scoring every prediction …");
    await refreshImages(true);
    const score = (i) => (i.status === "predicted" ? i.confidence : i.status === "annotated" ? 2 : 3);
    order = hb.images.slice().sort((a, b) => score(a) - score(b)).map((i) => i.name);
    renderGallery();
    say("least confident first");
  };

  // ------------------------------------------------------------------ editor
  const layers = { image: $("image-layer"), prediction: $("prediction-layer"), annotation: $("annotation-layer"), input: $("canvas") };
  let scratch = null, undoStack = [], redoStack = [], stroke = null, lassoPoints = [];
  let zoom = 1, panX = 0, panY = 0;
  function applyView() { $("stage").style.transform = `translate(${panX}px, ${panY}px) scale(${zoom})`; }
  function fit() {
    const box = $("viewport").getBoundingClientRect();
    zoom = Math.min(box.width / hb.width, box.height / hb.height) || 1;
    panX = (box.width - hb.width * zoom) / 2; panY = (box.height - hb.height * zoom) / 2;
    applyView();
  }
  $("zoom-reset").onclick = fit;
  function drawAnnotation() {
    if (!hb.labels) return;
    const ctx = layers.annotation.getContext("2d");
    const img = ctx.createImageData(hb.width, hb.height);
    const colours = hb.classes.map((c) => rgb(c.colour));
    for (let i = 0; i < hb.labels.length; i++) {
      const v = hb.labels[i];
      if (v === 255 || !colours[v]) continue;
      const c = colours[v];
      img.data[4 * i] = c[0]; img.data[4 * i + 1] = c[1]; img.data[4 * i + 2] = c[2]; img.data[4 * i + 3] = 255;
    }
    ctx.putImageData(img, 0, 0);
  }
  function drawPrediction() {
    const ctx = layers.prediction.getContext("2d");
    ctx.clearRect(0, 0, hb.width, hb.height);
    if (!$("show-prediction").checked && !$("show-confidence").checked) return;
    if ($("show-confidence").checked && hb.confidenceImage) ctx.drawImage(hb.confidenceImage, 0, 0);
    else if (hb.predictionImage) ctx.drawImage(hb.predictionImage, 0, 0);
  }
  async function loadPrediction() {
    const name = hb.open;
    const response = await api(`api/predictions/${enc(name)}`);
    if (response.status === 409) { hb.prediction = null; hb.predictionImage = null; drawPrediction(); return; }
    if (!response.ok || name !== hb.open) return;
    const blob = await response.blob();
    const bitmap = await createImageBitmap(blob);
    const raw = await api(`api/predictions/${enc(name)}?format=raw`);
    hb.prediction = new Uint8Array(await raw.arrayBuffer());
    const counts = {};
    for (const v of hb.prediction) counts[v] = (counts[v] || 0) + 1;
    hb.predictionStats = counts;
    hb.predictionImage = bitmap;
    if ($("show-confidence").checked) {
      const c = await api(`api/confidence/${enc(name)}`);
      if (c.ok) hb.confidenceImage = await createImageBitmap(await c.blob());
    }
    hb.predictionLoads += 1;
    drawPrediction();
  }
  async function openImage(name) {
    const info = hb.images.find((i) => i.name === name);
    if (!info) return;
    await flush();
    hb.open = name; hb.width = info.width; hb.height = info.height;
    undoStack = []; redoStack = []; lassoPoints = [];
    for (const c of Object.values(layers)) { c.width = hb.width; c.height = hb.height; }
    scratch = document.createElement("canvas"); scratch.width = hb.width; scratch.height = hb.height;
    const img = new Image();
    img.src = withToken("api/images/" + enc(name));
    await img.decode();
    layers.image.getContext("2d").drawImage(img, 0, 0, hb.width, hb.height);
    const response = await api(`api/annotations/${enc(name)}?format=raw`);
    hb.labels = response.ok ? new Uint8Array(await response.arrayBuffer()) : new Uint8Array(hb.width * hb.height).fill(255);
    hb.version = response.ok ? Number(response.headers.get("X-Version")) : 0;
    hb.predictionImage = null; hb.confidenceImage = null;
    drawAnnotation(); fit(); renderGallery();
    $("image-info").textContent = `${name} — ${hb.width}×${hb.height} — ${info.status}`;
    await loadPrediction();
  }
  function toImage(event) {
    const box = layers.input.getBoundingClientRect();
    return [(event.clientX - box.left) * hb.width / box.width, (event.clientY - box.top) * hb.height / box.height];
  }
  function snapshot() { undoStack.push(hb.labels.slice()); if (undoStack.length > 50) undoStack.shift(); redoStack = []; }
  function applyScratch(value) {
    const data = scratch.getContext("2d").getImageData(0, 0, hb.width, hb.height).data;
    let changed = false;
    for (let i = 0; i < hb.labels.length; i++) if (data[4 * i + 3] >= 128 && hb.labels[i] !== value) { hb.labels[i] = value; changed = true; }
    scratch.getContext("2d").clearRect(0, 0, hb.width, hb.height);
    layers.input.getContext("2d").clearRect(0, 0, hb.width, hb.height);
    return changed;
  }
  function strokeColour() { return hb.tool === "eraser" ? "rgba(255,255,255,0.8)" : hb.classes[hb.active].colour; }
  function drawStroke() {
    const ctx = scratch.getContext("2d");
    ctx.clearRect(0, 0, hb.width, hb.height);
    ctx.fillStyle = ctx.strokeStyle = "#fff";
    const pts = stroke.points;
    ctx.beginPath();
    if (stroke.tool === "lasso") {
      ctx.moveTo(pts[0][0], pts[0][1]);
      for (const p of pts.slice(1)) ctx.lineTo(p[0], p[1]);
      ctx.closePath(); ctx.fill();
    } else {
      ctx.lineWidth = Number($("brush-size").value) * 2; ctx.lineCap = ctx.lineJoin = "round";
      ctx.moveTo(pts[0][0], pts[0][1]);
      for (const p of pts) ctx.lineTo(p[0], p[1]);
      if (pts.length === 1) ctx.lineTo(pts[0][0] + 0.01, pts[0][1]);
      ctx.stroke();
    }
    const view = layers.input.getContext("2d");
    view.clearRect(0, 0, hb.width, hb.height);
    view.globalAlpha = 0.7; view.drawImage(scratch, 0, 0);
    view.globalCompositeOperation = "source-in"; view.fillStyle = strokeColour(); view.fillRect(0, 0, hb.width, hb.height);
    view.globalCompositeOperation = "source-over"; view.globalAlpha = 1;
  }
  let panning = null, spaceDown = false;
  layers.input.addEventListener("contextmenu", (e) => e.preventDefault());
  layers.input.addEventListener("pointerdown", (event) => {
    if (!hb.open) return;
    if (event.button === 2 || event.button === 1 || spaceDown) { panning = [event.clientX, event.clientY, panX, panY]; return; }
    const point = toImage(event);
    if (event.altKey || hb.tool === "pick") { showNeighbours(point[0], point[1]); return; }
    layers.input.setPointerCapture(event.pointerId);
    stroke = { tool: hb.tool, points: [point] };
    drawStroke();
  });
  layers.input.addEventListener("pointermove", (event) => {
    if (panning) { panX = panning[2] + event.clientX - panning[0]; panY = panning[3] + event.clientY - panning[1]; applyView(); return; }
    if (!stroke) return;
    stroke.points.push(toImage(event));
    drawStroke();
  });
  function isClick(points) {
    const xs = points.map((p) => p[0]), ys = points.map((p) => p[1]);
    return Math.max(...xs) - Math.min(...xs) < 3 && Math.max(...ys) - Math.min(...ys) < 3;
  }
  function previewPolygon() {
    const view = layers.input.getContext("2d");
    view.clearRect(0, 0, hb.width, hb.height);
    if (!lassoPoints.length) return;
    view.strokeStyle = strokeColour(); view.lineWidth = 2; view.beginPath();
    view.moveTo(lassoPoints[0][0], lassoPoints[0][1]);
    for (const p of lassoPoints.slice(1)) view.lineTo(p[0], p[1]);
    view.stroke();
    for (const p of lassoPoints) view.fillRect(p[0] - 2, p[1] - 2, 4, 4);
  }
  function closePolygon() {  // double-click or Enter: fill the clicked polygon
    if (lassoPoints.length < 3) { lassoPoints = []; previewPolygon(); return; }
    stroke = { tool: "lasso", points: lassoPoints };
    lassoPoints = [];
    endStroke(true);
  }
  function endStroke(polygon) {
    if (panning) { panning = null; return; }
    if (!stroke) return;
    const tool = stroke.tool;
    if (tool === "lasso" && polygon !== true && isClick(stroke.points)) {  // a click: one polygon vertex
      lassoPoints.push(stroke.points[0]);
      stroke = null;
      previewPolygon();
      return;
    }
    lassoPoints = [];
    const before = hb.labels.slice();
    drawStroke();
    stroke = null;
    if (applyScratch(tool === "eraser" ? 255 : hb.active)) {
      undoStack.push(before); if (undoStack.length > 50) undoStack.shift(); redoStack = [];
      drawAnnotation();
      scheduleSave();
    }
  }
  layers.input.addEventListener("pointerup", () => endStroke(false));
  layers.input.addEventListener("pointercancel", () => endStroke(false));
  layers.input.addEventListener("dblclick", closePolygon);
  $("viewport").addEventListener("wheel", (event) => {
    event.preventDefault();
    const box = $("viewport").getBoundingClientRect();
    const mx = event.clientX - box.left, my = event.clientY - box.top;
    const factor = event.deltaY < 0 ? 1.15 : 1 / 1.15;
    panX = mx - (mx - panX) * factor; panY = my - (my - panY) * factor; zoom *= factor;
    applyView();
  }, { passive: false });
  function undo() { if (!undoStack.length) return; redoStack.push(hb.labels); hb.labels = undoStack.pop(); drawAnnotation(); scheduleSave(); }
  function redo() { if (!redoStack.length) return; undoStack.push(hb.labels); hb.labels = redoStack.pop(); drawAnnotation(); scheduleSave(); }
  $("undo").onclick = undo; $("redo").onclick = redo;
  function accept() {
    if (!hb.prediction || hb.prediction.length !== hb.labels.length) { say("no prediction to accept yet"); return; }
    snapshot();
    for (let i = 0; i < hb.labels.length; i++) if (hb.labels[i] === 255) hb.labels[i] = hb.prediction[i];
    drawAnnotation(); scheduleSave();
  }
  $("accept").onclick = accept;
  function setTool(tool) {
    hb.tool = tool;
    document.querySelectorAll(".tool").forEach((b) => b.classList.toggle("active", b.dataset.tool === tool));
  }
  document.querySelectorAll(".tool").forEach((b) => { b.onclick = () => setTool(b.dataset.tool); });
  $("show-prediction").onchange = drawPrediction;
  $("show-confidence").onchange = async () => { if ($("show-confidence").checked && hb.open) await loadPrediction(); drawPrediction(); };
  document.addEventListener("keydown", (event) => {
    if (event.target.tagName === "INPUT" && event.target.type !== "checkbox" && event.target.type !== "range") return;
    const key = event.key.toLowerCase();
    if (key === " ") { spaceDown = true; event.preventDefault(); return; }
    if (key === "enter") return closePolygon();
    if (key === "escape") { lassoPoints = []; previewPolygon(); return; }
    if ((event.ctrlKey || event.metaKey) && key === "z") { event.preventDefault(); return event.shiftKey ? redo() : undo(); }
    if ((event.ctrlKey || event.metaKey) && key === "y") { event.preventDefault(); return redo(); }
    if (event.ctrlKey || event.metaKey || event.altKey) return;
    const tools = { b: "brush", e: "eraser", l: "lasso", n: "pick" };
    if (tools[key]) setTool(tools[key]);
    else if (key === "a") accept();
    else if (key === "p") { $("show-prediction").checked = !$("show-prediction").checked; drawPrediction(); }
    else if (key === "c") { $("show-confidence").checked = !$("show-confidence").checked; $("show-confidence").onchange(); }
    else if (key === "0") fit();
    else if (key === "[") $("brush-size").value = Math.max(1, Number($("brush-size").value) - 2);
    else if (key === "]") $("brush-size").value = Number($("brush-size").value) + 2;
    else if (/^[1-9]$/.test(key) && Number(key) <= hb.classes.length) { hb.active = Number(key) - 1; renderClasses(); }
  });
  document.addEventListener("keyup", (event) => { if (event.key === " ") spaceDown = false; });

  // ------------------------------------------------------------------ saving (debounced; one request in flight)
  let timer = null, saving = null, dirty = false, thumbTimer = null;
  function scheduleSave() { dirty = true; clearTimeout(timer); timer = setTimeout(save, 150); }
  async function save() {
    timer = null;
    if (saving) { await saving; }
    if (!dirty || !hb.open) return;
    dirty = false;
    const name = hb.open, labels = hb.labels.slice();
    saving = (async () => {
      const body = await indexPng(labels, hb.width, hb.height);
      const response = await api(`api/annotations/${enc(name)}`, { method: "PUT", body, headers: { "Content-Type": "image/png", "If-Match": String(hb.version) } });
      const data = await response.json();
      if (response.status === 409) { say(data.error + " — reloaded"); hb.error = data.error; await openImage(name); return; }
      if (!response.ok) { say(data.error); hb.error = data.error; return; }
      if (name === hb.open) hb.version = data.version;
      hb.memoryVersion = data.memory_version;
      $("memory").textContent = `memory: ${data.memory_rows} patches from ${data.annotated} images`;
      hb.saves += 1; hb.savedVersion = data.version;
      say("saved");
      await loadPrediction();
      await refreshImages(false);
      clearTimeout(thumbTimer);  // while painting fast, the thumbnails follow once the strokes pause
      thumbTimer = setTimeout(refreshThumbnails, 600);
    })().catch((e) => { say("save failed: " + e.message); hb.error = String(e); }).finally(() => { saving = null; });
    await saving;
  }
  async function flush() { if (timer) { clearTimeout(timer); await save(); } else if (saving) await saving; }
  window.addEventListener("beforeunload", (e) => { if (dirty || saving) { e.preventDefault(); } });

  // ------------------------------------------------------------------ neighbours
  const sourceImages = {};
  function source(name) {
    if (!sourceImages[name]) {
      sourceImages[name] = new Promise((resolve) => { const i = new Image(); i.onload = () => resolve(i); i.onerror = () => resolve(null); i.src = withToken("api/images/" + enc(name)); });
    }
    return sourceImages[name];
  }
  async function showNeighbours(x, y) {
    const panel = $("neighbours");
    let data;
    try { data = await json(`api/neighbours/${enc(hb.open)}?x=${x.toFixed(1)}&y=${y.toFixed(1)}&k=8`); }
    catch (e) { panel.innerHTML = ""; const p = document.createElement("p"); p.className = "hint"; p.textContent = e.message; panel.appendChild(p); return; }
    panel.innerHTML = "";
    const head = document.createElement("p");
    head.textContent = `patch (${data.patch[0]}, ${data.patch[1]}) at (${Math.round(x)}, ${Math.round(y)}):`;
    panel.appendChild(head);
    for (const n of data.neighbours) {
      const row = document.createElement("div");
      row.className = "neighbour";
      const crop = document.createElement("canvas");
      crop.width = crop.height = 56;
      const colour = (hb.classes[n.label] || {}).colour || "#000";
      row.appendChild(crop);
      const text = document.createElement("span");
      text.innerHTML = `<span class="swatch" style="background:${colour}"></span> <b class="nlabel"></b><br><span class="nsim"></span><br><small class="nimg"></small>`;
      text.querySelector(".nlabel").textContent = n.label_name;
      text.querySelector(".nsim").textContent = "similarity " + n.similarity.toFixed(3);
      text.querySelector(".nimg").textContent = n.image;
      row.appendChild(text);
      panel.appendChild(row);
      source(n.image).then((img) => {
        if (!img) return;
        const [x0, y0, x1, y1] = n.box, pad = (x1 - x0);
        const ctx = crop.getContext("2d");
        ctx.drawImage(img, x0 - pad, y0 - pad, 3 * pad, 3 * (y1 - y0), 0, 0, 56, 56);
        ctx.strokeStyle = colour; ctx.lineWidth = 2; ctx.strokeRect(56 / 3, 56 / 3, 56 / 3, 56 / 3);
      });
    }
    hb.neighbourLoads += 1;
  }

  // ------------------------------------------------------------------ export and status
  $("export").onclick = async () => {
    await flush();
    say("exporting …");
    try {
      const data = await json("api/export", { method: "POST", body: JSON.stringify({ dir: $("export-dir").value }), headers: { "Content-Type": "application/json" } });
      $("export-result").textContent = `dataset: ${data.data_root}\nbank: ${data.bank}\n${data.annotated.length} annotated, ${data.predicted.length} predicted`;
      hb.exports += 1; say("exported");
    } catch (e) { $("export-result").textContent = e.message; say(e.message); }
  };
  async function poll() {
    try {
      const s = await json("api/status");
      const p = s.first_pass;
      $("progress").textContent = p.running ? `features ${p.done}/${p.total} …` : `features ${p.done}/${p.total}`;
      $("memory").textContent = `memory: ${s.memory_rows} patches from ${s.annotated} images`;
      const wasRunning = hb.firstPassRunning;
      hb.firstPassRunning = p.running;
      if (wasRunning && !p.running) refreshImages(false);
    } catch (e) { /* the server is restarting */ }
    setTimeout(poll, hb.firstPassRunning === false ? 5000 : 1000);
  }
  (async function start() {
    hb.classes = await json("api/classes");
    renderClasses();
    await refreshImages(false);
    if (hb.images.length) await openImage(hb.images[0].name);
    refreshThumbnails();
    poll();
    hb.ready = true;
  })().catch((e) => { say(e.message); hb.error = String(e); });
})();
