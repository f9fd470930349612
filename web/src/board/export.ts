// A board (or its selection) drawn as one picture, for a PNG or a PDF: images at the
// resolution they need, notes and links as cards with their text, swatches with their code.
import { bounds, type Rect } from './geometry';
import { assetUrl, variantFor } from './assets';
import type { Item } from './model';

/** The longest side of an export, in pixels (a browser canvas holds no more, safely). */
export const MAX_EXPORT_SIDE = 8192;
const MARGIN = 40;
const CAPTION = 28;

export interface Picture {
  canvas: HTMLCanvasElement;
  /** Plane units per pixel of the picture, inverted: the picture's scale. */
  scale: number;
  area: Rect;
}

function loadImage(src: string): Promise<HTMLImageElement | null> {
  return new Promise((resolve) => {
    const img = new Image();
    img.onload = () => resolve(img);
    img.onerror = () => resolve(null);
    img.src = src;
  });
}

/** An image's file, trying the next larger when a thumbnail is not made yet. */
async function imageOf(ws: string, sha: string, pixels: number): Promise<HTMLImageElement | null> {
  const order = ['small', 'large', 'original'] as const;
  for (const v of order.slice(order.indexOf(variantFor(pixels)))) {
    const img = await loadImage(assetUrl(ws, sha, v));
    if (img) return img;
  }
  return null;
}

/** Lines of `text` that fit `width`, at most `max` of them (the last cut with an ellipsis). */
export function wrap(ctx: Pick<CanvasRenderingContext2D, 'measureText'>, text: string, width: number, max: number): string[] {
  const lines: string[] = [];
  for (const paragraph of text.split('\n')) {
    let line = '';
    for (const word of paragraph.split(/\s+/).filter(Boolean)) {
      const next = line ? `${line} ${word}` : word;
      if (ctx.measureText(next).width <= width || !line) line = next;
      else {
        lines.push(line);
        line = word;
      }
    }
    lines.push(line);
  }
  if (lines.length > max) {
    const kept = lines.slice(0, max);
    kept[max - 1] = `${kept[max - 1]}…`;
    return kept;
  }
  return lines;
}

function roundRect(ctx: CanvasRenderingContext2D, r: Rect, radius: number) {
  ctx.beginPath();
  ctx.roundRect(r.x, r.y, r.w, r.h, radius);
}

/** Draws `items` (in z order) into a new canvas, `pixelRatio` pixels per plane unit at most. */
export async function drawBoard(ws: string, items: Item[], pixelRatio = 2): Promise<Picture> {
  const b = bounds(items.map((i) => ({ ...i, h: i.h + (i.caption ? CAPTION : 0) }))) ?? { x: 0, y: 0, w: 400, h: 300 };
  const area = { x: b.x - MARGIN, y: b.y - MARGIN, w: b.w + 2 * MARGIN, h: b.h + 2 * MARGIN };
  const scale = Math.min(pixelRatio, MAX_EXPORT_SIDE / Math.max(area.w, area.h));
  const canvas = document.createElement('canvas');
  canvas.width = Math.max(1, Math.round(area.w * scale));
  canvas.height = Math.max(1, Math.round(area.h * scale));
  const ctx = canvas.getContext('2d');
  if (!ctx) throw new Error('This browser cannot draw the board (no 2D canvas).');
  ctx.fillStyle = '#ffffff';
  ctx.fillRect(0, 0, canvas.width, canvas.height);
  ctx.scale(scale, scale);
  ctx.translate(-area.x, -area.y);
  const sorted = [...items].sort((a, b) => a.z - b.z);
  const images = await Promise.all(
    sorted.map((i) => (i.type === 'image' && i.asset ? imageOf(ws, i.asset, i.w * scale) : Promise.resolve(null))),
  );
  const font = (size: number, weight = 400) => `${weight} ${size}px Inter, system-ui, sans-serif`;
  sorted.forEach((item, n) => {
    ctx.save();
    ctx.translate(item.x + item.w / 2, item.y + item.h / 2);
    if (item.rotation) ctx.rotate((item.rotation * Math.PI) / 180);
    ctx.translate(-item.w / 2, -item.h / 2);
    const box = { x: 0, y: 0, w: item.w, h: item.h };
    if (item.type === 'image') {
      const img = images[n];
      if (img) ctx.drawImage(img, 0, 0, item.w, item.h);
      else {
        ctx.fillStyle = '#eceae6';
        ctx.fillRect(0, 0, item.w, item.h);
      }
    } else if (item.type === 'swatch') {
      ctx.fillStyle = item.color ?? '#cccccc';
      roundRect(ctx, box, 6);
      ctx.fill();
      ctx.fillStyle = '#ffffff';
      ctx.fillRect(0, item.h - 28, item.w, 28);
      ctx.fillStyle = '#333333';
      ctx.font = font(13, 600);
      ctx.fillText((item.color ?? '').toUpperCase(), 10, item.h - 9);
    } else {
      ctx.fillStyle = item.type === 'note' ? (item.color ?? '#fff3bf') : '#ffffff';
      roundRect(ctx, box, 6);
      ctx.fill();
      ctx.strokeStyle = 'rgba(0,0,0,0.12)';
      ctx.stroke();
      ctx.fillStyle = '#222222';
      const size = 15;
      ctx.font = font(size);
      let text = item.text ?? '';
      if (item.type === 'link') {
        ctx.font = font(13, 600);
        ctx.fillText(hostOf(item.url ?? ''), 12, 24, item.w - 24);
        ctx.font = font(size);
        text = item.caption ?? item.url ?? '';
      }
      const top = item.type === 'link' ? 48 : 26;
      const lines = wrap(ctx, text, item.w - 24, Math.max(1, Math.floor((item.h - top) / (size * 1.4)) + 1));
      lines.forEach((l, k) => ctx.fillText(l, 12, top + k * size * 1.4));
    }
    if (item.caption && item.type !== 'link') {
      ctx.fillStyle = '#444444';
      ctx.font = font(13);
      ctx.fillText(item.caption, 0, item.h + 19, item.w);
    }
    ctx.restore();
  });
  return { canvas, scale, area };
}

export function hostOf(url: string): string {
  try {
    return new URL(url).host;
  } catch {
    return url;
  }
}

function download(blob: Blob, name: string) {
  const a = document.createElement('a');
  a.href = URL.createObjectURL(blob);
  a.download = name;
  a.click();
  setTimeout(() => URL.revokeObjectURL(a.href), 10_000);
}

/** A file name from a board's title. */
export function fileName(title: string, ext: string): string {
  const base = title.trim().replace(/[\\/:*?"<>|]+/g, '-').slice(0, 100) || 'Moodboard';
  return `${base}.${ext}`;
}

export async function exportPng(ws: string, items: Item[], title: string) {
  const { canvas } = await drawBoard(ws, items);
  const blob = await new Promise<Blob | null>((resolve) => canvas.toBlob(resolve, 'image/png'));
  if (!blob) throw new Error('The board is too large to export as one picture: select part of it and export that.');
  download(blob, fileName(title, 'png'));
}

/** A one-page PDF the shape of the board, its picture at print resolution. */
export async function exportPdf(ws: string, items: Item[], title: string) {
  const [{ jsPDF }, { canvas, area }] = await Promise.all([import('jspdf'), drawBoard(ws, items)]);
  // One plane unit is one CSS pixel: 0.75 pt.
  const w = area.w * 0.75;
  const h = area.h * 0.75;
  const pdf = new jsPDF({ orientation: w >= h ? 'landscape' : 'portrait', unit: 'pt', format: [w, h], compress: true });
  pdf.setProperties({ title, creator: 'Quire' });
  pdf.addImage(canvas, 'JPEG', 0, 0, w, h, undefined, 'FAST');
  download(pdf.output('blob'), fileName(title, 'pdf'));
}
