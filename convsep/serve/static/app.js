// convsep web app: uploads, progress, and a synchronised multi-stem player (Web Audio).
"use strict";

const COLORS = { vocals: "#e8590c", drums: "#2b8a3e", bass: "#5f3dc4", other: "#1971c2" };
const cards = new Map();          // job id -> {el, job, player}
let info = null;
let audioContext = null;

const $ = (sel, root = document) => root.querySelector(sel);

function context() {
  if (!audioContext) audioContext = new (window.AudioContext || window.webkitAudioContext)();
  return audioContext;
}

function clock(seconds) {
  const s = Math.max(0, Math.floor(seconds));
  return `${Math.floor(s / 60)}:${String(s % 60).padStart(2, "0")}`;
}

const OFFLINE = "the server is not answering: is convsep serve still running? (start it again, then reload)";

async function api(path, options = {}) {
  let response;
  try {
    response = await fetch(path, options);
  } catch (error) {
    throw new Error(OFFLINE);
  }
  let body = null;
  try { body = await response.json(); } catch (e) { body = null; }
  if (!response.ok) throw new Error((body && body.error) || `${response.status} ${response.statusText}`);
  return body;
}

// -- upload ----------------------------------------------------------------------------
function megabytes(bytes) { return `${Number((bytes / 1e6).toFixed(1))} MB`; }

// One line per refused file, kept until dismissed (a later drop adds its own lines).
function showMessage(text) {
  const list = $("#drop-message");
  if (!text) { list.replaceChildren(); $("#messages").hidden = true; return; }
  const item = document.createElement("li");
  item.textContent = text;
  list.append(item);
  while (list.children.length > 8) list.firstElementChild.remove();
  $("#messages").hidden = false;
}

async function upload(files) {
  if (window.Notification && Notification.permission === "default") {
    try { Notification.requestPermission(); } catch (e) { /* not offered here */ }
  }
  for (const file of files) {
    if (info && file.size > info.max_upload_bytes) {
      showMessage(`${file.name}: too large (the limit is ${megabytes(info.max_upload_bytes)})`);
      continue;
    }
    const form = new FormData();
    form.append("file", file, file.name);
    form.append("model", $("#model").value);
    const mode = $("#mode").value;
    if (mode) form.append("two_stems", mode);
    try {
      await api("/api/jobs", { method: "POST", body: form });
    } catch (error) {
      showMessage(`${file.name}: ${error.message}`);
    }
    refresh();
  }
}

function setUpDrop() {
  const drop = $("#drop");
  const input = $("#file-input");
  input.addEventListener("change", () => { upload([...input.files]); input.value = ""; });
  $("#choose").addEventListener("click", (event) => { event.stopPropagation(); input.click(); });
  drop.addEventListener("keydown", (event) => {
    if (event.target === drop && (event.key === "Enter" || event.key === " ")) { event.preventDefault(); input.click(); }
  });
  $("#clear-messages").addEventListener("click", () => showMessage(""));
  ["dragenter", "dragover"].forEach((type) => drop.addEventListener(type, (event) => {
    event.preventDefault(); drop.classList.add("over");
  }));
  ["dragleave", "drop"].forEach((type) => drop.addEventListener(type, (event) => {
    event.preventDefault(); drop.classList.remove("over");
  }));
  drop.addEventListener("drop", (event) => upload([...event.dataTransfer.files]));
}

// "default \u2014 3.56 dB, 0.67 s per minute": quality on the real validation set, separation time
function modelLabel(m) {
  const parts = [];
  if (typeof m.quality_db === "number") parts.push(`${m.quality_db.toFixed(2)} dB`);
  if (typeof m.seconds_per_minute === "number") parts.push(`${m.seconds_per_minute.toFixed(2)} s per minute`);
  if (m.streaming) parts.push("low-latency streaming model");
  return parts.length ? `${m.name} \u2014 ${parts.join(", ")}` : m.name;
}

function fillOptions() {
  const model = $("#model");
  model.replaceChildren(...info.models.map((m) => {
    const option = new Option(modelLabel(m), m.name);
    const stems = Object.entries(m.stems || {}).map(([s, db]) => `${s} ${db} dB`).join(", ");
    if (stems) option.title = `real validation set, median global SDR: ${stems}`;
    return option;
  }));
  model.value = (info.models.find((m) => m.default) || info.models[0]).name;
  const setModes = () => {
    const sources = info.models.find((m) => m.name === model.value).sources;
    $("#mode").replaceChildren(new Option(`all ${sources.length}`, ""),
      ...sources.map((s) => new Option(`${s} + the rest`, s)));
  };
  model.addEventListener("change", setModes);
  setModes();
  $("#limit").textContent = `up to ${megabytes(info.max_upload_bytes)} per song`;
}

// -- jobs --------------------------------------------------------------------------------
let firstRefresh = true;

async function refresh() {
  let list;
  try {
    list = (await api("/api/jobs")).jobs;
  } catch (error) {
    const banner = $("#server-status");
    banner.textContent = error.message;
    banner.hidden = false;
    for (const card of cards.values()) {
      if (card.job.status === "queued" || card.job.status === "running") {
        $(".status", card.el).textContent = "server not answering";
        card.el.dataset.status = "offline";
      }
    }
    return;
  }
  $("#server-status").hidden = true;
  const seen = new Set();
  for (const job of list) {
    seen.add(job.id);
    if (!removing.has(job.id)) render(job, firstRefresh);
  }
  firstRefresh = false;
  for (const [id, card] of cards) {
    if (!seen.has(id) && !removing.has(id)) { if (card.player) card.player.stop(); card.el.remove(); cards.delete(id); }
  }
}

const removing = new Set();       // jobs removed in the page, deleted on the server after the undo delay
const UNDO_SECONDS = 6;

function ordinal(n) { return `${n}${["th", "st", "nd", "rd"][(n % 100 > 10 && n % 100 < 14) || n % 10 > 3 ? 0 : n % 10]}`; }

function statusLabel(job) {
  const percent = Math.round(job.progress * 100);
  if (job.status === "queued") return job.position && job.position > 1 ? `waiting (${ordinal(job.position)} in line)` : "waiting (next)";
  if (job.status === "running") return job.remaining != null ? `separating ${percent}% · about ${clock(job.remaining + 1)} left` : `separating ${percent}%`;
  return { done: "done", error: "failed" }[job.status] || job.status;
}

function notifyDone(job) {
  if (window.Notification && Notification.permission === "granted" && document.hidden) {
    try { new Notification("convsep: stems ready", { body: job.filename }); } catch (e) { /* not offered here */ }
  }
}

function removeWithUndo(card) {
  const id = card.job.id;
  if (card.player) card.player.pause();
  removing.add(id);
  card.el.classList.add("is-removed");
  $(".removed", card.el).hidden = false;
  $(".undo", card.el).focus();
  card.undoTimer = setTimeout(async () => {
    try { await api(card.job.url, { method: "DELETE" }); } catch (error) { /* already gone */ }
    localStorage.removeItem(`convsep:${id}`);
    removing.delete(id);
    card.el.remove();
    cards.delete(id);
  }, UNDO_SECONDS * 1000);
}

function undoRemove(card) {
  clearTimeout(card.undoTimer);
  removing.delete(card.job.id);
  card.el.classList.remove("is-removed");
  $(".removed", card.el).hidden = true;
  $(".delete", card.el).focus();
}

function render(job, atStart = false) {
  let card = cards.get(job.id);
  if (!card) {
    const el = $("#job-template").content.firstElementChild.cloneNode(true);
    el.dataset.id = job.id;
    $(".name", el).textContent = job.filename;
    $(".delete", el).setAttribute("aria-label", `remove ${job.filename}`);
    $(".delete", el).addEventListener("click", () => removeWithUndo(card));
    $(".undo", el).addEventListener("click", () => undoRemove(card));
    $("#jobs").prepend(el);
    card = { el, job, player: null, seenRunning: job.status !== "done" };
    cards.set(job.id, card);
  }
  const wasDone = card.job.status === "done";
  card.job = job;
  const el = card.el;
  el.dataset.status = job.status;
  const label = statusLabel(job);
  $(".status", el).textContent = job.seconds ? `${label} · ${clock(job.seconds)}` : label;
  $(".progress", el).value = job.progress;
  $(".error", el).textContent = job.error || "";
  if (job.status === "done" && !card.player) {
    card.player = new Player(el, job);
    // A song that finishes while the page watches opens at once; songs already done when the
    // page loads open on request, so a reload does not fetch and decode every song again.
    if (card.seenRunning && !atStart) {
      if (!wasDone) notifyDone(job);
      card.player.load();
    } else {
      const open = $(".open", el);
      open.hidden = false;
      open.addEventListener("click", () => { open.hidden = true; card.player.load(); open.remove(); });
    }
  }
}

// -- player -----------------------------------------------------------------------------
class Player {
  constructor(el, job) {
    this.el = el;
    this.job = job;
    this.stems = [];
    this.playing = false;
    this.offset = 0;
    this.startedAt = 0;
    this.duration = 0;
    this.key = `convsep:${job.id}`;
    $(".play", el).addEventListener("click", () => this.toggle());
    $(".stop", el).addEventListener("click", () => this.stop());
    $(".format", el).addEventListener("change", () => { this.links(); this.save(); });
    $(".mix", el).addEventListener("click", () => this.exportMix());
    $(".view", el).addEventListener("click", () => {
      this.view = this.view === "spectrogram" ? "waveform" : "spectrogram";
      this.showView();
      this.save();
    });
    if (job.stem_mp4) { $(".stem-mp4", el).href = job.stem_mp4; $(".stem-mp4", el).hidden = false; }
  }

  toggle() { current = this; return this.playing ? this.pause() : this.play(); }

  format() { return $(".format", this.el).value; }

  links() {
    const fmt = this.format();
    $(".zip", this.el).href = fmt === "wav" ? this.job.zip : `${this.job.zip}?format=${fmt}`;
    for (const s of this.stems) {
      const link = $(".download", s.row);
      link.href = `${s.url}?download=1${fmt === "wav" ? "" : `&format=${fmt}`}`;
      link.textContent = `\u2193 ${fmt}`;
    }
  }

  saved() {
    try { return JSON.parse(localStorage.getItem(this.key) || "{}"); } catch (e) { return {}; }
  }

  save() {
    const state = { offset: this.position(), format: this.format(), view: this.view, stems: {} };
    for (const s of this.stems) state.stems[s.name] = { mute: s.mute, solo: s.solo, volume: s.volume };
    try { localStorage.setItem(this.key, JSON.stringify(state)); } catch (e) { /* storage full or off */ }
  }

  gains() {
    const solo = this.stems.some((s) => s.solo);
    const gains = {};
    for (const s of this.stems) gains[s.name] = !s.mute && (!solo || s.solo) ? s.volume : 0;
    return gains;
  }

  async exportMix() {
    const status = $(".mix-status", this.el);
    const fmt = this.format();
    status.textContent = "exporting the mix\u2026";
    try {
      let response;
      try {
        response = await fetch(this.job.mix, { method: "POST", headers: { "Content-Type": "application/json" },
                                               body: JSON.stringify({ gains: this.gains(), format: fmt }) });
      } catch (error) { throw new Error(OFFLINE); }
      if (!response.ok) {
        let body = null;
        try { body = await response.json(); } catch (e) { body = null; }
        throw new Error((body && body.error) || `${response.status} ${response.statusText}`);
      }
      const url = URL.createObjectURL(await response.blob());
      const link = document.createElement("a");
      link.href = url;
      link.download = `${this.job.filename.replace(/\.[^.]*$/, "")} - mix.${fmt}`;
      link.className = "mix-file";
      this.el.append(link);
      link.click();
      setTimeout(() => { URL.revokeObjectURL(url); link.remove(); }, 60000);
      status.textContent = `mix exported (${fmt})`;
    } catch (error) {
      status.textContent = `could not export the mix: ${error.message}`;
    }
  }

  async load() {
    const ctx = context();
    const box = $(".stems", this.el);
    const saved = this.saved();
    if (saved.format) $(".format", this.el).value = saved.format;
    this.view = saved.view === "spectrogram" ? "spectrogram" : "waveform";
    $(".status", this.el).textContent = "loading the stems\u2026";
    try {
      for (const stem of this.job.stems) {
        const row = $("#stem-template").content.firstElementChild.cloneNode(true);
        const label = stem.name.replace("_", " ");
        row.dataset.stem = stem.name;
        $(".stem-name", row).textContent = label;
        $(".mute", row).setAttribute("aria-label", `mute ${label}`);
        $(".mute", row).title = `mute ${label}`;
        $(".solo", row).setAttribute("aria-label", `solo ${label}`);
        $(".solo", row).title = `solo ${label}`;
        $(".volume", row).setAttribute("aria-label", `volume of ${label}`);
        $(".wave", row).setAttribute("aria-label", `position in ${label} (arrow keys seek)`);
        $(".download", row).setAttribute("aria-label", `download ${label}`);
        $(".download", row).title = `download ${label}`;
        box.append(row);
        let response;
        try { response = await fetch(stem.url); } catch (error) { throw new Error(OFFLINE); }
        if (!response.ok) throw new Error(`${response.status} ${response.statusText}`);
        const buffer = await ctx.decodeAudioData(await response.arrayBuffer());
        const gain = ctx.createGain();
        gain.connect(ctx.destination);
        const kept = (saved.stems || {})[stem.name] || {};
        const entry = { name: stem.name, url: stem.url, row, buffer, gain, mute: !!kept.mute, solo: !!kept.solo,
                        volume: typeof kept.volume === "number" ? kept.volume : 1, source: null,
                        peaks: peaks(buffer, $(".wave", row).width),
                        spectrum: spectrogram(buffer, $(".wave", row).width, $(".wave", row).height) };
        $(".volume", row).value = entry.volume;
        this.stems.push(entry);
        this.duration = Math.max(this.duration, buffer.duration);
        $(".mute", row).addEventListener("click", () => { entry.mute = !entry.mute; this.mix(); });
        $(".solo", row).addEventListener("click", () => { entry.solo = !entry.solo; this.mix(); });
        $(".volume", row).addEventListener("input", (event) => { entry.volume = Number(event.target.value); this.mix(); });
        const wave = $(".wave", row);
        wave.addEventListener("click", (event) => {
          const rect = event.target.getBoundingClientRect();
          this.seek(((event.clientX - rect.left) / rect.width) * this.duration);
        });
        wave.addEventListener("keydown", (event) => {
          const step = { ArrowLeft: -5, ArrowRight: 5, Home: -1e9, End: 1e9 }[event.key];
          if (step !== undefined) { event.preventDefault(); this.seek(this.position() + step); }
        });
      }
    } catch (error) {
      $(".error", this.el).textContent = `could not load the stems: ${error.message}`;
      return;
    } finally {
      render(this.job);
    }
    this.offset = Math.min(Number(saved.offset) || 0, this.duration);
    $(".player", this.el).hidden = false;
    this.el.dataset.ready = "true";
    this.links();
    this.mix();
    this.showView();
  }

  showView() {
    const spec = this.view === "spectrogram";
    const button = $(".view", this.el);
    button.setAttribute("aria-pressed", String(spec));
    button.textContent = spec ? "Waveform" : "Spectrogram";
    button.title = spec ? "show the waveforms" : "show each stem's spectrogram (frequency against time)";
    this.el.dataset.view = this.view;
    this.draw();
  }

  mix() {
    const solo = this.stems.some((s) => s.solo);
    for (const s of this.stems) {
      const audible = !s.mute && (!solo || s.solo);
      s.gain.gain.value = audible ? s.volume : 0;
      s.row.classList.toggle("silent", !audible);
      $(".mute", s.row).setAttribute("aria-pressed", String(s.mute));
      $(".solo", s.row).setAttribute("aria-pressed", String(s.solo));
    }
    this.save();
  }

  position() {
    const t = this.playing ? context().currentTime - this.startedAt : this.offset;
    return Math.min(t, this.duration);
  }

  async play() {
    current = this;
    for (const card of cards.values()) if (card.player && card.player !== this) card.player.pause();
    const ctx = context();
    await ctx.resume();
    if (this.offset >= this.duration) this.offset = 0;
    const start = ctx.currentTime + 0.05;       // every stem starts on the same sample
    for (const s of this.stems) {
      s.source = ctx.createBufferSource();
      s.source.buffer = s.buffer;
      s.source.connect(s.gain);
      s.source.start(start, this.offset);
    }
    this.startedAt = start - this.offset;
    this.playing = true;
    this.el.dataset.playing = "true";
    $(".play", this.el).textContent = "Pause";
    this.tick();
  }

  halt() {
    for (const s of this.stems) if (s.source) { try { s.source.stop(); } catch (e) { /* not started */ } s.source = null; }
    this.playing = false;
    this.el.dataset.playing = "false";
    $(".play", this.el).textContent = "Play";
  }

  pause() { if (this.playing) { this.offset = this.position(); this.halt(); this.draw(); this.save(); } }

  stop() { this.halt(); this.offset = 0; this.draw(); this.save(); }

  seek(seconds) {
    const wasPlaying = this.playing;
    this.halt();
    this.offset = Math.max(0, Math.min(seconds, this.duration));
    if (wasPlaying) this.play(); else this.draw();
    this.save();
  }

  tick() {
    if (!this.playing) return;
    if (this.position() >= this.duration) { this.stop(); return; }
    this.draw();
    requestAnimationFrame(() => this.tick());
  }

  draw() {
    const t = this.position();
    this.el.dataset.position = t.toFixed(2);
    $(".time", this.el).textContent = `${clock(t)} / ${clock(this.duration)}`;
    for (const s of this.stems) {
      const wave = $(".wave", s.row);
      wave.setAttribute("aria-valuemax", String(Math.round(this.duration)));
      wave.setAttribute("aria-valuenow", String(Math.round(t)));
      wave.setAttribute("aria-valuetext", `${clock(t)} of ${clock(this.duration)}`);
    }
    for (const s of this.stems) {
      if (this.view === "spectrogram") drawSpectrogram($(".wave", s.row), s.spectrum, t / this.duration);
      else drawWave($(".wave", s.row), s.peaks, COLORS[s.name] || "#495057", t / this.duration);
    }
  }
}

function peaks(buffer, columns) {
  // min and max of the channel mean over each column: [min0, max0, min1, max1, ...]
  const channels = [...Array(buffer.numberOfChannels).keys()].map((c) => buffer.getChannelData(c));
  const step = Math.max(1, Math.floor(buffer.length / columns));
  const out = new Float32Array(columns * 2);
  for (let x = 0; x < columns; x++) {
    let lo = 0, hi = 0;
    for (let i = x * step; i < Math.min(buffer.length, (x + 1) * step); i += 4) {
      let v = 0;
      for (const data of channels) v += data[i];
      v /= channels.length;
      if (v < lo) lo = v;
      if (v > hi) hi = v;
    }
    out[2 * x] = lo; out[2 * x + 1] = hi;
  }
  return out;
}

// Spectrogram: a Hann-windowed FFT of the channel mean at each column, log magnitude (dB against
// a full-scale sine) on a log frequency axis (30 Hz at the bottom to Nyquist at the top).
const FFT_SIZE = 2048;
const SPEC_FLOOR_DB = -100;

function fft(re, im) {
  const n = re.length;
  for (let i = 1, j = 0; i < n; i++) {
    let bit = n >> 1;
    for (; j & bit; bit >>= 1) j ^= bit;
    j ^= bit;
    if (i < j) { [re[i], re[j]] = [re[j], re[i]]; [im[i], im[j]] = [im[j], im[i]]; }
  }
  for (let len = 2; len <= n; len <<= 1) {
    const angle = -2 * Math.PI / len;
    for (let i = 0; i < n; i += len) {
      for (let k = 0; k < len / 2; k++) {
        const wr = Math.cos(angle * k), wi = Math.sin(angle * k);
        const a = i + k, b = a + len / 2;
        const tr = re[b] * wr - im[b] * wi, ti = re[b] * wi + im[b] * wr;
        re[b] = re[a] - tr; im[b] = im[a] - ti;
        re[a] += tr; im[a] += ti;
      }
    }
  }
}

function heat(v) {        // 0..1 -> [r, g, b], dark blue through red to pale yellow
  return [Math.round(255 * Math.min(1, 1.8 * v)), Math.round(255 * Math.max(0, Math.min(1, 2 * v - 0.6))),
          Math.round(255 * Math.max(0, 0.35 - v) + 255 * Math.max(0, v - 0.8) * 3)];
}

function spectrogram(buffer, width, height) {
  const channels = [...Array(buffer.numberOfChannels).keys()].map((c) => buffer.getChannelData(c));
  const n = FFT_SIZE, half = n / 2;
  const hann = new Float32Array(n).map((_, i) => 0.5 - 0.5 * Math.cos(2 * Math.PI * i / n));
  const fullScale = n / 4;                 // a full-scale sine's peak magnitude with this window
  const nyquist = buffer.sampleRate / 2, low = 30;
  const rowBin = new Float32Array(height);  // row 0 is the top (the highest frequency)
  for (let y = 0; y < height; y++) rowBin[y] = (low * (nyquist / low) ** (1 - y / Math.max(1, height - 1))) / nyquist * half;
  const image = new ImageData(width, height);
  const re = new Float32Array(n), im = new Float32Array(n), db = new Float32Array(half + 1);
  for (let x = 0; x < width; x++) {
    const start = Math.floor((x + 0.5) * buffer.length / width) - half;
    for (let i = 0; i < n; i++) {
      const at = start + i;
      let v = 0;
      if (at >= 0 && at < buffer.length) { for (const data of channels) v += data[at]; v /= channels.length; }
      re[i] = v * hann[i]; im[i] = 0;
    }
    fft(re, im);
    for (let k = 0; k <= half; k++) db[k] = 20 * Math.log10(Math.hypot(re[k], im[k]) / fullScale + 1e-12);
    for (let y = 0; y < height; y++) {
      const lo = Math.floor(rowBin[y]), hi = Math.max(lo, Math.floor(y > 0 ? rowBin[y - 1] : half));
      let best = SPEC_FLOOR_DB;
      for (let k = lo; k <= Math.min(hi, half); k++) if (db[k] > best) best = db[k];
      const [r, g, b] = heat(Math.max(0, Math.min(1, 1 - best / SPEC_FLOOR_DB)));
      const p = 4 * (y * width + x);
      image.data[p] = r; image.data[p + 1] = g; image.data[p + 2] = b; image.data[p + 3] = 255;
    }
  }
  return image;
}

function drawSpectrogram(canvas, image, played) {
  const g = canvas.getContext("2d");
  g.putImageData(image, 0, 0);
  g.fillStyle = "#ffffff";
  g.fillRect(Math.floor(played * canvas.width), 0, 1, canvas.height);
}

function drawWave(canvas, data, color, played) {
  const g = canvas.getContext("2d");
  const { width, height } = canvas;
  g.clearRect(0, 0, width, height);
  const mid = height / 2;
  const head = Math.floor(played * width);
  for (let x = 0; x < width; x++) {
    g.fillStyle = x < head ? color : color + "88";
    const top = mid - data[2 * x + 1] * mid * 0.95;
    const bottom = mid - data[2 * x] * mid * 0.95;
    g.fillRect(x, top, 1, Math.max(1, bottom - top));
  }
  g.fillStyle = "#1d1d1f";
  g.fillRect(head, 0, 1, height);
}

// Space plays or pauses the song last played (or the first open one), unless a control has focus.
let current = null;

function setUpKeys() {
  document.addEventListener("keydown", (event) => {
    if (event.key !== " " || event.ctrlKey || event.metaKey || event.altKey) return;
    if (event.target.closest && event.target.closest("button, input, select, textarea, a, #drop, canvas")) return;
    const players = [...cards.values()].map((c) => c.player).filter((p) => p && p.el.dataset.ready === "true");
    const player = players.includes(current) ? current : players[0];
    if (!player) return;
    event.preventDefault();
    player.toggle();
  });
  window.addEventListener("pagehide", () => { for (const c of cards.values()) if (c.player && c.player.stems.length) c.player.save(); });
}

// -- start -------------------------------------------------------------------------------
async function start() {
  setUpDrop();
  setUpKeys();
  try {
    info = await api("/api/info");
    fillOptions();
  } catch (error) {
    showMessage(`the server did not answer: ${error.message}`);
  }
  await refresh();
  setInterval(refresh, 800);
}

start();
