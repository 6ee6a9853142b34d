// One metric's chart: uPlot with the bucket average as a line and the bucket min and max as a
// band, so a one-sample spike shows at every zoom (the server keeps raw extrema per bucket).
import uPlot from './uPlot.js';

function cssVar(name) {
  return getComputedStyle(document.documentElement).getPropertyValue(name).trim();
}

// The x range to show: the chosen one, widened to the data (live points go past its end).
function spanning([from, to], min, max) {
  return [Math.min(min ?? from, from), Math.max(max ?? to, to)];
}

// Columns of /api/v1/series ({t,min,max,avg}) as uPlot data.
export function seriesData(s) {
  return [s.t.slice(), s.min.slice(), s.max.slice(), s.avg.slice()];
}

// A chart in `el`, `width` x `height` CSS pixels, of buckets ([t, min, max, avg]: a line and a
// band) or of raw points ([t, v]: a line). `onZoom(from_ms, to_ms)` after a drag; `onDraw`
// after each draw; `xRange` [from_ms, to_ms] the time range to show at least.
export function makeChart(el, { title, width, height = 180, data, onZoom, onDraw, xRange }) {
  const line = cssVar('--chart-line') || '#1565c0';
  const band = cssVar('--chart-band') || 'rgba(21,101,192,0.18)';
  const axis = cssVar('--fg-muted') || '#555';
  const grid = cssVar('--grid') || 'rgba(0,0,0,0.08)';
  const axes = {
    stroke: axis,
    grid: { stroke: grid, width: 1 },
    ticks: { stroke: grid, width: 1 },
  };
  const opts = {
    title,
    width,
    height,
    ms: 1,
    // A drag only selects; the page refetches the selection at full resolution (onZoom).
    cursor: { drag: { x: true, y: false, setScale: false } },
    legend: { show: false },
    // The x axis spans the chosen range even where there is no data yet.
    scales: { x: xRange ? { time: true, range: (u, min, max) => spanning(xRange, min, max) } : { time: true } },
    axes: [{ ...axes }, { ...axes, size: 56 }],
    series: data.length === 2
      ? [{}, { label: 'value', stroke: line, width: 1.5, points: { show: false } }]
      : [
        {},
        { label: 'min', stroke: 'transparent', points: { show: false } },
        { label: 'max', stroke: 'transparent', points: { show: false } },
        { label: 'avg', stroke: line, width: 1.5, points: { show: false } },
      ],
    bands: data.length === 2 ? [] : [{ series: [2, 1], fill: band }],
    hooks: {
      draw: onDraw ? [onDraw] : [],
      setSelect: [
        (u) => {
          if (u.select.width < 4 || !onZoom) return;
          const from = u.posToVal(u.select.left, 'x');
          const to = u.posToVal(u.select.left + u.select.width, 'x');
          u.setSelect({ left: 0, width: 0, top: 0, height: 0 }, false);
          onZoom(Math.floor(from), Math.ceil(to));
        },
      ],
    },
  };
  return new uPlot(opts, data, el);
}

// Appends one live point to a chart made by makeChart (a point is its own bucket).
export function appendPoint(chart, t, v, maxPoints) {
  const d = chart.data;
  const n = d[0].length;
  if (n && t < d[0][n - 1]) return; // older than what is shown: the history has it
  for (const [i, x] of [[0, t], [1, v], [2, v], [3, v]]) d[i].push(x);
  if (maxPoints && d[0].length > maxPoints) for (const col of d) col.shift();
  chart.setData(d, true);
}

export { uPlot };
