// The board's plane and the screen: where a point is on each, zooming about a point,
// fitting items in view, and the arrangements of a selection (align, distribute, scale).

export interface Rect {
  x: number;
  y: number;
  w: number;
  h: number;
}

/** The screen shows the plane scaled by `zoom` and moved by (`x`, `y`) pixels. */
export interface View {
  x: number;
  y: number;
  zoom: number;
}

export const MIN_ZOOM = 0.1;
export const MAX_ZOOM = 4;

export const clampZoom = (z: number) => Math.min(MAX_ZOOM, Math.max(MIN_ZOOM, z));

/** The plane's point under the screen point (`sx`, `sy`), relative to the canvas. */
export function toPlane(view: View, sx: number, sy: number): { x: number; y: number } {
  return { x: (sx - view.x) / view.zoom, y: (sy - view.y) / view.zoom };
}

export function toScreen(view: View, x: number, y: number): { x: number; y: number } {
  return { x: x * view.zoom + view.x, y: y * view.zoom + view.y };
}

/** Zooms to `zoom`, keeping the plane's point under (`sx`, `sy`) where it is. */
export function zoomAt(view: View, zoom: number, sx: number, sy: number): View {
  const z = clampZoom(zoom);
  const p = toPlane(view, sx, sy);
  return { zoom: z, x: sx - p.x * z, y: sy - p.y * z };
}

/** The smallest rectangle holding all of `rects` (null for none). */
export function bounds(rects: Iterable<Rect>): Rect | null {
  let x0 = Infinity;
  let y0 = Infinity;
  let x1 = -Infinity;
  let y1 = -Infinity;
  for (const r of rects) {
    x0 = Math.min(x0, r.x);
    y0 = Math.min(y0, r.y);
    x1 = Math.max(x1, r.x + r.w);
    y1 = Math.max(y1, r.y + r.h);
  }
  return x0 === Infinity ? null : { x: x0, y: y0, w: x1 - x0, h: y1 - y0 };
}

export function intersects(a: Rect, b: Rect): boolean {
  return a.x < b.x + b.w && b.x < a.x + a.w && a.y < b.y + b.h && b.y < a.y + a.h;
}

/** A rectangle from two corners in any order. */
export function between(a: { x: number; y: number }, b: { x: number; y: number }): Rect {
  return { x: Math.min(a.x, b.x), y: Math.min(a.y, b.y), w: Math.abs(a.x - b.x), h: Math.abs(a.y - b.y) };
}

/** Room kept clear around what is fitted: the canvas's own tools float over its edges. */
export interface Insets {
  top: number;
  right: number;
  bottom: number;
  left: number;
}
const EVEN: Insets = { top: 48, right: 48, bottom: 48, left: 48 };

/** The view that shows `r` whole in a `width` × `height` canvas, inside `insets`, at most 100 %. */
export function fit(r: Rect | null, width: number, height: number, insets: Insets = EVEN): View {
  const w = Math.max(1, width - insets.left - insets.right);
  const h = Math.max(1, height - insets.top - insets.bottom);
  const cx = insets.left + w / 2;
  const cy = insets.top + h / 2;
  if (!r || r.w <= 0 || r.h <= 0) return { x: cx, y: cy, zoom: 1 };
  const zoom = clampZoom(Math.min(1, w / r.w, h / r.h));
  return { zoom, x: cx - (r.x + r.w / 2) * zoom, y: cy - (r.y + r.h / 2) * zoom };
}

export type Alignment = 'left' | 'center' | 'right' | 'top' | 'middle' | 'bottom';

/** New positions lining `rects` up along one edge or centre line of their bounds. */
export function align<T extends Rect & { id: string }>(rects: T[], how: Alignment): Record<string, { x?: number; y?: number }> {
  const b = bounds(rects);
  const out: Record<string, { x?: number; y?: number }> = {};
  if (!b) return out;
  for (const r of rects) {
    switch (how) {
      case 'left':
        out[r.id] = { x: b.x };
        break;
      case 'center':
        out[r.id] = { x: b.x + (b.w - r.w) / 2 };
        break;
      case 'right':
        out[r.id] = { x: b.x + b.w - r.w };
        break;
      case 'top':
        out[r.id] = { y: b.y };
        break;
      case 'middle':
        out[r.id] = { y: b.y + (b.h - r.h) / 2 };
        break;
      case 'bottom':
        out[r.id] = { y: b.y + b.h - r.h };
        break;
    }
  }
  return out;
}

/** New positions spacing `rects` evenly between the first and the last along an axis. */
export function distribute<T extends Rect & { id: string }>(rects: T[], axis: 'x' | 'y'): Record<string, { x?: number; y?: number }> {
  const size = axis === 'x' ? 'w' : 'h';
  const sorted = [...rects].sort((a, b) => a[axis] - b[axis]);
  const out: Record<string, { x?: number; y?: number }> = {};
  if (sorted.length < 3) return out;
  const first = sorted[0]!;
  const last = sorted[sorted.length - 1]!;
  const total = sorted.reduce((s, r) => s + r[size], 0);
  const gap = (last[axis] + last[size] - first[axis] - total) / (sorted.length - 1);
  let at = first[axis];
  for (const r of sorted) {
    out[r.id] = { [axis]: at };
    at += r[size] + gap;
  }
  return out;
}

export type Handle = 'nw' | 'ne' | 'sw' | 'se';

/**
 * `start` (the selection's bounds) resized by dragging `handle` by (`dx`, `dy`), the opposite
 * corner staying put; with `keepAspect` the shape stays, following the larger movement.
 */
export function resizeBox(start: Rect, handle: Handle, dx: number, dy: number, keepAspect: boolean, min = 16): Rect {
  const left = handle === 'nw' || handle === 'sw';
  const top = handle === 'nw' || handle === 'ne';
  let w = Math.max(min, start.w + (left ? -dx : dx));
  let h = Math.max(min, start.h + (top ? -dy : dy));
  if (keepAspect) {
    const s = Math.max(w / start.w, h / start.h);
    w = Math.max(min, start.w * s);
    h = Math.max(min, start.h * s);
  }
  return { x: left ? start.x + start.w - w : start.x, y: top ? start.y + start.h - h : start.y, w, h };
}

/** Where `r` goes when its selection's bounds go from `from` to `to`. */
export function scaleInto(r: Rect, from: Rect, to: Rect): Rect {
  const sx = to.w / from.w;
  const sy = to.h / from.h;
  return { x: to.x + (r.x - from.x) * sx, y: to.y + (r.y - from.y) * sy, w: r.w * sx, h: r.h * sy };
}

/** Where `r` goes so that it does not land on another item: stepped down and to the right
 * while some item's centre is within 30 units of its own (at most 20 steps). */
export function freeSpot(r: Rect, others: Iterable<Rect>, step = 24): { x: number; y: number } {
  const centres = [...others].map((o) => ({ x: o.x + o.w / 2, y: o.y + o.h / 2 }));
  let k = 0;
  const near = (k: number) => centres.some((c) => Math.hypot(c.x - (r.x + k * step + r.w / 2), c.y - (r.y + k * step + r.h / 2)) < 30);
  while (k < 20 && near(k)) k++;
  return { x: r.x + k * step, y: r.y + k * step };
}
