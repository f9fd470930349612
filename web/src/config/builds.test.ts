import { describe, expect, it } from 'vitest';
import { appendLines, duration, size, statusWords, type Line } from './builds';

const line = (n: number): Line => [n, 0, 'out', `line ${n}`];

describe('the build log', () => {
  it('keeps lines that follow on, drops repeats after a reconnect, and keeps the last ones', () => {
    let shown = appendLines([], [line(1), line(2)]);
    shown = appendLines(shown, [line(2), line(3)]);
    expect(shown.map((l) => l[0])).toEqual([1, 2, 3]);
    expect(appendLines(shown, [line(3)])).toBe(shown);
    const many = appendLines(shown, [4, 5, 6, 7].map(line), 4);
    expect(many.map((l) => l[0])).toEqual([4, 5, 6, 7]);
  });
});

describe('words', () => {
  it('says where a build stands', () => {
    expect(statusWords({ status: 'pending', queue_position: 0 })).toBe('Next in the queue');
    expect(statusWords({ status: 'pending', queue_position: 2 })).toBe('Queued, 2 ahead');
    expect(statusWords({ status: 'processing' })).toBe('Building');
    expect(statusWords({ status: 'completed' })).toBe('Built');
  });

  it('says durations and sizes as a person reads them', () => {
    expect(duration(42_000)).toBe('42 s');
    expect(duration(185_000)).toBe('3 min 5 s');
    expect(duration(4_320_000)).toBe('1 h 12 min');
    expect(size(512)).toBe('512 B');
    expect(size(4 * 1024 * 1024 + 17)).toBe('4.0 MiB');
    expect(size(1.5 * 1024 ** 3)).toBe('1.5 GiB');
  });
});

describe('stages followed live', () => {
  it('are kept once each, in line order, however often they are sent', async () => {
    const { mergeStages } = await import('./buildStream');
    const a = { name: 'Preparing host', at: 0, line: 1 };
    const b = { name: 'Compiling kernel', at: 4, line: 40 };
    const c = { name: 'Building image', at: 9, line: 90 };
    const shown = mergeStages([], [a, b]);
    expect(mergeStages(shown, [b])).toBe(shown);
    expect(mergeStages(shown, [c, b]).map((s) => s.line)).toEqual([1, 40, 90]);
    expect(mergeStages([c], [a]).map((s) => s.line)).toEqual([1, 90]);
  });
});
