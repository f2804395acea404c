'use strict';
// A small hand-drawn line chart on a canvas: a few series over a time window ending now.

function niceCeiling(value) {
  if (value <= 1) return 1;
  const power = 10 ** Math.floor(Math.log10(value));
  const step = [1, 2, 5, 10].find((m) => m * power >= value);
  return step * power;
}

// series: [{name, color, values: [[ms, y], ...]}]; the x axis runs from endMs - windowMs to endMs.
function drawLineChart(canvas, series, endMs, windowMs) {
  const ratio = window.devicePixelRatio || 1;
  const width = canvas.clientWidth || canvas.width;
  const height = canvas.clientHeight || canvas.height;
  if (canvas.width !== Math.round(width * ratio)) {
    canvas.width = Math.round(width * ratio);
    canvas.height = Math.round(height * ratio);
  }
  const g = canvas.getContext('2d');
  g.setTransform(ratio, 0, 0, ratio, 0, 0);
  g.clearRect(0, 0, width, height);

  const pad = { left: 44, right: 12, top: 10, bottom: 24 };
  const plotW = width - pad.left - pad.right;
  const plotH = height - pad.top - pad.bottom;
  const startMs = endMs - windowMs;
  const top = niceCeiling(Math.max(0, ...series.flatMap((s) => s.values.map((v) => v[1]))));
  const x = (ms) => pad.left + ((ms - startMs) / windowMs) * plotW;
  const y = (v) => pad.top + plotH - (v / top) * plotH;

  g.font = '11px system-ui, sans-serif';
  g.fillStyle = '#6b7280';
  g.strokeStyle = '#e5e7eb';
  g.lineWidth = 1;
  g.textAlign = 'right';
  g.textBaseline = 'middle';
  for (const fraction of [0, 0.5, 1]) {
    const value = top * fraction;
    g.beginPath();
    g.moveTo(pad.left, y(value));
    g.lineTo(width - pad.right, y(value));
    g.stroke();
    g.fillText(Number.isInteger(value) ? value : value.toFixed(1), pad.left - 6, y(value));
  }
  g.textAlign = 'center';
  g.textBaseline = 'top';
  // At most six time labels, on a round step, counting back from now.
  const stepS = [10, 15, 30, 60, 120, 300, 600].find((step) => windowMs / 1000 / step <= 6) || 600;
  for (let s = 0; s * 1000 <= windowMs; s += stepS) {
    const label = s === 0 ? 'now' : s % 60 === 0 ? `-${s / 60} min` : `-${s} s`;
    g.fillText(label, x(endMs - s * 1000), height - pad.bottom + 6);
  }

  g.lineWidth = 2;
  g.lineJoin = 'round';
  for (const s of series) {
    const points = s.values.filter(([ms]) => ms >= startMs);
    if (points.length === 0) continue;
    g.strokeStyle = s.color;
    g.beginPath();
    points.forEach(([ms, v], i) => (i === 0 ? g.moveTo(x(ms), y(v)) : g.lineTo(x(ms), y(v))));
    g.stroke();
  }
}
