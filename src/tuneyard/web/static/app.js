// tuneyard dashboard: upload progress, live curves, the new-job form, the playground.
// Plain browser JavaScript, no build step; uPlot and htmx come from static/vendor.
"use strict";

const csrf = () => (document.querySelector('meta[name="csrf-token"]') || {}).content || "";

function showError(el, message) {
  if (!el) return;
  el.textContent = message;
  el.hidden = !message;
}

async function errorText(response) {
  const text = await response.text();
  try { return JSON.parse(text).error || text; } catch (e) { return text || response.statusText; }
}

// -- dataset upload with a progress bar -------------------------------------------------
function setupUpload() {
  const form = document.getElementById("upload");
  if (!form) return;
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const bar = document.getElementById("upload-progress");
    const error = document.getElementById("upload-error");
    showError(error, "");
    const xhr = new XMLHttpRequest();
    xhr.open("POST", form.action);
    xhr.setRequestHeader("X-CSRF-Token", csrf());
    xhr.upload.onprogress = (e) => {
      if (e.lengthComputable) bar.value = Math.round((100 * e.loaded) / e.total);
    };
    xhr.onload = () => {
      let body = {};
      try { body = JSON.parse(xhr.responseText); } catch (e) { /* not JSON */ }
      if (xhr.status === 201 && body.url) { window.location.assign(body.url); return; }
      bar.hidden = true;
      showError(error, body.error || xhr.responseText || `HTTP ${xhr.status}`);
    };
    xhr.onerror = () => { bar.hidden = true; showError(error, "upload failed: network error"); };
    bar.value = 0;
    bar.hidden = false;
    xhr.send(new FormData(form));
  });
}

// -- live curves ------------------------------------------------------------------------
function chartOptions(el, series, xLabel, extraAxes = []) {
  return {
    width: el.clientWidth || 600, height: el.clientHeight || 280,
    scales: { x: { time: false } },
    axes: [{ label: xLabel }, {}, ...extraAxes],
    legend: { live: true },
    series: [{ label: xLabel }, ...series],
  };
}

// uPlot wants one shared x array: merge the series' steps, null where a series has none.
function align(seriesList) {
  const xs = [...new Set(seriesList.flatMap((s) => s[0]))].sort((a, b) => a - b);
  const columns = seriesList.map(([steps, values]) => {
    const at = new Map(steps.map((x, i) => [x, values[i]]));
    return xs.map((x) => (at.has(x) ? at.get(x) : null));
  });
  return [xs, ...columns];
}

function setupCharts() {
  const box = document.getElementById("charts");
  if (!box || typeof uPlot === "undefined") return;
  const lossEl = document.getElementById("loss-chart");
  const metricEl = document.getElementById("metric-chart");
  const select = document.getElementById("metric-select");
  const loss = new uPlot(chartOptions(lossEl, [
    { label: "training loss", stroke: "#2b59c3", width: 2, spanGaps: true },
    { label: "eval loss", stroke: "#e07a00", width: 2, spanGaps: true, points: { size: 7 } },
    // The learning rate on its own scale, on the right-hand axis.
    { label: "learning rate", stroke: "#8a8f98", width: 1, dash: [4, 4], spanGaps: true,
      scale: "lr", value: (u, v) => (v == null ? "" : v.toExponential(2)) },
  ], "step", [{ scale: "lr", side: 1, grid: { show: false },
                values: (u, vals) => vals.map((v) => v.toExponential(1)) }]),
  [[], [], [], []], lossEl);
  let metric = null;
  let metricName = null;
  let last = null;

  function drawMetric() {
    if (!last) return;
    const name = select.value;
    const data = last.metrics[name] || [[], []];
    if (name !== metricName) {
      if (metric) metric.destroy();
      metric = new uPlot(chartOptions(metricEl, [
        { label: name || "metric", stroke: "#147a3d", width: 2, points: { size: 7 } },
      ], "step"), [data[0], data[1]], metricEl);
      metricName = name;
    } else {
      metric.setData([data[0], data[1]]);
    }
  }
  select.addEventListener("change", drawMetric);

  async function poll() {
    let data;
    try {
      const response = await fetch(box.dataset.curves, { headers: { Accept: "application/json" } });
      if (!response.ok) throw new Error(await errorText(response));
      data = await response.json();
    } catch (e) {
      setTimeout(poll, 5000);
      return;
    }
    last = data;
    loss.setData(align([data.train, data.eval, data.lr || [[], []]]));
    const names = Object.keys(data.metrics);
    if (names.join() !== [...select.options].map((o) => o.value).join()) {
      const keep = select.value;
      select.replaceChildren(...names.map((n) => new Option(n, n, false, n === keep)));
    }
    drawMetric();
    document.getElementById("job-status").textContent = data.status;
    document.getElementById("job-status").className = "status s-" + data.status.toLowerCase();
    document.getElementById("job-progress").value = data.progress;
    document.getElementById("job-progress-text").textContent = data.progress + "%";
    document.getElementById("job-points").textContent =
      `${data.train[0].length} loss points · ${data.checkpoints} checkpoints · ${data.tested} tested`;
    box.dataset.points = String(data.train[0].length);
    const cancel = document.getElementById("cancel-job");
    if (cancel && ["Success", "Failed", "TimedOut", "Cancelled"].includes(data.status)) cancel.hidden = true;
    if (!data.final) setTimeout(poll, 1500);
  }
  new ResizeObserver(() => {
    loss.setSize({ width: lossEl.clientWidth, height: lossEl.clientHeight });
    if (metric) metric.setSize({ width: metricEl.clientWidth, height: metricEl.clientHeight });
  }).observe(lossEl);
  poll();
}

// -- new job: "continue from checkpoint N of job X" ----------------------------------------
function setupNewJob() {
  const source = document.getElementById("source_job");
  const number = document.getElementById("source_checkpoint");
  if (!source || !number) return;
  const sources = JSON.parse(number.dataset.sources || "{}");
  const fill = () => {
    const list = sources[source.value] || [];
    const keep = number.value || number.dataset.selected;
    number.replaceChildren(...list.map((n) => new Option(`checkpoint ${n}`, n, false, String(n) === keep)));
    number.disabled = !source.value;
    document.getElementById("base_model").disabled = !!source.value;
  };
  source.addEventListener("change", fill);
  fill();
}

// -- the playground ---------------------------------------------------------------------
function sampling(box) {
  const out = {};
  box.querySelectorAll(".sampling input").forEach((input) => {
    if (input.type === "checkbox") { if (input.checked) out[input.name] = true; return; }
    if (input.value !== "") out[input.name] = Number(input.value);
  });
  return out;
}

async function post(url, body) {
  return fetch(url, {
    method: "POST",
    headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf(), Accept: "text/event-stream" },
    body: JSON.stringify(body),
  });
}

// Read an OpenAI-style SSE stream, calling onText with each piece of text as it arrives.
async function readStream(response, onText) {
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += decoder.decode(value, { stream: true });
    let cut;
    while ((cut = buffer.indexOf("\n\n")) >= 0) {
      const event = buffer.slice(0, cut);
      buffer = buffer.slice(cut + 2);
      for (const line of event.split("\n")) {
        if (!line.startsWith("data:")) continue;
        const data = line.slice(5).trim();
        if (data === "[DONE]") return;
        const chunk = JSON.parse(data);
        if (chunk.error) throw new Error(chunk.error.message || "the model failed");
        const choice = (chunk.choices || [])[0] || {};
        const text = choice.delta ? choice.delta.content : choice.text;
        if (text) onText(text);
      }
    }
  }
}

function setupPlayground() {
  const box = document.getElementById("playground");
  if (!box) return;
  const base = box.dataset.url;
  const error = document.getElementById("play-error");
  const fail = (e) => showError(error, e.message || String(e));

  box.querySelectorAll(".tab").forEach((tab) => tab.addEventListener("click", () => {
    box.querySelectorAll(".tab").forEach((t) => t.setAttribute("aria-selected", String(t === tab)));
    box.querySelectorAll("[data-pane]").forEach((p) => { p.hidden = p.dataset.pane !== tab.dataset.tab; });
  }));

  const chatForm = document.getElementById("chat-form");
  if (chatForm) {
    const log = document.getElementById("chat-log");
    const messages = [];
    chatForm.addEventListener("submit", async (event) => {
      event.preventDefault();
      showError(error, "");
      const input = document.getElementById("chat-input");
      const content = input.value;
      input.value = "";
      messages.push({ role: "user", content });
      const mine = document.createElement("li");
      mine.className = "user"; mine.textContent = content; log.append(mine);
      const answer = document.createElement("li");
      answer.className = "assistant"; answer.setAttribute("aria-busy", "true"); log.append(answer);
      try {
        const response = await post(base + "chat", { messages, ...sampling(box) });
        if (!response.ok) throw new Error(await errorText(response));
        let pieces = 0;
        await readStream(response, (text) => {
          answer.textContent += text;
          answer.dataset.pieces = String(++pieces);  // how many streamed deltas made it
          log.scrollTop = log.scrollHeight;
        });
        messages.push({ role: "assistant", content: answer.textContent });
      } catch (e) { fail(e); }
      answer.setAttribute("aria-busy", "false");
    });
  }

  const completeForm = document.getElementById("complete-form");
  if (completeForm) {
    completeForm.addEventListener("submit", async (event) => {
      event.preventDefault();
      showError(error, "");
      const out = document.getElementById("complete-output");
      out.textContent = "";
      try {
        const response = await post(base + "complete", { prompt: completeForm.prompt.value, ...sampling(box) });
        if (!response.ok) throw new Error(await errorText(response));
        await readStream(response, (text) => { out.textContent += text; });
      } catch (e) { fail(e); }
    });
  }

  const classifyForm = document.getElementById("classify-form");
  if (classifyForm) {
    classifyForm.addEventListener("submit", async (event) => {
      event.preventDefault();
      showError(error, "");
      const out = document.getElementById("classify-output");
      try {
        const response = await post(base + "classify", { text: classifyForm.text.value });
        if (!response.ok) throw new Error(await errorText(response));
        const result = await response.json();
        if (result.value !== undefined) { out.innerHTML = `<p class="big"></p>`; out.firstChild.textContent = result.value.toFixed(4); return; }
        const rows = Object.entries(result.scores || {}).sort((a, b) => b[1] - a[1]);
        out.replaceChildren(...rows.map(([label, p]) => {
          const row = document.createElement("div");
          row.className = "bar";
          row.innerHTML = `<span></span><meter min="0" max="1"></meter><span class="num"></span>`;
          row.children[0].textContent = label + (label === result.label ? " ★" : "");
          row.children[1].value = p;
          row.children[2].textContent = p.toFixed(3);
          return row;
        }));
      } catch (e) { fail(e); }
    });
  }

  const embedForm = document.getElementById("embed-form");
  if (embedForm) {
    embedForm.addEventListener("submit", async (event) => {
      event.preventDefault();
      showError(error, "");
      try {
        const response = await post(base + "embed", { text: embedForm.text.value, text2: embedForm.text2.value });
        if (!response.ok) throw new Error(await errorText(response));
        const result = await response.json();
        document.getElementById("embed-output").textContent =
          `cosine ${result.cosine.toFixed(4)} (${result.dimensions} dimensions)`;
      } catch (e) { fail(e); }
    });
  }
}

document.addEventListener("DOMContentLoaded", () => {
  setupUpload();
  setupCharts();
  setupNewJob();
  setupPlayground();
});
