// stylemix app: the blending page. Plain JS, no libraries, nothing fetched from elsewhere.
// The session id lives in this tab's memory only, so two tabs never share images.
"use strict";

const $ = (id) => document.getElementById(id);
const state = {
  sid: null,
  options: null,
  labels: {},          // ref -> the file name the person chose (for the shown command; never sent as a path)
  photoUploads: [],    // [{ref, name}]
  styleUploads: [],    // [{ref, name}]
  seq: 0,              // preview counter: the server skips a preview older than the newest asked
  inFlight: false,     // one preview request at a time ...
  pending: false,      // ... and at most one more, with the latest settings (stale ones are never sent)
  previewUrl: null,
};

function showMessage(text) {
  const box = $("message");
  box.textContent = text || "";
  box.hidden = !text;
}

async function api(path, options = {}) {
  const response = await fetch(path, options);
  if (response.ok) return response;
  let text = `${response.status} ${response.statusText}`;
  try { text = (await response.json()).error || text; } catch (e) { /* not JSON */ }
  throw new Error(text);
}

// --- the settings --------------------------------------------------------------------------------

function styleChoices(select, selected) {
  select.replaceChildren();
  const builtin = document.createElement("optgroup");
  builtin.label = "built-in";
  for (const name of state.options.styles) builtin.append(new Option(name, `builtin:${name}`));
  select.append(builtin);
  if (state.styleUploads.length) {
    const up = document.createElement("optgroup");
    up.label = "uploaded";
    for (const u of state.styleUploads) up.append(new Option(u.name, u.ref));
    select.append(up);
  }
  if (selected) select.value = selected;
}

function addStyleRow(ref, weight) {
  const rows = $("styles");
  if (rows.children.length >= state.options.limits.max_styles) {
    showMessage(`at most ${state.options.limits.max_styles} styles; remove one first`);
    return false;
  }
  const row = document.createElement("div");
  row.className = "style-row";
  const select = document.createElement("select");
  select.className = "style-ref";
  select.setAttribute("aria-label", "style");
  styleChoices(select, ref);
  const slider = document.createElement("input");
  slider.type = "range";
  slider.className = "weight";
  slider.min = "0"; slider.max = "100"; slider.step = "1";
  slider.value = String(Math.round(weight * 100));
  slider.setAttribute("aria-label", "weight");
  const value = document.createElement("output");
  value.className = "weight-value";
  const remove = document.createElement("button");
  remove.type = "button";
  remove.className = "remove";
  remove.textContent = "\u00d7";
  remove.title = "remove this style";
  const show = () => { value.textContent = (slider.value / 100).toFixed(2); };
  show();
  slider.addEventListener("input", () => { show(); schedulePreview(); });
  select.addEventListener("change", () => { refreshSweepChoices(); schedulePreview(); });
  remove.addEventListener("click", () => {
    if (rows.children.length > 1) { row.remove(); refreshRows(); schedulePreview(); }
  });
  row.append(select, slider, value, remove);
  rows.append(row);
  refreshRows();
  return true;
}

function refreshRows() {
  const n = $("styles").children.length;
  $("add-style").disabled = n >= state.options.limits.max_styles;
  for (const b of document.querySelectorAll(".style-row .remove")) b.disabled = n <= 1;
  refreshSweepChoices();
}

function refreshSweepChoices() {
  const refs = [...document.querySelectorAll(".style-ref")].map((s) => s.value);
  for (const [id, index] of [["sweep-a", 0], ["sweep-b", 1]]) {
    const select = $(id);
    const keep = select.dataset.chosen ? select.value : null;  // a choice the person made is kept
    select.replaceChildren();
    const all = [...state.options.styles.map((n) => [`builtin:${n}`, n]), ...state.styleUploads.map((u) => [u.ref, u.name])];
    for (const [ref, name] of all) select.append(new Option(name, ref));
    select.value = keep && all.some(([r]) => r === keep) ? keep : (refs[index] || refs[0]);
  }
}

function blend() {
  const styles = [...document.querySelectorAll(".style-row")].map((row) => ({
    ref: row.querySelector(".style-ref").value,
    weight: Number(row.querySelector(".weight").value) / 100,
  }));
  return {
    photo: $("photo").value,
    styles,
    alpha: Number($("alpha").value) / 100,
    preserve_color: $("preserve").value || null,
    labels: labelsFor([$("photo").value, ...styles.map((s) => s.ref)]),
  };
}

function labelsFor(refs) {
  const out = {};
  for (const r of refs) if (state.labels[r]) out[r] = state.labels[r];
  return out;
}

// --- preview: only the latest settings are ever requested ---------------------------------------

function schedulePreview() {
  state.pending = true;
  if (!state.inFlight) sendPreview();
}

async function sendPreview() {
  state.pending = false;
  state.inFlight = true;
  const body = { ...blend(), seq: ++state.seq };
  delete body.labels;
  const img = $("preview");
  img.classList.add("busy");
  const t0 = performance.now();
  try {
    const response = await api(`/api/s/${state.sid}/preview`, {
      method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body),
    });
    if (response.status === 200) {
      const url = URL.createObjectURL(await response.blob());
      img.src = url;
      img.dataset.seq = String(body.seq);
      if (state.previewUrl) URL.revokeObjectURL(state.previewUrl);
      state.previewUrl = url;
      const model = response.headers.get("X-Preview-Model") === "preview" ? "fast preview model" : "full model";
      $("timing").textContent = `preview ${state.options.limits.preview_size} px: ` +
        `${Math.round(performance.now() - t0)} ms (${model})`;
      showMessage("");
    }
  } catch (e) {
    showMessage(e.message);
  } finally {
    img.classList.remove("busy");
    state.inFlight = false;
    if (state.pending) sendPreview();
  }
}

// --- uploads -------------------------------------------------------------------------------------

async function upload(file) {
  const limit = state.options.limits.max_upload_bytes;
  if (file.size > limit) {
    throw new Error(`${file.name} is ${(file.size / 2 ** 20).toFixed(1)} MB; uploads are limited to ` +
                    `${(limit / 2 ** 20).toFixed(1)} MB`);
  }
  const response = await api(`/api/s/${state.sid}/upload`, { method: "POST", body: file });
  const info = await response.json();
  state.labels[info.ref] = file.name;
  return { ref: info.ref, name: file.name };
}

// Uploads the file chosen in a file input and hands it to `added`; the input is cleared so the same file can be
// chosen again, and a failure is shown on the page.
async function uploadChosen(event, added) {
  const file = event.target.files[0];
  event.target.value = "";
  if (!file) return;
  try {
    added(await upload(file));
  } catch (e) {
    showMessage(e.message);
  }
}

function onPhotoUpload(event) {
  return uploadChosen(event, (u) => {
    state.photoUploads.push(u);
    $("photo").append(new Option(`${u.name} (uploaded)`, u.ref));
    $("photo").value = u.ref;
    onPhotoChange();
  });
}

function onStyleUpload(event) {
  return uploadChosen(event, (u) => {
    state.styleUploads.push(u);
    for (const select of document.querySelectorAll(".style-ref")) styleChoices(select, select.value);
    if (addStyleRow(u.ref, 0.5)) schedulePreview();
    refreshSweepChoices();
  });
}

function onPhotoChange() {
  $("photo-thumb").src = `/api/s/${state.sid}/thumb?ref=${encodeURIComponent($("photo").value)}`;
  schedulePreview();
}

// --- full render and sweep -----------------------------------------------------------------------

async function onRender() {
  const button = $("render");
  button.disabled = true;
  button.textContent = "Rendering\u2026";
  try {
    const response = await api(`/api/s/${state.sid}/render`, {
      method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(blend()),
    });
    const info = await response.json();
    $("download").href = info.url;
    $("download").hidden = false;
    $("download").textContent = `Download PNG (${info.width}\u00d7${info.height})`;
    $("command").textContent = info.command;
    $("metadata").textContent = JSON.stringify(info.metadata);
    $("result").hidden = false;
    showMessage("");
  } catch (e) {
    showMessage(e.message);
  } finally {
    button.disabled = false;
    button.textContent = "Render full size";
  }
}

async function onSweep() {
  const button = $("sweep");
  button.disabled = true;
  try {
    const b = blend();
    const a = $("sweep-a").value, z = $("sweep-b").value;
    const body = { photo: b.photo, a, b: z, steps: Number($("sweep-steps").value), alpha: b.alpha,
                   preserve_color: b.preserve_color, labels: labelsFor([b.photo, a, z]) };
    const response = await api(`/api/s/${state.sid}/sweep`, {
      method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body),
    });
    const img = $("sweep-img");
    if (img.src.startsWith("blob:")) URL.revokeObjectURL(img.src);
    img.src = URL.createObjectURL(await response.blob());
    img.hidden = false;
    showMessage("");
  } catch (e) {
    showMessage(e.message);
  } finally {
    button.disabled = false;
  }
}

// --- start ---------------------------------------------------------------------------------------

async function start() {
  try {
    state.sid = (await (await api("/api/session", { method: "POST" })).json()).session;
    state.options = await (await api("/api/options")).json();
  } catch (e) {
    showMessage(`cannot reach the stylemix server: ${e.message}`);
    return;
  }
  const o = state.options;
  for (const name of o.photos) $("photo").append(new Option(name, `bundled:${name}`));
  $("photo").value = o.defaults.photo;
  const defaults = o.defaults.styles.length ? o.defaults.styles
    : o.styles.slice(0, 2).map((n) => ({ ref: `builtin:${n}`, weight: 0.5 }));
  for (const s of defaults) addStyleRow(s.ref, s.weight);
  $("sweep-steps").max = String(o.limits.max_sweep_steps);
  for (const id of ["sweep-a", "sweep-b"]) $(id).addEventListener("change", () => { $(id).dataset.chosen = "1"; });

  $("photo").addEventListener("change", onPhotoChange);
  $("photo-upload").addEventListener("change", onPhotoUpload);
  $("style-upload").addEventListener("change", onStyleUpload);
  $("add-style").addEventListener("click", () => {
    const used = new Set([...document.querySelectorAll(".style-ref")].map((s) => s.value));
    const next = o.styles.map((n) => `builtin:${n}`).find((r) => !used.has(r)) || `builtin:${o.styles[0]}`;
    if (addStyleRow(next, 0.5)) schedulePreview();
  });
  $("alpha").addEventListener("input", () => {
    $("alpha-value").textContent = ($("alpha").value / 100).toFixed(2);
    schedulePreview();
  });
  $("preserve").addEventListener("change", schedulePreview);
  $("render").addEventListener("click", onRender);
  $("sweep").addEventListener("click", onSweep);
  document.body.dataset.ready = "1";
  onPhotoChange();
}

start();
