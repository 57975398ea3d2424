// PNG line plots for the E2E report: a small SVG drawn here, rasterised by @resvg/resvg-js (text with the
// system's fonts; without any installed, the lines still show).
import { Resvg } from '@resvg/resvg-js';

export interface PlotSeries {
  name: string;
  /** [seconds from the start of the run, value] */
  points: [number, number][];
}

const WIDTH = 900;
const HEIGHT = 320;
const MARGIN = { left: 60, right: 170, top: 36, bottom: 40 };
/** Samples further apart than this (seconds) are not joined by a line. */
const GAP_S = 6;
const COLORS = ['#1f77b4', '#d62728', '#2ca02c', '#ff7f0e', '#9467bd', '#8c564b', '#e377c2', '#7f7f7f'];

const escape = (text: string) => text.replaceAll('&', '&amp;').replaceAll('<', '&lt;').replaceAll('>', '&gt;');

function niceMax(max: number): number {
  if (max <= 0) return 1;
  const magnitude = 10 ** Math.floor(Math.log10(max));
  return [1, 2, 5, 10].map((m) => m * magnitude).find((v) => v >= max) ?? max;
}

/** A line plot as SVG: one polyline per series, time on x (seconds), value on y from 0. */
export function linePlotSvg(title: string, unit: string, series: readonly PlotSeries[]): string {
  const all = series.flatMap((s) => s.points);
  const xMin = Math.min(...all.map(([t]) => t), 0);
  const xMax = Math.max(...all.map(([t]) => t), xMin + 1);
  const yMax = niceMax(Math.max(...all.map(([, v]) => v), 0));
  const plotW = WIDTH - MARGIN.left - MARGIN.right;
  const plotH = HEIGHT - MARGIN.top - MARGIN.bottom;
  const x = (t: number) => MARGIN.left + ((t - xMin) / (xMax - xMin)) * plotW;
  const y = (v: number) => MARGIN.top + plotH - (v / yMax) * plotH;
  const parts = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${HEIGHT}" font-family="DejaVu Sans, sans-serif" font-size="12">`,
    `<rect width="${WIDTH}" height="${HEIGHT}" fill="white"/>`,
    `<text x="${MARGIN.left}" y="22" font-size="15" font-weight="bold">${escape(title)}</text>`,
  ];
  for (let i = 0; i <= 4; i += 1) {
    const v = (yMax * i) / 4;
    parts.push(`<line x1="${MARGIN.left}" x2="${MARGIN.left + plotW}" y1="${y(v)}" y2="${y(v)}" stroke="#ddd"/>`);
    parts.push(
      `<text x="${MARGIN.left - 6}" y="${y(v) + 4}" text-anchor="end">${Number(v.toPrecision(3))}${escape(unit)}</text>`,
    );
  }
  for (let i = 0; i <= 6; i += 1) {
    const t = xMin + ((xMax - xMin) * i) / 6;
    parts.push(`<text x="${x(t)}" y="${HEIGHT - MARGIN.bottom + 16}" text-anchor="middle">${Math.round(t)}s</text>`);
  }
  parts.push(
    `<text x="${MARGIN.left + plotW / 2}" y="${HEIGHT - 6}" text-anchor="middle">seconds from the start of the run</text>`,
  );
  series.forEach((s, i) => {
    const color = COLORS[i % COLORS.length] ?? '#000';
    // A gap in the samples (no value, as a quantile without traffic) breaks the line instead of bridging it.
    const segments: [number, number][][] = [];
    for (const point of s.points) {
      const last = segments.at(-1);
      const previous = last?.at(-1);
      if (last && previous && point[0] - previous[0] <= GAP_S) last.push(point);
      else segments.push([point]);
    }
    for (const segment of segments) {
      const points = segment.map(([t, v]) => `${x(t).toFixed(1)},${y(v).toFixed(1)}`).join(' ');
      parts.push(`<polyline fill="none" stroke="${color}" stroke-width="2" points="${points}"/>`);
      for (const [t, v] of segment.length === 1 ? segment : [])
        parts.push(`<circle cx="${x(t).toFixed(1)}" cy="${y(v).toFixed(1)}" r="3" fill="${color}"/>`);
    }
    const ly = MARGIN.top + 16 * i + 8;
    parts.push(
      `<line x1="${WIDTH - MARGIN.right + 12}" x2="${WIDTH - MARGIN.right + 32}" y1="${ly}" y2="${ly}" stroke="${color}" stroke-width="3"/>`,
    );
    parts.push(`<text x="${WIDTH - MARGIN.right + 38}" y="${ly + 4}">${escape(s.name)}</text>`);
  });
  parts.push('</svg>');
  return parts.join('\n');
}

export function svgToPng(svg: string): Buffer {
  return new Resvg(svg, { font: { loadSystemFonts: true, defaultFontFamily: 'DejaVu Sans' } }).render().asPng();
}
