// adain-stream page: send the camera over WebRTC, show the stylized stream that comes back, and the controls.
// Settings go over the call's data channel; the server answers each change with the settings in force.
"use strict";

const $ = (id) => document.getElementById(id);
const state = { config: null, styles: [], settings: null, pc: null, channel: null, server: null };

function setStatus(text, kind) {
  $("status").textContent = text;
  if (kind) document.body.dataset.state = kind;
}

async function api(path, options = {}) {
  // The token travels as a cookie set when the page was opened with ?token=; same-origin only.
  const response = await fetch(path, { credentials: "same-origin", ...options });
  let body = null;
  try { body = await response.json(); } catch (e) { /* not JSON */ }
  if (!response.ok) throw new Error((body && body.error) || `${response.status} ${response.statusText}`);
  return body;
}

// ---- gallery -----------------------------------------------------------------------------------

function renderGallery() {
  const gallery = $("gallery");
  gallery.replaceChildren();
  for (const style of state.styles) {
    const button = document.createElement("button");
    button.type = "button";
    button.dataset.style = style.id;
    button.title = style.name;
    button.setAttribute("role", "option");
    button.setAttribute("aria-selected", String(state.settings && state.settings.style === style.id));
    if (style.thumbnail) {
      const img = document.createElement("img");
      img.src = style.thumbnail;
      img.alt = "";
      button.append(img);
    } else {
      const mix = document.createElement("div");
      mix.className = "mix";
      button.append(mix);
    }
    const label = document.createElement("span");
    label.textContent = style.name;
    button.append(label);
    button.addEventListener("click", () => send({ style: style.id }));
    gallery.append(button);
  }
}

async function loadStyles() {
  state.styles = await api("/api/styles");
  renderGallery();
}

async function upload(file) {
  const status = $("upload-status");
  if (!file) return;
  if (file.size > state.config.max_upload_bytes) {
    status.textContent = `${file.name} is larger than 20 MB`;
    return;
  }
  status.textContent = `encoding ${file.name}…`;
  try {
    const style = await api(`/api/styles?name=${encodeURIComponent(file.name)}`, {
      method: "POST",
      headers: { "Content-Type": file.type || "application/octet-stream" },
      body: file,
    });
    status.textContent = `added ${style.name}`;
    await loadStyles();
    send({ style: style.id });
  } catch (e) {
    status.textContent = e.message;
  }
  $("upload").value = "";
}

// ---- settings ----------------------------------------------------------------------------------

function send(changes) {
  if (state.channel && state.channel.readyState === "open") {
    state.channel.send(JSON.stringify({ type: "settings", ...changes }));
  }
}

function showSettings(settings) {
  state.settings = settings;
  $("alpha").value = settings.alpha;
  $("alpha-value").textContent = Number(settings.alpha).toFixed(2);
  $("keep-colors").checked = settings.preserve_color;
  $("smoothing").checked = settings.smoothing;
  for (const button of $("gallery").children) {
    button.setAttribute("aria-selected", String(button.dataset.style === settings.style));
  }
  document.body.dataset.settings = JSON.stringify(settings);  // what the server confirmed (tests read it)
}

function wireControls() {
  $("alpha").addEventListener("input", (e) => {
    $("alpha-value").textContent = Number(e.target.value).toFixed(2);
    send({ alpha: Number(e.target.value) });
  });
  $("keep-colors").addEventListener("change", (e) => send({ preserve_color: e.target.checked }));
  $("smoothing").addEventListener("change", (e) => send({ smoothing: e.target.checked }));
  $("upload").addEventListener("change", (e) => upload(e.target.files[0]));
  if (!state.config.smoothing_supported) {
    $("smoothing").disabled = true;
    $("smoothing-label").classList.add("disabled");
    $("smoothing-note").textContent = "smoothing needs the server's torch backend";
  }
}

// ---- statistics --------------------------------------------------------------------------------

let shown = 0;
function countFrames() {
  const video = $("out");
  if (!("requestVideoFrameCallback" in video)) return;
  const tick = () => { shown += 1; video.requestVideoFrameCallback(tick); };
  video.requestVideoFrameCallback(tick);
}

async function updateHud() {
  const fps = shown;
  shown = 0;
  let rtt = null, buffer = null, inboundFps = null;
  if (state.pc) {
    const report = await state.pc.getStats();
    report.forEach((s) => {
      if (s.type === "candidate-pair" && s.nominated && s.currentRoundTripTime !== undefined) rtt = s.currentRoundTripTime * 1000;
      if (s.type === "inbound-rtp" && s.kind === "video") {
        inboundFps = s.framesPerSecond;
        if (s.jitterBufferEmittedCount) buffer = (1000 * s.jitterBufferDelay) / s.jitterBufferEmittedCount;
      }
    });
  }
  $("fps").textContent = (fps || inboundFps || 0).toFixed(fps ? 0 : 1);
  const server = state.server;
  const parts = [];
  if (server) parts.push(`server ${Math.round(server.latency_ms)} ms`);
  if (rtt !== null) parts.push(`network ${rtt.toFixed(0)} ms RTT`);
  if (buffer !== null) parts.push(`buffer ${buffer.toFixed(0)} ms`);
  $("latency").textContent = "latency: " + (parts.join(" + ") || "–");
  if (server) {
    const size = server.size ? `${server.size[0]}×${server.size[1]}` : "";
    $("server").textContent = `server ${server.fps.toFixed(1)} fps (${server.sent_fps.toFixed(1)} sent) ${size}, `
      + `p95 ${Math.round(server.latency_p95_ms)} ms, `
      + `${server.dropped} stale dropped, ${server.clients} client${server.clients === 1 ? "" : "s"}`;
  }
}

// ---- the call ----------------------------------------------------------------------------------

function gatheringComplete(pc) {
  if (pc.iceGatheringState === "complete") return Promise.resolve();
  return new Promise((resolve) => {
    const check = () => { if (pc.iceGatheringState === "complete") resolve(); };
    pc.addEventListener("icegatheringstatechange", check);
    setTimeout(resolve, 3000);  // send what was gathered so far rather than never
  });
}

function onMessage(event) {
  let message;
  try { message = JSON.parse(event.data); } catch (e) { return; }
  if (message.type === "stats") state.server = message;
  else if (message.type === "settings") showSettings(message);
  else if (message.type === "gallery") loadStyles();
  else if (message.type === "error") { setStatus(message.message, "live"); showSettings(message); }
}

async function connect(camera) {
  const pc = new RTCPeerConnection({ iceServers: state.config.ice_servers });
  state.pc = pc;
  const channel = pc.createDataChannel("control");
  state.channel = channel;
  channel.addEventListener("message", onMessage);
  for (const track of camera.getVideoTracks()) pc.addTrack(track, camera);
  pc.addEventListener("track", (event) => {
    $("out").srcObject = new MediaStream([event.track]);
  });
  pc.addEventListener("connectionstatechange", () => {
    const s = pc.connectionState;
    if (s === "connected") setStatus("live", "live");
    else if (s === "failed" || s === "closed") setStatus(`connection ${s}; reload to reconnect`, "error");
    else if (s === "disconnected") setStatus("connection interrupted…", "starting");
  });
  await pc.setLocalDescription(await pc.createOffer());
  await gatheringComplete(pc);
  setStatus("connecting…");
  const answer = await api("/api/offer", {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ sdp: pc.localDescription.sdp, type: pc.localDescription.type }),
  });
  showSettings(answer.settings);
  await pc.setRemoteDescription({ sdp: answer.sdp, type: answer.type });
  window.addEventListener("pagehide", () => pc.close());  // the server frees this client at once
}

async function main() {
  try {
    state.config = await api("/api/config");
    $("engine").textContent = state.config.engine;
    $("alpha").value = state.config.defaults.alpha;
    await loadStyles();
    wireControls();
    if (!window.isSecureContext || !navigator.mediaDevices) {
      throw new Error("the camera needs this page on https:// or http://localhost (see the README)");
    }
    setStatus("asking for the camera…");
    const { width, height } = state.config.camera;
    const camera = await navigator.mediaDevices.getUserMedia({
      video: { width: { ideal: width }, height: { ideal: height } }, audio: false,
    });
    $("cam").srcObject = camera;
    countFrames();
    setInterval(updateHud, 1000);
    await connect(camera);
  } catch (e) {
    const text = e && e.name === "NotAllowedError" ? "camera permission denied" : (e.message || String(e));
    setStatus(text, "error");
  }
}

main();
