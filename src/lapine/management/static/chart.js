// Small SVG line charts for live figures: each poll adds a point, the last few minutes are shown.

const COLORS = ["#e8590c", "#1c7ed6", "#2f9e44", "#ae3ec9", "#f08c00", "#0c8599", "#e03131"];
const WIDTH = 600;
const HEIGHT = 190;
const PAD = { left: 46, right: 10, top: 10, bottom: 22 };

export class Series {
  constructor(names, keep = 120) {
    this.names = names;
    this.keep = keep;
    this.points = []; // [time, values[]]
  }

  add(values) {
    this.points.push([Date.now(), this.names.map((name) => Number(values[name]) || 0)]);
    if (this.points.length > this.keep) this.points.shift();
  }
}

function niceMax(value) {
  if (value <= 0) return 1;
  const power = 10 ** Math.floor(Math.log10(value));
  for (const step of [1, 2, 2.5, 5, 10]) {
    if (value <= step * power) return step * power;
  }
  return 10 * power;
}

function format(value) {
  if (value >= 1e6) return `${(value / 1e6).toFixed(1)}M`;
  if (value >= 1e4) return `${(value / 1e3).toFixed(0)}k`;
  if (value >= 1e3) return `${(value / 1e3).toFixed(1)}k`;
  return Number.isInteger(value) ? String(value) : value.toFixed(1);
}

function clock(ms) {
  const d = new Date(ms);
  return d.toTimeString().slice(0, 8);
}

export function renderChart(container, series, labels, unit = "") {
  const points = series.points;
  const max = niceMax(Math.max(0, ...points.flatMap(([, values]) => values)));
  const t1 = points.length ? points[points.length - 1][0] : Date.now();
  const t0 = points.length > 1 ? points[0][0] : t1 - 60000;
  const span = Math.max(t1 - t0, 1);
  const plotW = WIDTH - PAD.left - PAD.right;
  const plotH = HEIGHT - PAD.top - PAD.bottom;
  const x = (t) => PAD.left + ((t - t0) / span) * plotW;
  const y = (v) => PAD.top + plotH - (v / max) * plotH;
  const parts = [];
  for (let i = 0; i <= 4; i += 1) {
    const value = (max * i) / 4;
    parts.push(`<line class="grid-line" x1="${PAD.left}" x2="${WIDTH - PAD.right}" y1="${y(value)}" y2="${y(value)}"/>`);
    parts.push(`<text class="axis-label" x="${PAD.left - 6}" y="${y(value) + 3.5}" text-anchor="end">${format(value)}</text>`);
  }
  parts.push(`<text class="axis-label" x="${PAD.left}" y="${HEIGHT - 5}">${clock(t0)}</text>`);
  parts.push(`<text class="axis-label" x="${WIDTH - PAD.right}" y="${HEIGHT - 5}" text-anchor="end">${clock(t1)}</text>`);
  series.names.forEach((_name, index) => {
    if (points.length < 2) return;
    const line = points.map(([t, values], i) => `${i ? "L" : "M"}${x(t).toFixed(1)},${y(values[index]).toFixed(1)}`).join("");
    const color = COLORS[index % COLORS.length];
    const area = `${line}L${x(t1).toFixed(1)},${y(0)}L${x(t0).toFixed(1)},${y(0)}Z`;
    parts.push(`<path class="area" d="${area}" fill="${color}"/>`);
    parts.push(`<path class="series" data-series="${series.names[index]}" d="${line}" stroke="${color}"/>`);
  });
  const last = points.length ? points[points.length - 1][1] : series.names.map(() => 0);
  const legend = series.names
    .map((name, index) => {
      const color = COLORS[index % COLORS.length];
      return `<span><span class="swatch" style="background:${color}"></span>${labels[index]}<span class="val">${format(last[index])}${unit}</span></span>`;
    })
    .join("");
  container.innerHTML = `<div class="chart"><svg viewBox="0 0 ${WIDTH} ${HEIGHT}" preserveAspectRatio="none" role="img">${parts.join("")}</svg><div class="legend">${legend}</div></div>`;
}
