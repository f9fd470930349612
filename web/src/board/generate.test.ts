import { describe, expect, it } from 'vitest';
import { VARIATIONS, shapeOf, variations } from './generate';

describe('variations', () => {
  it('offers painting from the image when there is one, and the prompt when it was generated', () => {
    expect(variations({ type: 'image', asset: 'a'.repeat(64), source: { prompt: 'a calm kitchen' } })).toEqual(['close', 'loose', 'prompt']);
    expect(variations({ type: 'image', asset: 'a'.repeat(64) })).toEqual(['close', 'loose']);
    expect(variations({ type: 'image' })).toEqual([]);
    expect(variations({ type: 'note', source: { prompt: 'x' } })).toEqual([]);
  });

  it('asks the server for the strength each promises, closer first', () => {
    expect(VARIATIONS.close.request.strength).toBeLessThan(VARIATIONS.loose.request.strength);
    expect(VARIATIONS.prompt.request).toEqual({ fromImage: false });
  });

  it('picks the shape nearest an item', () => {
    expect(shapeOf({ w: 300, h: 200 })).toBe('landscape');
    expect(shapeOf({ w: 200, h: 300 })).toBe('portrait');
    expect(shapeOf({ w: 210, h: 200 })).toBe('square');
  });
});
