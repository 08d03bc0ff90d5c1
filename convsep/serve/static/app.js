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

async function api(path, options = {}) {
  const response = await fetch(path, options);
  let body = null;
  try { body = await response.json(); } catch (e) { body = null; }
  if (!response.ok) throw new Error((body && body.error) || `${response.status} ${response.statusText}`);
  return body;
}

// -- upload ----------------------------------------------------------------------------
function showMessage(text) { $("#drop-message").textContent = text || ""; }

async function upload(files) {
  showMessage("");
  const problems = [];
  for (const file of files) {
    if (info && file.size > info.max_upload_bytes) {
      problems.push(`${file.name}: too large (limit ${Math.round(info.max_upload_bytes / 1e6)} MB)`);
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
      problems.push(`${file.name}: ${error.message}`);
    }
    refresh();
  }
  showMessage(problems.join("\n"));
}

function setUpDrop() {
  const drop = $("#drop");
  const input = $("#file-input");
  input.addEventListener("change", () => { upload([...input.files]); input.value = ""; });
  ["dragenter", "dragover"].forEach((type) => drop.addEventListener(type, (event) => {
    event.preventDefault(); drop.classList.add("over");
  }));
  ["dragleave", "drop"].forEach((type) => drop.addEventListener(type, (event) => {
    event.preventDefault(); drop.classList.remove("over");
  }));
  drop.addEventListener("drop", (event) => upload([...event.dataTransfer.files]));
}

function fillOptions() {
  const model = $("#model");
  model.replaceChildren(...info.models.map((m) => new Option(m.name, m.name)));
  const setModes = () => {
    const sources = info.models.find((m) => m.name === model.value).sources;
    $("#mode").replaceChildren(new Option(`all ${sources.length}`, ""),
      ...sources.map((s) => new Option(`${s} + the rest`, s)));
  };
  model.addEventListener("change", setModes);
  setModes();
  $("#limit").textContent = `up to ${Math.round(info.max_upload_bytes / 1e6)} MB per song`;
}

// -- jobs --------------------------------------------------------------------------------
async function refresh() {
  let list;
  try { list = (await api("/api/jobs")).jobs; } catch (error) { return; }
  const seen = new Set();
  for (const job of list) {
    seen.add(job.id);
    render(job);
  }
  for (const [id, card] of cards) {
    if (!seen.has(id)) { if (card.player) card.player.stop(); card.el.remove(); cards.delete(id); }
  }
}

function render(job) {
  let card = cards.get(job.id);
  if (!card) {
    const el = $("#job-template").content.firstElementChild.cloneNode(true);
    el.dataset.id = job.id;
    $(".name", el).textContent = job.filename;
    $(".delete", el).addEventListener("click", async () => {
      if (card.player) card.player.stop();
      try { await api(job.url, { method: "DELETE" }); } catch (error) { /* already gone */ }
      refresh();
    });
    $("#jobs").prepend(el);
    card = { el, job, player: null };
    cards.set(job.id, card);
  }
  card.job = job;
  const el = card.el;
  el.dataset.status = job.status;
  const percent = Math.round(job.progress * 100);
  const label = { queued: "waiting", running: `separating ${percent}%`, done: "done", error: "failed" }[job.status];
  $(".status", el).textContent = job.seconds ? `${label} · ${clock(job.seconds)}` : label;
  $(".progress", el).value = job.progress;
  $(".error", el).textContent = job.error || "";
  if (job.status === "done" && !card.player) {
    card.player = new Player(el, job);
    card.player.load();
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
    $(".play", el).addEventListener("click", () => (this.playing ? this.pause() : this.play()));
    $(".stop", el).addEventListener("click", () => this.stop());
    $(".zip", el).href = job.zip;
  }

  async load() {
    const ctx = context();
    const box = $(".stems", this.el);
    try {
      for (const stem of this.job.stems) {
        const row = $("#stem-template").content.firstElementChild.cloneNode(true);
        row.dataset.stem = stem.name;
        $(".stem-name", row).textContent = stem.name.replace("_", " ");
        $(".download", row).href = `${stem.url}?download=1`;
        box.append(row);
        const data = await (await fetch(stem.url)).arrayBuffer();
        const buffer = await ctx.decodeAudioData(data);
        const gain = ctx.createGain();
        gain.connect(ctx.destination);
        const entry = { name: stem.name, row, buffer, gain, mute: false, solo: false, volume: 1, source: null,
                        peaks: peaks(buffer, $(".wave", row).width) };
        this.stems.push(entry);
        this.duration = Math.max(this.duration, buffer.duration);
        $(".mute", row).addEventListener("click", () => { entry.mute = !entry.mute; this.mix(); });
        $(".solo", row).addEventListener("click", () => { entry.solo = !entry.solo; this.mix(); });
        $(".volume", row).addEventListener("input", (event) => { entry.volume = Number(event.target.value); this.mix(); });
        $(".wave", row).addEventListener("click", (event) => {
          const rect = event.target.getBoundingClientRect();
          this.seek(((event.clientX - rect.left) / rect.width) * this.duration);
        });
      }
    } catch (error) {
      $(".error", this.el).textContent = `could not load the stems: ${error.message}`;
      return;
    }
    $(".player", this.el).hidden = false;
    this.el.dataset.ready = "true";
    this.mix();
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
  }

  position() {
    const t = this.playing ? context().currentTime - this.startedAt : this.offset;
    return Math.min(t, this.duration);
  }

  async play() {
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

  pause() { if (this.playing) { this.offset = this.position(); this.halt(); this.draw(); } }

  stop() { this.halt(); this.offset = 0; this.draw(); }

  seek(seconds) {
    const wasPlaying = this.playing;
    this.halt();
    this.offset = Math.max(0, Math.min(seconds, this.duration));
    if (wasPlaying) this.play(); else this.draw();
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
    for (const s of this.stems) drawWave($(".wave", s.row), s.peaks, COLORS[s.name] || "#495057", t / this.duration);
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

// -- start -------------------------------------------------------------------------------
async function start() {
  setUpDrop();
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
