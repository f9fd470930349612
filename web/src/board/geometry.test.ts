import { describe, expect, it } from 'vitest';
import { align, bounds, distribute, fit, freeSpot, resizeBox, scaleInto, toPlane, toScreen, zoomAt } from './geometry';

describe('the plane and the screen', () => {
  it('zooms about the pointer, keeping the point under it', () => {
    const view = { x: 100, y: 50, zoom: 1 };
    const under = toPlane(view, 400, 300);
    const zoomed = zoomAt(view, 2, 400, 300);
    expect(toScreen(zoomed, under.x, under.y)).toEqual({ x: 400, y: 300 });
    expect(zoomAt(view, 100, 0, 0).zoom).toBe(4);
  });

  it('fits items in view, centred, never past 100 %', () => {
    const v = fit({ x: 0, y: 0, w: 2000, h: 1000 }, 1096, 600);
    expect(v.zoom).toBeCloseTo(0.5);
    expect(toScreen(v, 1000, 500)).toEqual({ x: 548, y: 300 });
    expect(fit({ x: 0, y: 0, w: 10, h: 10 }, 1000, 1000).zoom).toBe(1);
    // Clear of the tools: centred in what the insets leave.
    const clear = fit({ x: 0, y: 0, w: 100, h: 100 }, 1000, 600, { top: 0, right: 0, bottom: 0, left: 200 });
    expect(toScreen(clear, 50, 50)).toEqual({ x: 600, y: 300 });
  });
});

describe('arranging a selection', () => {
  const rects = [
    { id: 'a', x: 0, y: 0, w: 100, h: 50 },
    { id: 'b', x: 300, y: 80, w: 50, h: 100 },
    { id: 'c', x: 120, y: 400, w: 10, h: 10 },
  ];

  it('aligns edges and centres to the bounds', () => {
    expect(bounds(rects)).toEqual({ x: 0, y: 0, w: 350, h: 410 });
    expect(align(rects, 'right')).toEqual({ a: { x: 250 }, b: { x: 300 }, c: { x: 340 } });
    expect(align(rects, 'middle')).toEqual({ a: { y: 180 }, b: { y: 155 }, c: { y: 200 } });
  });

  it('spaces items evenly between the outermost', () => {
    // Widths 100 + 10 + 50 in a span of 350: two gaps of 95.
    expect(distribute(rects, 'x')).toEqual({ a: { x: 0 }, c: { x: 195 }, b: { x: 300 } });
    expect(distribute(rects.slice(0, 2), 'x')).toEqual({});
  });

  it('resizes from the handle dragged, the opposite corner staying', () => {
    const start = { x: 100, y: 100, w: 200, h: 100 };
    expect(resizeBox(start, 'nw', 50, 20, false)).toEqual({ x: 150, y: 120, w: 150, h: 80 });
    expect(resizeBox(start, 'se', 200, 0, true)).toEqual({ x: 100, y: 100, w: 400, h: 200 });
    expect(resizeBox(start, 'se', -500, -500, false)).toEqual({ x: 100, y: 100, w: 16, h: 16 });
  });

  it('scales each item of a selection with its bounds', () => {
    const from = { x: 0, y: 0, w: 100, h: 100 };
    const to = { x: 10, y: 10, w: 200, h: 200 };
    expect(scaleInto({ x: 50, y: 50, w: 50, h: 25 }, from, to)).toEqual({ x: 110, y: 110, w: 100, h: 50 });
  });
});

describe('placing a new item', () => {
  it('steps aside from items already where it would go', () => {
    const note = { x: 0, y: 0, w: 200, h: 100 };
    expect(freeSpot(note, [])).toEqual({ x: 0, y: 0 });
    expect(freeSpot(note, [{ x: 10, y: 5, w: 180, h: 100 }])).toEqual({ x: 24, y: 24 });
    expect(freeSpot(note, [note, { x: 24, y: 24, w: 200, h: 100 }])).toEqual({ x: 48, y: 48 });
  });
});
