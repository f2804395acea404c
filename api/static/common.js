'use strict';
// What both pages share: calling the API, reading its problem+json refusals, and formatting.

class ApiProblem extends Error {
  constructor(status, body) {
    super(body.detail || `HTTP ${status}`);
    this.status = status;
    this.code = body.code || 'http_' + status;
    this.body = body;
  }
}

// The server's clock minus this browser's, from the Date header, so countdowns match the server.
let clockOffsetMs = 0;

function noteServerClock(response) {
  const date = Date.parse(response.headers.get('date') || '');
  // The header has a one-second resolution: only a larger skew is worth correcting.
  if (!Number.isNaN(date) && Math.abs(date - Date.now()) > 1500) clockOffsetMs = date - Date.now();
}

function serverNow() {
  return Date.now() + clockOffsetMs;
}

async function api(method, path, body, headers = {}) {
  const init = { method, headers: { Accept: 'application/json', ...headers }, cache: 'no-store' };
  if (body !== undefined) {
    init.headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  const response = await fetch(path, init);
  noteServerClock(response);
  const text = await response.text();
  const data = text ? JSON.parse(text) : null;
  if (!response.ok) throw new ApiProblem(response.status, data || {});
  return data;
}

function duration(ms) {
  const total = Math.max(0, Math.ceil(ms / 1000));
  const h = Math.floor(total / 3600);
  const m = Math.floor((total % 3600) / 60);
  const s = String(total % 60).padStart(2, '0');
  if (h > 0) return `${h}:${String(m).padStart(2, '0')}:${s}`;
  return `${m}:${s}`;
}

function money(cents) {
  return (cents / 100).toFixed(2);
}

function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

// A copy of the <template> with this id.
function fromTemplate(id) {
  return document.getElementById(id).content.firstElementChild.cloneNode(true);
}

// The element of class `name` inside `element`.
function part(element, name) {
  return element.querySelector('.' + name);
}
