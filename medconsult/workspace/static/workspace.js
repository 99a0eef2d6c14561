// The workspace's only script: it follows a case's event stream and lets the overlay be toggled and faded.
// Everything it writes into the page goes through textContent: record text and model output are never markup.
"use strict";

document.addEventListener("DOMContentLoaded", () => {
  document.querySelectorAll(".card").forEach(setUpOverlay);
  const steps = document.getElementById("steps");
  if (steps && steps.dataset.events) follow(steps);
});

function setUpOverlay(card) {
  const mask = card.querySelector(".viewer img.mask");
  if (!mask) return;
  const toggle = card.querySelector(".overlay-toggle");
  const opacity = card.querySelector(".overlay-opacity");
  toggle.addEventListener("change", () => mask.classList.toggle("hidden", !toggle.checked));
  opacity.addEventListener("input", () => { mask.style.opacity = String(opacity.value / 100); });
}

function follow(list) {
  const source = new EventSource(list.dataset.events);
  const running = new Map(); // "kind name" -> the items still running, oldest first
  source.onmessage = (message) => {
    const event = JSON.parse(message.data);
    if (event.type === "step") showStep(list, running, event);
    else if (event.type === "draft") showDraft(event);
    else if (event.type === "writing") showWriting(event);
    else if (event.type === "status") showStatus(event);
    else if (event.type === "answer") showAnswer(event);
    else if (event.type === "end") { source.close(); window.location.reload(); }
  };
}

function cell(className, text) {
  const span = document.createElement("span");
  span.className = className;
  span.textContent = text;
  return span;
}

function showStep(list, running, event) {
  const key = event.kind + " " + event.name;
  if (event.phase === "start") {
    const item = document.createElement("li");
    item.className = "step running " + event.kind;
    item.append(cell("kind", event.kind), cell("name", event.name), cell("duration", "running"), cell("line", ""));
    list.append(item);
    running.set(key, [...(running.get(key) || []), item]);
    return;
  }
  const waiting = running.get(key) || [];
  let item = waiting.shift();
  if (!item) { // an LLM call has no start event of its own: its step's node is running
    item = document.createElement("li");
    item.append(cell("kind", event.kind), cell("name", event.name), cell("duration", ""), cell("line", ""));
    list.append(item);
  }
  item.className = "step " + event.kind + (event.error ? " failed" : "");
  item.querySelector(".duration").textContent = (event.duration_s || 0).toFixed(2) + " s";
  item.querySelector(".line").textContent = event.line || "";
}

function showDraft(event) {
  const target = document.querySelector('[data-draft="' + event.step + '"]');
  if (!target) return;
  target.replaceChildren(...event.lines.map((line) => {
    const item = document.createElement("li");
    item.textContent = line;
    return item;
  }));
}

function showWriting(event) {
  const target = document.querySelector('[data-writing="' + event.step + '"]');
  if (target) target.textContent = "writing… " + event.characters + " characters";
}

function showAnswer(event) {
  const target = document.querySelector("[data-answer]");
  if (target) target.textContent = event.text;
}

function showStatus(event) {
  const status = document.getElementById("status");
  if (!status) return;
  status.textContent = event.status;
  status.dataset.status = event.status;
}
